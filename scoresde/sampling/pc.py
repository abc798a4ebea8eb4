"""Predictor–corrector sampling (Song et al. 2021, Algorithms 1–3): a predictor move, then Langevin corrector steps."""
from __future__ import annotations

from .._utils import SampleSeeds, append_dims, check_choice, check_positive_int, check_real, noise_like
from .ancestral import AncestralSampler
from .base import Sampler
from .sde_solvers import EulerMaruyamaSampler, ReverseDiffusionSampler

PREDICTORS = {"ancestral": AncestralSampler, "reverse_diffusion": ReverseDiffusionSampler,
              "euler_maruyama": EulerMaruyamaSampler, "none": None}


NORMS = ("batch", "sample")


def langevin_step_size(grad, noise, snr, alpha, sigma, per_sample=False):
    """ε = 2 α (r ‖z‖/‖s‖)², the signal-to-noise rule of Song et al. 2021, Algorithm 5: with the norms averaged
    over the batch as in score_sde, or per sample ([B] step sizes, so no sample depends on the others)."""
    z_norm, s_norm = noise.flatten(1).norm(dim=1), grad.flatten(1).norm(dim=1)
    if not per_sample:
        z_norm, s_norm = z_norm.mean(), s_norm.mean()
    return 2 * alpha * (snr * z_norm / s_norm) ** 2


def annealed_langevin_step_size(grad, noise, snr, alpha, sigma, per_sample=False):
    """ε = 2 α (r σ_t)², annealed Langevin dynamics (Song & Ermon 2019; score_sde's corrector)."""
    return 2 * alpha * (snr * sigma) ** 2


CORRECTORS = {"langevin": langevin_step_size, "annealed_langevin": annealed_langevin_step_size, "none": None}


class PCSampler(Sampler):
    """At each grid time: `n_corrector_steps` Langevin steps, then a predictor move to the next time."""

    name = "pc"
    one_step_when = ""  # one step at a time from x alone: projection-based conditioning applies
    kind = "SDE + corrector"  # family, for `scoresde compare`

    def __init__(self, predictor: str = "reverse_diffusion", corrector: str = "langevin", snr: float = 0.16,
                 n_corrector_steps: int = 1, norm: str = "batch", **kwargs):
        super().__init__(**kwargs)
        check_choice(predictor, "predictor", PREDICTORS)
        check_choice(corrector, "corrector", CORRECTORS)
        self.predictor_name, self.corrector_name = predictor, corrector
        self.predictor = PREDICTORS[predictor](**kwargs) if PREDICTORS[predictor] else None
        self.step_size = CORRECTORS[corrector]
        self.snr = check_real(snr, "snr", low=0, inclusive=(False, True))  # signal-to-noise ratio r of the corrector
        # Langevin step size from norms averaged over the batch (score_sde) or per sample
        self.norm = check_choice(norm, "norm", NORMS)
        self.n_corrector_steps = check_positive_int(n_corrector_steps, "n_corrector_steps", minimum=0)

    def prepare_for(self, score, sde, ts, x):
        c = self.predictor.prepare_for(score, sde, ts, x) if self.predictor else {}
        # α of the Langevin step: score_sde's α_i = 1 − β_i, here a² over one step T/N at each time.
        a, _ = sde.transition_coeffs(ts, (ts - sde.T / sde.N).clamp(min=0))
        return {**c, "langevin_alpha": a**2, "sigma": sde.marginal_coeffs(ts)[1]}

    def correct(self, score, x, k, c, generator):
        if self.step_size is None:
            return x
        if self.corrector_name == "langevin" and self.norm == "batch" and isinstance(generator, SampleSeeds):
            raise ValueError("corrector='langevin' with norm='batch' couples the samples of a batch; "
                             "with per-sample seeds use norm='sample'")
        for _ in range(self.n_corrector_steps):
            grad, z = score(x, c["t"][k]), noise_like(x, generator)
            step = self.step_size(grad, z, self.snr, c["langevin_alpha"][k], c["sigma"][k], self.norm == "sample")
            step = append_dims(step, x.ndim) if step.ndim else step
            x = x + step * grad + (2 * step).sqrt() * z
        return x

    def step(self, score, sde, x, k, c, generator):
        x = self.correct(score, x, k, c, generator)
        return self.predictor.step(score, sde, x, k, c, generator) if self.predictor else x

    def finish(self, score, sde, x, c, generator):
        return self.correct(score, x, len(c["t"]) - 1, c, generator)
