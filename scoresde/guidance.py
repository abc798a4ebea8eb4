"""Class conditioning and guidance: each turns a label-aware score s(x, t, y) into a score of (x, t) alone,
so every sampler runs it unchanged.

    conditional(s, y)                 s(x, t, y)
    classifier_free(s, y, w)          (1 + w) s(x, t, y) − w s(x, t, ∅)        Ho & Salimans 2022, Eq. 6
    classifier_guidance(s, c, y, λ)   s(x, t) + λ ∇_x log p_c(y | x, t)      Dhariwal & Nichol 2021, Alg. 1;
                                                                            Song et al. 2021, Eq. 48
    autoguided(s, s_bad, w)           (1 + w) s(x, t) − w s_bad(x, t)         Karras et al. 2024b, Eq. 1
w follows Ho & Salimans: w = 0 is the conditional model, w = −1 the unconditional one, and w > 0 samples
∝ p(x | y)^(1+w) p(x)^(−w) (at each noise level). diffusers' and Imagen's `guidance_scale` is g = 1 + w.

Labels are integers in {0, …, K−1} for a model with K = `Score.num_classes` classes; K itself is
"no label" (∅), the label the model learnt under label dropout. A guided score with w ∉ {0, −1} evaluates
the conditional and the unconditional prediction in one network call on a doubled batch; it declares
`batch_factor = 2`, so NFE counts network calls and reports say each is on 2B samples.
"""
from __future__ import annotations

from typing import Callable

import torch
import torch.nn.functional as F

from ._utils import ArgumentTypeError, check_callable, check_real, describe, full_precision
from .score import Score, as_score


def num_classes(score_fn) -> int:
    """K, the number of classes a score function's model was trained with (0: unconditional)."""
    return as_score(score_fn).num_classes


def check_labels(y, num_classes: int, name: str = "y", allow_null: bool = True) -> torch.Tensor:
    """y as a long tensor: an int or a 1-D integer tensor/list with values in {0…K−1} (or K, "no label")."""
    if num_classes < 1:
        raise ValueError(f"{name} given, but the model is unconditional (num_classes = 0); train it with "
                         f"config.model.num_classes > 0 to condition on labels")
    top = num_classes if allow_null else num_classes - 1
    accepted = f"integers in {{0, …, {top}}}" + (f" ({num_classes} = no label)" if allow_null else "")
    if isinstance(y, bool) or not isinstance(y, (int, list, tuple, torch.Tensor)):
        raise ArgumentTypeError(f"{name} must be an int or a 1-D tensor of {accepted}, got {describe(y)}")
    try:
        y = torch.as_tensor(y)
    except (TypeError, ValueError, RuntimeError):
        raise ArgumentTypeError(f"{name} must be {accepted}, got {describe(y)}") from None
    if y.dtype.is_floating_point or y.dtype.is_complex or y.dtype == torch.bool or y.ndim > 1:
        raise ArgumentTypeError(f"{name} must be an int or a 1-D tensor of {accepted}, got {describe(y)}")
    if y.numel() and not bool(((y >= 0) & (y <= top)).all()):
        raise ValueError(f"{name} must be {accepted}, got values in [{int(y.min())}, {int(y.max())}]")
    return y.long()


def _expand(y: torch.Tensor, x: torch.Tensor, name: str = "y") -> torch.Tensor:
    """Labels for the batch of x: a single label is repeated, a batch of labels must match."""
    y = y.to(x.device)
    if y.ndim == 0:
        return y.expand(x.shape[0])
    if y.shape[0] != x.shape[0]:
        raise ValueError(f"{name} has {y.shape[0]} labels for a batch of {x.shape[0]}; give one label or one per sample")
    return y


def conditional(score_fn, y) -> Score:
    """s(x, t, y) as a score of (x, t): the class-conditional model (y = K: the unconditional one)."""
    score = as_score(score_fn)
    y = check_labels(y, score.num_classes)
    return score.derive(lambda x, t: score.outputs(x, t, _expand(y, x)))


def classifier_free(score_fn, y, w: float) -> Score:
    """(1 + w) s(x, t, y) − w s(x, t, ∅) (Ho & Salimans 2022, Eq. 6), both in one network call on 2B samples.

    w = 0 and w = −1 need one prediction and run on B samples: the conditional and the unconditional model.
    A learned variance keeps the conditional prediction's v (as GLIDE does): guidance moves the mean only.
    """
    score = as_score(score_fn)
    k = score.num_classes
    y = check_labels(y, k, allow_null=False)
    w = check_real(w, "w")
    if w == 0:
        return conditional(score_fn, y)
    if w == -1:
        return conditional(score_fn, k)

    def pairs(x, t):
        labels = _expand(y, x)
        t = t.expand(x.shape[0]) if t.ndim == 0 else t
        both, v = score.outputs(torch.cat([x, x]), torch.cat([t, t]), torch.cat([labels, torch.full_like(labels, k)]))
        cond, uncond = both.chunk(2)
        return (1 + w) * cond - w * uncond, None if v is None else v.chunk(2)[0]
    return score.derive(pairs, batch_factor=2 * score.batch_factor)


def classifier_guidance(score_fn, classifier: Callable, y, scale: float = 1.0) -> Score:
    """s(x, t) + λ ∇_x log p(y | x, t) (Dhariwal & Nichol 2021, Algorithm 1; Song et al. 2021, Eq. 48).

    classifier(x, t) returns logits [B, K] of a noise-aware classifier, called with the sampler's t (the
    classifier is trained in continuous time, `scoresde.losses.ClassifierLoss`). The gradient is taken under
    enable_grad, so it works inside the samplers' no_grad (and inference_mode). score_fn is called without
    labels: an unconditional model, or a conditional one given y = ∅. A learned variance is kept as it is.
    """
    score = as_score(score_fn)
    check_callable(classifier, "classifier", "classifier(x, t) returning logits [B, K]")
    scale = check_real(scale, "scale")
    y = torch.as_tensor(y) if isinstance(y, (list, tuple)) else y
    if isinstance(y, bool) or not isinstance(y, (int, torch.Tensor)):
        raise ArgumentTypeError(f"y must be an int or a 1-D tensor of class labels, got {describe(y)}")
    y = torch.as_tensor(y).long()

    def pairs(x, t):
        s, v = score.outputs(x, t)
        return s + scale * classifier_gradient(classifier, x, t, _expand(y, x)), v
    return score.derive(pairs, classifier_guided=True)  # each NFE also costs a classifier forward and backward pass


def autoguided(score_fn, weak_score_fn, w: float) -> Score:
    """(1 + w) s(x, t) − w s_bad(x, t): autoguidance by a weaker model of the same data (Karras et al. 2024b, Eq. 1).

    EDM2 writes it for denoisers, D_w = D_bad + w_EDM2 (D − D_bad). On one SDE, D = (x + σ_t² s)/α_t is the same
    affine map of the score for both models, so guiding the scores is guiding the denoisers, with w_EDM2 = 1 + w
    (EDM2's w_EDM2 = 2 is w = 1 here; w = 0 is the good model alone). Both scores must share their time convention
    and bind their labels first (`conditional`). A learned variance is the good model's. Each call costs one call
    of each model: the result declares `autoguided`.
    """
    score, weak = as_score(score_fn), as_score(weak_score_fn, "weak_score_fn")
    w = check_real(w, "w")
    if score.continuous != weak.continuous:
        raise ValueError(f"the weaker model's time convention (continuous={weak.continuous}) differs from the "
                         f"model's (continuous={score.continuous}); autoguidance compares them at the same t")
    if w == 0:
        return score

    def pairs(x, t):
        s, v = score.outputs(x, t)
        return (1 + w) * s - w * weak(x, t), v
    return score.derive(pairs, autoguided=True)


def classifier_gradient(classifier: Callable, x: torch.Tensor, t: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """∇_x log p(y | x, t) of a classifier returning logits, computed even under no_grad / inference_mode."""
    with torch.inference_mode(False), torch.enable_grad():
        xg = x.detach().clone().requires_grad_(True)
        t = (t.expand(x.shape[0]) if t.ndim == 0 else t).detach().clone()
        logits = classifier(xg, t)
        if not isinstance(logits, torch.Tensor) or logits.ndim != 2 or logits.shape[0] != x.shape[0]:
            raise ValueError(f"classifier must return logits [B, K] = [{x.shape[0]}, K], got {describe(logits)}")
        if int(y.max()) >= logits.shape[1] or int(y.min()) < 0:
            raise ValueError(f"y must be class labels in {{0, …, {logits.shape[1] - 1}}} of the classifier's "
                             f"{logits.shape[1]} classes, got values in [{int(y.min())}, {int(y.max())}]")
        logp = F.log_softmax(full_precision(logits), dim=1).gather(1, y[:, None]).sum()
        (grad,) = torch.autograd.grad(logp, xg)
    return grad.to(x.dtype)


def guided(score_fn, y=None, w: float = 0.0, classifier: Callable | None = None,
           classifier_scale: float = 1.0) -> Score:
    """The score a sampler should run: unchanged (y = None), conditional or classifier-free guided (w), and/or
    classifier guided (classifier, classifier_scale). One entry point for Run.sample and the CLI."""
    if y is None:
        if w != 0:
            raise ValueError(f"guidance w={w} needs class labels y")
        if classifier is not None:
            raise ValueError("classifier guidance needs class labels y")
        return as_score(score_fn)
    if classifier is None:
        return classifier_free(score_fn, y, w)
    base = score_fn if num_classes(score_fn) == 0 and w == 0 else classifier_free(score_fn, y, w)
    return classifier_guidance(base, classifier, y, classifier_scale)


def guidance_scale_to_w(g: float) -> float:
    """diffusers' / Imagen's guidance_scale g = 1 + w → Ho & Salimans' w."""
    g = check_real(g, "guidance_scale")
    return g - 1.0


def describe_cost(score_fn) -> str:
    """'' or a note on what one NFE costs, e.g. ' (each call on a doubled batch: classifier-free guidance)'."""
    notes, score = [], as_score(score_fn)
    factor = score.batch_factor
    if factor != 1:
        notes.append(f"each call on a {'doubled' if factor == 2 else f'{factor}x'} batch: classifier-free guidance")
    if score.classifier_guided:
        notes.append("plus one classifier gradient per call: classifier guidance")
    if score.autoguided:
        notes.append("plus one call of the weaker model: autoguidance")
    return f" ({'; '.join(notes)})" if notes else ""


__all__ = ["conditional", "classifier_free", "classifier_guidance", "autoguided", "classifier_gradient", "guided", "num_classes",
           "check_labels", "guidance_scale_to_w", "describe_cost"]
