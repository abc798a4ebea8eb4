"""EDM2's power-function EMA and its post-hoc reconstruction from snapshots (Karras et al. 2024, Sec. 3, App. C).

A power-function EMA with exponent γ averages the weights θ_1 … θ_t of the first t updates with the profile
p(τ) = (γ + 1) τ^γ / t^(γ+1) on [0, t]; its relative width is σ_rel = √((γ+1) / ((γ+2)² (γ+3))) (EDM2, Eq. 3).
It is kept with the per-update factor β_t = (1 − 1/t)^(γ+1): the weight of θ_k after t updates is then
(k^(γ+1) − (k−1)^(γ+1)) / t^(γ+1), which is exactly ∫_{k−1}^{k} p(τ) dτ, so a tracked EMA *is* ∫ p θ dτ with θ
constant over each update.

During training (`training.ema_sigma_rels`, `training.ema_snapshot_every`), `PowerEMA` tracks a few profiles and
writes every profile's weights to WORKDIR/ema/snapshot_<step>.pt every K steps. Afterwards, any profile
(σ_rel, t) is a linear combination Σ c_i θ̂_i of the snapshots: the c that best fits its profile by least squares
over the snapshots' profiles, whose inner products have a closed form (`solve_coefficients`). `scoresde ema`
writes the result as a checkpoint that `load_run(..., checkpoint=path)` reads.
"""
from __future__ import annotations

import copy
import math
import re
from pathlib import Path

import numpy as np
import torch

from . import checkpoint
from ._utils import ema_update_

SNAPSHOT_DIR = "ema"  # WORKDIR/ema/snapshot_<step>.pt
_SNAPSHOT = re.compile(r"snapshot_(\d+)\.pt")
GAMMA_PEAK = (math.sqrt(5) - 1) / 2 - 1  # the γ of the widest profile: σ_rel is largest at γ = (√5 − 3)/2
EDM2_SIGMA_RELS = (0.05, 0.10)  # the two profiles EDM2 tracks


def sigma_rel_of_gamma(gamma: float) -> float:
    """σ_rel = √((γ+1)/((γ+2)²(γ+3))) of the power function τ^γ (EDM2, Eq. 3)."""
    return math.sqrt((gamma + 1) / ((gamma + 2) ** 2 * (gamma + 3)))


SIGMA_REL_MAX = sigma_rel_of_gamma(GAMMA_PEAK)  # 0.30028…: no power function is wider


def check_sigma_rel(sigma_rel, name: str = "sigma_rel") -> float:
    """σ_rel as a float in (0, SIGMA_REL_MAX], the widths a power-function profile can have."""
    if isinstance(sigma_rel, bool) or not isinstance(sigma_rel, (int, float)) or not 0 < sigma_rel <= SIGMA_REL_MAX:
        raise ValueError(f"{name} must be a number in (0, {SIGMA_REL_MAX:.5f}], the relative widths a power-function "
                         f"EMA can have (EDM2 tracks 0.05 and 0.10), got {sigma_rel!r}")
    return float(sigma_rel)


def gamma_of_sigma_rel(sigma_rel: float) -> float:
    """The γ ≥ (√5 − 3)/2 with σ_rel(γ) = sigma_rel, by bisection to the last bit in float64.

    σ_rel(γ) rises on (−1, γ_peak] and falls on [γ_peak, ∞); EDM2 takes the falling branch (the largest root of
    its cubic), where a narrower profile has a larger γ."""
    s = check_sigma_rel(sigma_rel)
    lo, hi = GAMMA_PEAK, 1.0
    while sigma_rel_of_gamma(hi) > s:
        hi *= 2
    while True:
        mid = (lo + hi) / 2
        if mid in (lo, hi):
            return hi if abs(sigma_rel_of_gamma(hi) - s) < abs(sigma_rel_of_gamma(lo) - s) else lo
        lo, hi = (mid, hi) if sigma_rel_of_gamma(mid) > s else (lo, mid)


def update_factor(t: int, gamma: float) -> float:
    """β_t = (1 − 1/t)^(γ+1), the weight the EMA keeps at update t = 1, 2, … (β_1 = 0: it starts at θ_1)."""
    return (1 - 1 / t) ** (gamma + 1)


def discrete_weights(t: int, gamma: float) -> np.ndarray:
    """The weights of θ_1 … θ_t in the EMA after t updates: (k^(γ+1) − (k−1)^(γ+1))/t^(γ+1), summing to 1."""
    k = np.arange(t + 1, dtype=np.float64) / t
    return np.diff(k ** (gamma + 1))


class PowerEMA:
    """Power-function EMAs of a model's weights, one per σ_rel, updated after every optimiser step."""

    def __init__(self, model: torch.nn.Module, sigma_rels=EDM2_SIGMA_RELS):
        self.sigma_rels = tuple(check_sigma_rel(s, "training.ema_sigma_rels") for s in sigma_rels)
        self.gammas = tuple(gamma_of_sigma_rel(s) for s in self.sigma_rels)
        self.models = [copy.deepcopy(model).eval().requires_grad_(False) for _ in self.sigma_rels]
        self.num_updates = 0  # t, updates so far (checkpointed)

    def update(self, model: torch.nn.Module) -> None:
        self.num_updates += 1
        for gamma, ema in zip(self.gammas, self.models):
            ema_update_(ema, model, 1.0 - update_factor(self.num_updates, gamma))

    def state_dict(self) -> dict:
        return {"sigma_rels": list(self.sigma_rels), "num_updates": self.num_updates,
                "ema": [m.state_dict() for m in self.models]}

    def load_state_dict(self, state: dict) -> None:
        if [float(s) for s in state["sigma_rels"]] != list(self.sigma_rels):
            raise ValueError(f"the checkpoint tracks σ_rel {state['sigma_rels']}, the config "
                             f"training.ema_sigma_rels={list(self.sigma_rels)}")
        for m, s in zip(self.models, state["ema"]):
            m.load_state_dict(s)
        self.num_updates = int(state["num_updates"])

    def snapshot(self) -> dict:
        """What a snapshot file holds: the step and each profile's (σ_rel, γ, weights)."""
        return {"step": self.num_updates, "profiles": [
            {"sigma_rel": s, "gamma": g, "ema": m.state_dict()}
            for s, g, m in zip(self.sigma_rels, self.gammas, self.models)]}

    def save_snapshot(self, workdir: Path) -> Path:
        path = Path(workdir) / SNAPSHOT_DIR / f"snapshot_{self.num_updates}.pt"
        checkpoint.atomic_save(self.snapshot(), path)
        return path

    def snapshot_bytes(self) -> int:
        """Bytes of weights in one snapshot file (all profiles)."""
        return sum(v.numel() * v.element_size() for m in self.models for v in m.state_dict().values())


def profile_inner(t_i, gamma_i, t_j, gamma_j):
    """⟨p_i, p_j⟩ = ∫ p_i p_j dτ of two power-function profiles p(τ) = (γ+1) τ^γ / t^(γ+1) on [0, t] (arrays
    broadcast): (γ_i+1)(γ_j+1) min(t_i, t_j)^(γ_i+γ_j+1) / ((γ_i+γ_j+1) t_i^(γ_i+1) t_j^(γ_j+1)), in log space."""
    t_i, g_i, t_j, g_j = (np.asarray(a, dtype=np.float64) for a in (t_i, gamma_i, t_j, gamma_j))
    a = g_i + g_j + 1
    log = a * np.log(np.minimum(t_i, t_j)) - (g_i + 1) * np.log(t_i) - (g_j + 1) * np.log(t_j)
    return (g_i + 1) * (g_j + 1) / a * np.exp(log)


def _normal_equations(steps, gammas, target_step: float, target_gamma: float):
    """(⟨p_i, p_j⟩ [n, n], ⟨p_i, p_target⟩ [n], ‖p_target‖²) of the snapshots' profiles (steps [n], gammas [n]), with
    time in units of the target step, so large γ and long runs do not overflow."""
    t = np.asarray(steps, dtype=np.float64) / target_step
    g = np.asarray(gammas, dtype=np.float64)
    return (profile_inner(t[:, None], g[:, None], t[None, :], g[None, :]), profile_inner(t, g, 1.0, target_gamma),
            float(profile_inner(1.0, target_gamma, 1.0, target_gamma)))


def solve_coefficients(steps, gammas, target_step: float, target_gamma: float) -> np.ndarray:
    """c minimising ‖Σ_i c_i p_i − p_target‖² over the snapshots' profiles (steps [n], gammas [n]), float64.

    The Gram matrix of the profiles is ill-conditioned; lstsq's SVD drops the directions below float64's
    resolution, as EDM2 does."""
    gram, rhs, _ = _normal_equations(steps, gammas, target_step, target_gamma)
    return np.linalg.lstsq(gram, rhs, rcond=None)[0]


def profile_error(steps, gammas, coefficients, target_step: float, target_gamma: float) -> float:
    """‖Σ c_i p_i − p_target‖ / ‖p_target‖: how well the snapshots represent the target profile (0: exactly)."""
    gram, rhs, target = _normal_equations(steps, gammas, target_step, target_gamma)
    c = np.asarray(coefficients, dtype=np.float64)
    return float(math.sqrt(max(c @ gram @ c - 2 * c @ rhs + target, 0.0) / target))


def snapshot_files(workdir) -> list[tuple[int, Path]]:
    """(step, path) of every snapshot in WORKDIR/ema, oldest first."""
    folder = Path(workdir) / SNAPSHOT_DIR
    found = [(int(m.group(1)), p) for p in folder.glob("snapshot_*.pt") if (m := _SNAPSHOT.fullmatch(p.name))]
    return sorted(found)


def reconstruct(workdir, sigma_rel: float, step: int | None = None, using=None):
    """The weights of the power-function EMA of width sigma_rel at `step` (default: the last snapshot), from the
    snapshots in WORKDIR/ema: returns (state_dict, info). using: the tracked widths to build it from (default:
    all). Weights are summed in float64, then cast back."""
    sigma_rel = check_sigma_rel(sigma_rel)
    files = snapshot_files(workdir)
    if not files:
        raise FileNotFoundError(
            f"{Path(workdir) / SNAPSHOT_DIR} holds no EMA snapshots: post-hoc EMA needs them recorded during training; "
            f"set training.ema_sigma_rels (e.g. (0.05, 0.10)) and training.ema_snapshot_every (e.g. 1000) in the "
            f"config of a new run")
    step = files[-1][0] if step is None else step
    if isinstance(step, bool) or not isinstance(step, int) or step <= 0:
        raise ValueError(f"step must be a positive training step, got {step!r}")
    files = [(s, p) for s, p in files if s <= step]
    if not files:
        raise ValueError(f"step {step} is before the first EMA snapshot; choose a step >= {snapshot_files(workdir)[0][0]}")
    # every snapshot of a run holds the same profiles (the config cannot change them on resume): the coefficients
    # come from the first one's, and the weights are summed one file at a time, so memory holds one snapshot
    tracked = checkpoint.load_weights(files[0][1])["profiles"]
    widths = [float(p["sigma_rel"]) for p in tracked]
    keep = [i for i, w in enumerate(widths) if using is None or w in {float(u) for u in using}]
    if not keep:
        raise ValueError(f"using={list(using)} names no tracked width; the snapshots hold {sorted(widths)}")
    gamma = gamma_of_sigma_rel(sigma_rel)
    steps = [s for s, _ in files for _ in keep]
    gammas = [float(tracked[i]["gamma"]) for _ in files for i in keep]
    c = solve_coefficients(steps, gammas, step, gamma).reshape(len(files), len(keep))
    total, last = {}, None
    for (_, path), coefficients in zip(files, c):
        profiles = tracked if path == files[0][1] else checkpoint.load_weights(path)["profiles"]
        if [float(p["sigma_rel"]) for p in profiles] != widths:
            raise ValueError(f"{path} tracks σ_rel {[float(p['sigma_rel']) for p in profiles]}, but {files[0][1]} "
                             f"tracks {widths}: the snapshots are not of one run")
        for ci, i in zip(coefficients, keep):
            for k, v in profiles[i]["ema"].items():
                if v.is_floating_point():
                    acc = total.setdefault(k, torch.zeros_like(v, dtype=torch.float64))
                    acc += float(ci) * v.double()
        last = profiles[keep[-1]]["ema"]  # integer buffers (counters): the newest snapshot's, the model's in every profile
    state = {k: (total[k].to(v.dtype) if v.is_floating_point() else v.clone()) for k, v in last.items()}
    info = {"sigma_rel": sigma_rel, "gamma": gamma, "step": step, "snapshots": len(files),
            "profiles": sorted(widths[i] for i in keep),
            "profile_error": profile_error(steps, gammas, c.ravel(), step, gamma)}
    return state, info


def write_checkpoint(workdir, sigma_rel: float, step: int | None = None, out=None) -> tuple[Path, dict]:
    """Reconstruct a profile and write it as a checkpoint load_run can read (it is never a resume candidate):
    WORKDIR/checkpoints/posthoc_ema_<σ_rel>_<step>.pt by default. Returns (path, info)."""
    workdir = Path(workdir)
    state, info = reconstruct(workdir, sigma_rel, step)
    base, _ = checkpoint.load_latest(workdir / "checkpoints")
    if base is None:
        raise FileNotFoundError(f"no checkpoint in {workdir / 'checkpoints'}: the run's config and data shape come "
                                f"from one")
    ckpt = {"model": state, "ema": state, "step": info["step"], "config": base["config"], "data": base["data"],
            "posthoc_ema": dict(info)}
    if "prior" in base:
        ckpt["prior"] = base["prior"]
    path = Path(out) if out else workdir / "checkpoints" / f"posthoc_ema_{info['sigma_rel']:.3f}_{info['step']}.pt"
    checkpoint.atomic_save(ckpt, path)
    return path, info
