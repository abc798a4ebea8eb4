"""Checkpoints: atomic writes, weights-only loading, fallback to the newest intact snapshot, and a workdir lock.

A checkpoint is a dict of tensors and plain Python values, so `torch.load(path, weights_only=True)` reads it:
    model, ema (state dicts), ema_updates, optimizer, step, rng (tensors and ints), config (JSON text),
    data ({"shape", "is_image", "centered"}: what a loaded run needs without reading the data set),
    loss_state when the loss keeps one (L_vlb's importance-sampling history), and prior (PriorGrad's data prior:
    {"kind", "mean", "var"}, scoresde.prior) when config.sde.prior='data'.
"""
from __future__ import annotations

import contextlib
import fcntl
import os
import random
import re
import signal
import socket
import tempfile
import threading
import warnings
from pathlib import Path

import numpy as np
import torch

_UMASK = os.umask(0)
os.umask(_UMASK)
LATEST = "latest.pt"
_SNAPSHOT = re.compile(r"ckpt_(\d+)\.pt")


class CheckpointWarning(UserWarning):
    """A damaged checkpoint was skipped in favour of an intact one."""


@contextlib.contextmanager
def interrupts_deferred():
    """Hold Ctrl-C (SIGINT) until the block ends, then raise KeyboardInterrupt: a save is never cut in half.

    Interrupting torch.save mid-write makes its zip writer fail on exit with a RuntimeError that hides the
    KeyboardInterrupt. Only the main thread can handle signals; elsewhere, or with SIGINT ignored, nothing changes."""
    if threading.current_thread() is not threading.main_thread() or \
            signal.getsignal(signal.SIGINT) is not signal.default_int_handler:
        yield
        return
    caught = []
    previous = signal.signal(signal.SIGINT, lambda signum, frame: caught.append(signum))
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, previous)
    if caught:
        raise KeyboardInterrupt


def atomic_save(obj, path: Path) -> None:
    """torch.save to `path` so that a crash at any moment leaves either the old file or the new one, and
    Ctrl-C during the write takes effect once the file is complete."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with interrupts_deferred():
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
        try:
            with os.fdopen(fd, "wb") as f:
                torch.save(obj, f)
                f.flush()
                os.fsync(f.fileno())
            os.chmod(tmp, 0o666 & ~_UMASK)  # mkstemp creates 0600; give the file the usual permissions
            os.replace(tmp, path)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise


def atomic_write_text(text: str, path: Path) -> None:
    path = Path(path)
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(text)
    os.replace(tmp, path)


def remove_stale_temporaries(workdir: Path) -> list[Path]:
    """Delete the temporary files a killed save left behind (call only while holding the workdir lock)."""
    stale = [p for folder in (workdir, workdir / "checkpoints") if folder.is_dir()
             for p in folder.glob(".*.tmp")]
    for p in stale:
        p.unlink(missing_ok=True)
    return stale


def rng_state() -> dict:
    """Every RNG state as tensors and ints (weights-only loadable)."""
    kind, keys, pos, has_gauss, cached = np.random.get_state()
    version, py_state, gauss_next = random.getstate()
    state = {"torch": torch.get_rng_state(),
             "numpy": {"keys": torch.from_numpy(keys.astype(np.int64)), "pos": int(pos),
                       "has_gauss": int(has_gauss), "cached_gaussian": float(cached)},
             "python": {"version": version, "state": list(py_state), "gauss_next": gauss_next}}
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def set_rng_state(state: dict) -> None:
    torch.set_rng_state(state["torch"])
    n = state["numpy"]
    np.random.set_state(("MT19937", n["keys"].numpy().astype(np.uint32), n["pos"], n["has_gauss"], n["cached_gaussian"]))
    p = state["python"]
    random.setstate((p["version"], tuple(p["state"]), p["gauss_next"]))
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


def failure_reason(error: BaseException) -> str:
    """The first line of a loader's error, at most 200 characters: what a one-line message can say of a bad file."""
    return (str(error).strip().splitlines() or ["empty or unreadable file"])[0][:200]


def load_weights(path: Path, device="cpu"):
    """torch.load(weights_only=True) of a file scoresde wrote; a damaged or unreadable file raises a ValueError that
    names it."""
    path = Path(path)
    try:
        return torch.load(path, map_location=device, weights_only=True)
    except FileNotFoundError:
        raise
    except Exception as e:  # truncated, zero-filled, not a checkpoint at all ...
        reason = failure_reason(e)
        if "Weights only load failed" in str(e):
            reason = ("it holds pickled objects, not only tensors and plain values (checkpoints of scoresde 0.1 "
                      "pickled numpy RNG state; load those with scoresde 0.1)")
        raise ValueError(f"cannot load checkpoint {path}: {type(e).__name__}: {reason}") from e


def load(path: Path, device="cpu") -> dict:
    """Load one checkpoint (weights only); a damaged or unreadable file raises a ValueError that names it."""
    path = Path(path)
    state = load_weights(path, device)
    if not isinstance(state, dict) or not {"model", "ema", "step", "config"} <= set(state):
        raise ValueError(f"{path} is not a scoresde checkpoint (it lacks model, ema, step or config)")
    return state


def candidates(ckpt_dir: Path) -> list[Path]:
    """latest.pt, then the snapshots ckpt_<step>.pt from the newest to the oldest."""
    ckpt_dir = Path(ckpt_dir)
    snapshots = sorted((p for p in ckpt_dir.glob("ckpt_*.pt") if _SNAPSHOT.fullmatch(p.name)),
                       key=lambda p: int(_SNAPSHOT.fullmatch(p.name).group(1)), reverse=True)
    latest = ckpt_dir / LATEST
    return ([latest] if latest.exists() else []) + snapshots


def load_latest(ckpt_dir: Path, device="cpu") -> tuple[dict, Path] | tuple[None, None]:
    """The newest checkpoint that loads, with its path; warns about each damaged one it skips. (None, None): none exist."""
    errors = []
    for path in candidates(ckpt_dir):
        try:
            state = load(path, device)
        except ValueError as e:
            errors.append(str(e))
            continue
        if errors:
            warnings.warn(f"{'; '.join(errors)}; using {path} (step {state['step']}) instead", CheckpointWarning,
                          stacklevel=2)
        return state, path
    if errors:
        raise ValueError(f"no checkpoint in {ckpt_dir} could be loaded: {'; '.join(errors)}")
    return None, None


def trained_step(workdir) -> int:
    """The step of the newest loadable checkpoint of WORKDIR, or 0 when there is none."""
    state, _ = load_latest(Path(workdir) / "checkpoints")
    return int(state["step"]) if state else 0


class WorkdirLock:
    """An exclusive lock on WORKDIR/.lock held by the one process that trains the run (released on exit, even kill -9)."""

    def __init__(self, workdir: Path):
        self.path = Path(workdir) / ".lock"
        self._fd = None

    def acquire(self) -> "WorkdirLock":
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o666 & ~_UMASK)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = os.read(fd, 200).decode(errors="replace").strip() or "another process"
            os.close(fd)
            raise ValueError(f"{self.path.parent} is being trained by {holder}; one run has one writer. Wait for it "
                             f"to finish or stop it (sampling and eval of this run work meanwhile)") from None
        os.ftruncate(fd, 0)
        os.write(fd, f"process {os.getpid()} on {socket.gethostname()}".encode())
        self._fd = fd
        return self

    def release(self) -> None:
        if self._fd is not None:
            os.close(self._fd)  # closing the descriptor releases the flock
            self._fd = None

    def __del__(self):  # a discarded Trainer does not keep its workdir locked
        try:
            self.release()
        except Exception:  # interpreter shutdown: the OS releases the lock anyway
            pass
