"""Score models of the Gaussian SDEs (Song et al. 2021): VP, sub-VP and VE, in continuous or DDPM's discrete time,
unconditional or class-conditional, under N(0, I) or PriorGrad's data prior (config.sde.prior='data')."""
from __future__ import annotations

import torch

from .. import builders
from .base import Family, evaluate_likelihood, gaussian_display


def ode_bits_per_dim(run, x, generator, y=None):
    """Bits/dim from the probability-flow ODE likelihood (Hutchinson trace): of p(x), or of p(x | y) given labels y
    (which a per-class prior needs)."""
    from ..likelihood import likelihood
    score, sde = (run.score_fn, run.sde) if y is None else (run.guided_score(y), run.family.given(run.sde, y))
    r = likelihood(score, sde, x, generator=generator)
    return r.bpd, r.nfe


def discrete_bound(run, x, seed: int, log=None) -> dict:
    """{variance: bits/dim of L_vlb and its terms} on the model's N-step chain: the model's own variance (learned),
    or both fixed ones, β̃ and β (Ho et al. 2020), from the same model calls. {} where no decoder fits the data."""
    from ..variances import learned_variance
    from ..vlb import variational_bound

    try:
        decoder = builders.vlb_decoder(run.config)
    except ValueError as e:
        (log or print)(f"  no discrete bound: {e}")
        return {}
    variances = ("learned",) if learned_variance(run.score_fn) else ("beta_tilde", "beta")
    g = torch.Generator(device=run.device).manual_seed(seed)
    bs = run.config.eval.batch_size
    parts = [variational_bound(run.score_fn, run.sde, x[i:i + bs], variances, decoder=decoder, generator=g)
             for i in range(0, len(x), bs)]
    out = {}
    for v in variances:
        bpd = torch.cat([p[v].bpd.cpu() for p in parts])
        terms = {k: sum(p[v].summary()[k] * len(p[v].bpd) for p in parts) / len(x) for k in parts[0][v].summary()}
        out[v] = {**terms, "bpd_se": (bpd.std() / len(bpd) ** 0.5).item() if len(bpd) > 1 else float("nan")}
    return out


def evaluate(run, n=None, seed: int = 0, dequantize: bool = True, log=None) -> dict:
    """Held-out loss, ODE bits/dim and, under N(0, I), the discrete variational bound of the N-step chain."""
    return evaluate_likelihood(run, n, seed, dequantize, log, bound=discrete_bound if run.prior is None else None)


def check(config) -> None:
    """PriorGrad's data prior (config.sde.prior='data') is trained with objective 'simple'; per class only for a
    class-conditional model."""
    s = config.sde
    if s.prior == "standard":
        if s.prior_per_class:
            raise ValueError("config.sde.prior_per_class=True needs config.sde.prior='data', got 'standard'")
        return
    if config.loss.objective != "simple":
        raise ValueError(f"config.sde.prior='data' is for score models trained with objective 'simple', got "
                         f"config.loss.objective={config.loss.objective!r}")
    if s.prior_per_class and not config.model.num_classes:
        raise ValueError("config.sde.prior_per_class=True needs a class-conditional model: set config.model.num_classes "
                         "to the data's number of classes")


def labels_in_turn(run, n):
    """What samples during training condition on: each class in turn for a class-conditional model."""
    K = run.config.model.num_classes
    return {"labels": torch.arange(n) % K} if K else {}


def _held_out_labels(run, n):
    """A per-class prior scores x under its class's prior: bits/dim need the held-out labels."""
    return run.data.eval_labels[:n] if run.config.sde.prior_per_class else None


GAUSSIAN = Family(
    name="gaussian", description="a score model of a Gaussian SDE (vp, subvp, ve; config.sde.type)",
    data=builders.build_data_from_config, process=lambda config: builders.build_sde(config.sde),
    model=lambda config, shape: builders.build_model(config.model, shape, config.sde, config.loss.continuous,
                                                    config.data.centered), score_fn=builders.build_score_fn,
    loss_fn=builders.build_loss_fn, sampler=builders.build_sampler, to_display=gaussian_display, evaluate=evaluate,
    bits_per_dim=ode_bits_per_dim, given=lambda sde, y: sde.given(y), prior=builders.data_prior,
    held_out_condition=_held_out_labels, sample_inputs=labels_in_turn, check=check)
