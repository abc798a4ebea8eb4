"""Sharded sampling into a folder, as EDM's generate.py does it: one seed per sample, fixed shards, resumable.

The seeds are cut into shards of `shard_size` consecutive seeds, and shard k goes to rank k mod world size.
Each shard is sampled in batches of `batch_size` with per-sample seeds, so a sample's noise comes from its seed
alone and the files are the same, byte for byte, whatever the number of processes. (A different batch size
changes float32 results at round-off level, ~1e-6, because matrix kernels are not batch-invariant; 8-bit images
almost never change.) A shard is one `.npz`, written atomically and last, so its presence means it is complete:
a killed job rerun with the same command skips the shards it finished.

Layout of the folder:
    index.json           the settings every shard was made with; other settings are refused
    shard_00000.npz      seeds [N], and images uint8 [N, H, W, C] (image runs) or samples float32 [N, ...]
    images/000000/000123.png   with png=True: one picture per seed, 1000 seeds per subfolder (EDM's layout)
"""
from __future__ import annotations

import io
import json
import os
import re
import struct
import tempfile
import time
import zipfile
import zlib
from pathlib import Path

import numpy as np
import torch

from ._utils import check_positive_int, progress
from .distributed import Distributed

FORMAT = "scoresde-shards/1"
SHARD_SIZE = 1000  # seeds per shard file (EDM writes 1000 images per subfolder)
INDEX = "index.json"


def parse_seeds(text: str) -> list[int]:
    """'0-49999', '0,1,7' or '0-9,20-29' as a list of distinct non-negative seeds, in the order given."""
    if not isinstance(text, str) or not text.strip():
        raise ValueError(f"--seeds must be ranges or seeds like 0-49999 or 0,5,10-19, got {text!r}")
    seeds, seen = [], set()
    for item in text.split(","):
        item = item.strip()
        match = re.fullmatch(r"(\d+)(?:-(\d+))?", item)
        if match is None or (match[2] is not None and int(match[2]) < int(match[1])):
            raise ValueError(f"--seeds item {item!r} is not a seed or a range a-b with 0 <= a <= b (in {text!r})")
        chunk = range(int(match[1]), int(match[2] or match[1]) + 1)
        overlap = seen.intersection(chunk)
        if overlap:
            raise ValueError(f"--seeds {text!r} gives seed {min(overlap)} more than once (item {item!r} overlaps "
                             f"an earlier one)")
        seen.update(chunk)
        seeds.extend(chunk)
    return seeds


def format_seeds(seeds) -> str:
    """The shortest a-b,c,… spelling of a list of seeds (the inverse of parse_seeds)."""
    parts, i = [], 0
    while i < len(seeds):
        j = i
        while j + 1 < len(seeds) and seeds[j + 1] == seeds[j] + 1:
            j += 1
        parts.append(str(seeds[i]) if i == j else f"{seeds[i]}-{seeds[j]}")
        i = j + 1
    return ",".join(parts)


def shards(seeds: list[int], shard_size: int = SHARD_SIZE) -> list[list[int]]:
    """The seeds cut into consecutive shards of shard_size (the last may be shorter)."""
    check_positive_int(shard_size, "shard_size")
    return [seeds[i:i + shard_size] for i in range(0, len(seeds), shard_size)]


def shard_path(folder, k: int) -> Path:
    return Path(folder) / f"shard_{k:05d}.npz"


def _atomic_write_bytes(data: bytes, path: Path) -> None:
    """Write `data` to `path` through a temporary file in the same folder and a rename."""
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def npz_bytes(**arrays) -> bytes:
    """np.savez's format with fixed timestamps, so the same arrays always give the same bytes."""
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", compression=zipfile.ZIP_STORED) as z:
        for name, a in arrays.items():
            member = io.BytesIO()
            np.lib.format.write_array(member, np.asarray(a), allow_pickle=False)
            z.writestr(zipfile.ZipInfo(f"{name}.npy", date_time=(1980, 1, 1, 0, 0, 0)), member.getvalue())
    return buffer.getvalue()


def png_bytes(image: np.ndarray) -> bytes:
    """An 8-bit grey (H, W, 1) or RGB (H, W, 3) image as a PNG file (ISO/IEC 15948: IHDR, one IDAT, IEND)."""
    h, w, c = image.shape
    if image.dtype != np.uint8 or c not in (1, 3):
        raise ValueError(f"png_bytes needs uint8 images [H, W, 1 or 3], got {image.dtype} {image.shape}")

    def chunk(kind: bytes, body: bytes) -> bytes:
        return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))

    rows = np.concatenate([np.zeros((h, 1), np.uint8), image.reshape(h, w * c)], axis=1)  # filter type 0 per row
    header = struct.pack(">IIBBBBB", w, h, 8, 0 if c == 1 else 2, 0, 0, 0)
    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", zlib.compress(rows.tobytes(), 6))
            + chunk(b"IEND", b""))


def to_uint8(run, x: torch.Tensor) -> np.ndarray:
    """Image samples [N, C, H, W] as 8-bit pictures [N, H, W, C] (the layout of ADM's and EDM's .npz files)."""
    return (run.to_display(x) * 255).round().clamp(0, 255).to(torch.uint8).permute(0, 2, 3, 1).cpu().numpy()


def _check_index(folder: Path, settings: dict) -> str:
    """'' when the folder is new or was made with these settings, else why it is refused."""
    path = folder / INDEX
    if not path.exists():
        leftovers = sorted(p.name for p in folder.glob("shard_*.npz"))
        return (f"{folder} holds shards ({leftovers[0]}, …) but no {INDEX}: they are not from this command; use "
                f"another --out" if leftovers else "")
    try:
        old = json.loads(path.read_text())
    except (OSError, ValueError) as e:
        return f"{path} is not a shard index ({e}); use another --out"
    if old.get("format") != FORMAT:
        return f"{path} is not a scoresde shard index (format {old.get('format')!r}); use another --out"
    diffs = [f"{k}: {a!r} there, {b!r} now" for k, a, b in _differences(old, settings)]
    if diffs:
        return (f"{folder} holds shards made with other settings ({'; '.join(diffs)}); rerun with the same "
                f"settings to finish them, or use another --out")
    return ""


def _differences(old: dict, new: dict, prefix: str = ""):
    """(key, old value, new value) for each key of `new` whose value differs, nested dicts key by key."""
    for k, v in new.items():
        a = old.get(k) if isinstance(old, dict) else None
        if isinstance(v, dict) and isinstance(a, dict):
            yield from _differences(a, v, f"{prefix}{k}.")
        elif a != v:
            yield f"{prefix}{k}", a, v


def _finished(path: Path, seeds: list[int]) -> bool:
    """Whether shard file `path` exists and holds exactly these seeds (a complete shard, as writes are atomic)."""
    if not path.exists():
        return False
    with np.load(path) as f:
        if f["seeds"].tolist() != seeds:
            raise ValueError(f"{path} holds seeds other than those its index gives it; the folder was changed by "
                             f"hand: use another --out")
    return True


def sample_to_folder(run, sampler, seeds: list[int], out, *, batch_size: int = 100, shard_size: int = SHARD_SIZE,
                     png: bool = False, raw: bool = False, labels=None, guidance: float = 0.0, settings=None,
                     dist: Distributed | None = None, log=print, progress_bar: bool = True, **guide) -> dict:
    """Sample `seeds` (one sample each) into folder `out`, this rank's shards only; skip finished shards.

    labels: None, a class for every sample, or "seed" (class = seed mod the number of classes). settings: what
    else defines the samples (the CLI adds the sampler's name, steps and options as given), kept in index.json
    with the run, checkpoint, sampler.describe() and the arguments here, and compared on restart. Returns counts and timings summed over ranks. Only rank 0 logs.
    """
    dist = dist or Distributed(run.device)
    batch_size, shard_size = check_positive_int(batch_size, "batch_size"), check_positive_int(shard_size, "shard_size")
    out = Path(out)
    if not run.is_image and png:
        raise ValueError("png=True (--png) writes pictures, and this run's samples are points, not images")
    if not sampler.per_sample_seeds:
        raise ValueError(f"sampler {sampler.name!r} does not take per-sample seeds, which sharded sampling needs; "
                         f"the samplers of scoresde.sampling do")
    settings = {"format": FORMAT, "run": str(Path(run.workdir).resolve()) if run.workdir else None,
                "sampler_settings": sampler.describe(),
                "checkpoint": str(run.checkpoint_path) if run.checkpoint_path else None, "step": run.step,
                "shape": list(run.shape), "seeds": format_seeds(seeds), "shard_size": shard_size,
                "labels": labels, "guidance": guidance, "png": png, "raw": raw, **(settings or {})}
    out.mkdir(parents=True, exist_ok=True)
    problem = _check_index(out, settings)  # every rank checks, and all agree before any writes
    if not dist.all_ok(not problem):
        raise ValueError(problem or f"another rank refused {out} (see its message)")
    if dist.main:
        for stale in out.glob(".*.tmp"):  # what a killed write left behind
            stale.unlink(missing_ok=True)
        (out / INDEX).write_text(json.dumps(settings, indent=1) + "\n")
    dist.barrier()
    plan = shards(seeds, shard_size)
    mine = [k for k in range(len(plan)) if k % dist.world == dist.rank]
    written, skipped, nfe, start = 0, 0, 0, time.perf_counter()
    if dist.main:
        log(f"{len(seeds)} seeds in {len(plan)} shard{'s' if len(plan) > 1 else ''} of {shard_size} over "
            f"{dist.world} process{'es' if dist.world > 1 else ''}, batches of {batch_size}: {out}")
    for k in progress(mine, progress_bar and dist.main, desc="shards" if dist.world == 1 else
                      f"shards of rank 0 (of {dist.world})"):
        path = shard_path(out, k)
        if _finished(path, plan[k]):
            skipped += 1
            continue
        y = None if labels is None else (
            torch.tensor(plan[k]) % run.num_classes if labels == "seed" else torch.full((len(plan[k]),), labels))
        x, nfe = run.sample(len(plan[k]), sampler, seeds=plan[k], batch_size=batch_size, labels=y,
                            guidance=guidance, **guide)
        arrays = {"seeds": np.asarray(plan[k], dtype=np.int64)}
        if y is not None:
            arrays["labels"] = y.numpy().astype(np.int64)
        if run.is_image:
            arrays["images"] = to_uint8(run, x)
            if png:
                for seed, image in zip(plan[k], arrays["images"]):
                    folder = out / "images" / f"{seed // 1000 * 1000:06d}"
                    folder.mkdir(parents=True, exist_ok=True)
                    (folder / f"{seed:06d}.png").write_bytes(png_bytes(image))
        if raw or not run.is_image:
            arrays["samples"] = x.float().cpu().numpy()
        _atomic_write_bytes(npz_bytes(**arrays), path)  # last: its presence marks the shard complete
        written += 1
    counts = torch.tensor([written, skipped], dtype=torch.float64)
    written, skipped = (int(v) for v in dist.all_sum(counts)[0].tolist())
    nfe = dist.all_max(nfe)  # 0 when no rank sampled anything
    dist.barrier()
    return {"folder": out, "shards": len(plan), "written": written, "skipped": skipped, "samples": len(seeds),
            "nfe": nfe, "seconds": time.perf_counter() - start}


def read_index(folder) -> dict:
    """The settings of a shard folder, after checking that every shard is there."""
    folder = Path(folder)
    path = folder / INDEX
    if not path.is_file():
        raise FileNotFoundError(f"{folder} has no {INDEX}: not a folder that scoresde sample --seeds wrote")
    index = json.loads(path.read_text())
    plan = shards(parse_seeds(index["seeds"]), index["shard_size"])
    missing = [k for k in range(len(plan)) if not shard_path(folder, k).exists()]
    if missing:
        raise ValueError(f"{folder} has {len(plan) - len(missing)} of its {len(plan)} shards (shard_{missing[0]:05d}.npz "
                         f"is missing): rerun the scoresde sample command that made it to finish them")
    index["count"] = len(plan)
    return index


def shard_files(folder) -> list[Path]:
    """The shard files of a complete folder, in order."""
    return [shard_path(folder, k) for k in range(read_index(folder)["count"])]
