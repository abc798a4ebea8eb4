"""The files of an imported run: config.json and a weights-only checkpoints/latest.pt that `load_run` reads."""
from __future__ import annotations

from pathlib import Path

from .. import checkpoint as ckpt
from ..config import to_json


def write_run(workdir, config, model_state: dict, ema_state: dict | None = None, *, shape, step: int = 0,
              ema_updates: int = 0, source: str, file, weights: str = "ema") -> Path:
    """Write the imported weights as a run in `workdir` (the EMA state defaults to the model's); returns the
    workdir. `imported` records where they came from, so training in the workdir starts a fresh optimiser."""
    workdir = Path(workdir)
    (workdir / "checkpoints").mkdir(parents=True, exist_ok=True)
    state = {"model": model_state, "ema": model_state if ema_state is None else ema_state, "ema_updates": ema_updates,
             "step": step, "config": to_json(config),
             "data": {"shape": list(shape), "is_image": True, "centered": bool(config.data.centered)},
             "imported": {"source": source, "file": str(file), "weights": weights}}
    ckpt.atomic_write_text(to_json(config), workdir / "config.json")
    ckpt.atomic_save(state, workdir / "checkpoints" / ckpt.LATEST)
    return workdir
