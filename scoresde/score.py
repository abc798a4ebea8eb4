"""`Score`: a score function ∇_x log p_t(x) together with the facts samplers read about it.

A sampler, a likelihood or a bound needs more than the callable: its time convention (continuous t, or
DDPM's integer steps), whether it brings a learned variance Σ_θ (Nichol & Dhariwal 2021, Eq. 15), the
classes it conditions on, what one call costs. Those facts live on one frozen object, and every wrapper
(guidance, whitening under a prior, SR3's conditioning, …) derives a new one with `derive`, which calls
`dataclasses.replace`: a fact not named in the change is kept, so no wrapper can drop one.

    s = Score(fn, continuous=False)              # a hand-written DDPM score, fn(x, t) -> tensor like x
    s(x, t)                                       # the score
    s.outputs(x, t)                               # (score, v or None): v of a learned variance
    s.derive(lambda x, t: ..., batch_factor=2)    # a wrapper; its fn returns (score, v) pairs

A plain callable is a continuous-time score with no other facts: `as_score(fn)` makes it one.
"""
from __future__ import annotations

import dataclasses
import types
from typing import Callable

import torch

from ._utils import ArgumentTypeError, check_bool, check_callable, check_finite, check_output, check_positive_int, describe

PARAMETERIZATION_NAMES = ("eps", "score", "x0", "v", "edm", "edm_vp", "edm_ve")  # the keys of parameterization.PARAMETERIZATIONS


@dataclasses.dataclass(frozen=True)
class Score:
    """s(x, t[, y]) and what it is: the one object every sampler, likelihood and bound receives.

    fn: fn(x, t[, y]) returning the score shaped like x, or (score, v) when learned_variance.
    continuous: the model takes continuous t (True) or DDPM's step index i − 1 (False; samplers then use the
        discrete ᾱ_i on DDPM's steps, `scoresde.sde.DiscreteTimeVPSDE`).
    parameterization: what the network predicts (eps, score, x0, v); informational, the score is converted.
    learned_variance: fn returns (score, v) with Σ = exp(v log β + (1 − v) log β̃) (Nichol & Dhariwal 2021, Eq. 15).
    noise_level: the network is conditioned on γ = α_t instead of t (SR3), so it runs under any VP schedule.
    num_classes: K > 0 for a class-conditional model: y in {0…K−1}, K is "no label".
    data_shape: the per-sample shape the network was built for, where it declares one.
    batch_factor: network samples per sample in one call (2 for classifier-free guidance on a doubled batch).
    classifier_guided: each call also costs a classifier's forward and backward pass.
    autoguided: each call also costs a call of a weaker model (autoguidance, `scoresde.guidance.autoguided`).
    whitened: the score is of x̃ = L⁻¹(x − μ) under a prior N(μ, LLᵀ) (PriorGrad), not of x.
    """
    fn: Callable
    continuous: bool = True
    parameterization: str = "score"
    learned_variance: bool = False
    noise_level: bool = False
    num_classes: int = 0
    data_shape: tuple | None = None
    batch_factor: int = 1
    classifier_guided: bool = False
    autoguided: bool = False
    whitened: bool = False

    def __post_init__(self):
        check_callable(self.fn, "fn", "fn(x, t) returning a tensor shaped like x")
        for name in ("continuous", "learned_variance", "noise_level", "classifier_guided", "autoguided", "whitened"):
            check_bool(getattr(self, name), name)
        if self.parameterization not in PARAMETERIZATION_NAMES:
            raise ValueError(f"parameterization must be one of {', '.join(PARAMETERIZATION_NAMES)}, "
                             f"got {self.parameterization!r}")
        if isinstance(self.num_classes, bool) or not isinstance(self.num_classes, int) or self.num_classes < 0:
            raise ValueError(f"num_classes must be a non-negative integer, got {self.num_classes!r}")
        check_positive_int(self.batch_factor, "batch_factor")
        if self.data_shape is not None:
            object.__setattr__(self, "data_shape", tuple(int(d) for d in self.data_shape))

    def __call__(self, x: torch.Tensor, t: torch.Tensor, *y) -> torch.Tensor:
        """∇_x log p_t(x) (given y, for a conditional model that has not bound its labels)."""
        out = self.fn(x, t, *y)
        return out[0] if self.learned_variance else out

    def outputs(self, x: torch.Tensor, t: torch.Tensor, *y):
        """(score, v) from one call; v is None unless the variance is learned."""
        out = self.fn(x, t, *y)
        return out if self.learned_variance else (out, None)

    def score_and_v(self, x: torch.Tensor, t: torch.Tensor, *y):
        """(score, v) of a learned-variance model from one call."""
        if not self.learned_variance:
            raise ValueError("score_and_v needs a score that declares a learned variance "
                             "(get_score_fn(..., learned_variance=True)); this one does not")
        return self.fn(x, t, *y)

    def derive(self, pairs: Callable, **changes) -> "Score":
        """A wrapper of this score: `pairs(x, t, ...)` returns (score, v or None) and every fact not in
        `changes` carries over (one `dataclasses.replace`)."""
        learned = changes.get("learned_variance", self.learned_variance)
        fn = pairs if learned else _first(pairs)
        return dataclasses.replace(self, fn=fn, **changes)

    def replace(self, **changes) -> "Score":
        """The same score with some declared facts changed (`dataclasses.replace`)."""
        return dataclasses.replace(self, **changes)


def _first(pairs: Callable) -> Callable:
    def fn(*args):
        return pairs(*args)[0]
    return fn


def as_score(score_fn, name: str = "score_fn") -> Score:
    """score_fn as a Score: itself, or a plain callable as a continuous-time score with no other facts.

    A plain function carrying facts as attributes (the old `fn.continuous = False`) is refused by name rather
    than read: declare them on a Score."""
    if isinstance(score_fn, Score):
        return score_fn
    check_callable(score_fn, name, f"{name}(x, t) returning a tensor shaped like x, or a scoresde.Score")
    if isinstance(score_fn, types.FunctionType):
        stale = sorted(set(vars(score_fn)) & {f.name for f in dataclasses.fields(Score)})
        if stale:
            raise ArgumentTypeError(f"{name} declares {', '.join(stale)} as function attributes, which are not read; "
                                    f"wrap it instead: scoresde.Score({name}, "
                                    f"{', '.join(f'{k}={getattr(score_fn, k)!r}' for k in stale)})")
    return Score(score_fn)


def describe_score(score: Score) -> str:
    """A one-line summary of the declared facts, for error messages and logs."""
    facts = [f"{f.name}={getattr(score, f.name)!r}" for f in dataclasses.fields(Score)
             if f.name != "fn" and getattr(score, f.name) != f.default]
    return f"Score({describe(score.fn)}{', ' if facts else ''}{', '.join(facts)})"


class CountedScore:
    """Wraps score_fn: counts every call (the true NFE) and rejects wrong shapes, dtypes and non-finite output.

    The score must come back in x's dtype: samples and likelihoods keep the dtype they were asked for, so a float64
    score for float32 x (or the reverse) is refused rather than silently promoting the result."""

    def __init__(self, score_fn):
        self.score, self.nfe = as_score(score_fn), 0  # the Score: its declared facts, read as counted.score.continuous

    @property
    def learned_variance(self) -> bool:
        return self.score.learned_variance

    def __call__(self, x: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        return self._call(self.score, x, t)

    def score_and_v(self, x: torch.Tensor, t: torch.Tensor):
        """The score and the learned variance's v from one model call (one NFE), both checked."""
        score, v = self._call(self.score.score_and_v, x, t)
        check_output(v, x, "score_and_v's v")
        return score, v

    def _call(self, fn, x: torch.Tensor, t: torch.Tensor):
        t = t.expand(x.shape[0]) if t.ndim == 0 else t
        shape = self.score.data_shape
        if self.nfe == 0 and shape is not None and tuple(x.shape[1:]) != shape:
            raise ValueError(f"x has shape {tuple(x.shape)}, but the model was built for data of shape "
                             f"[B, {', '.join(map(str, shape))}]")
        try:
            out = fn(x, t)
        except Exception as e:  # say what the model was given, keeping its own error
            if self.nfe == 0 and hasattr(e, "add_note"):
                e.add_note(f"scoresde: score_fn failed on its first call, given x: {describe(x)} on {x.device} and "
                           f"t: {describe(t)}; check that the model expects data of this shape")
            raise
        self.nfe += 1
        score = out[0] if isinstance(out, tuple) else out
        check_output(score, x)
        if score.dtype != x.dtype:
            raise ValueError(f"score_fn returned {score.dtype} for x of dtype {x.dtype}; return x's dtype (for "
                             f"example .to(x.dtype) in the score function): samples keep the dtype they were asked for")
        if self.nfe == 1:
            check_finite(score, "score_fn returned non-finite values on its first call")
        return out


__all__ = ["Score", "CountedScore", "as_score", "describe_score"]
