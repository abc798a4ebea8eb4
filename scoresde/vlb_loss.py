"""L_vlb and L_hybrid = L_simple + λ L_vlb as training losses, with importance sampling of t (Nichol & Dhariwal 2021).

With t uniform on the N steps, N L_{t−1} is an unbiased estimate of Σ_t L_{t−1} (L_T has no parameters and is
left out), so per sample
    "vlb"     loss = N L_{t−1}                                  (Sec. 3.1; bits/dim, as in guided-diffusion)
    "hybrid"  loss = ‖ε − ε_θ‖² + λ N L_{t−1}[μ_θ stop-gradient]  (Sec. 3.1, λ = 0.001)
With importance sampling (Sec. 3.3) t is drawn with p_t ∝ √E[L_t²] and each loss is weighted by 1/(N p_t).
"""
from __future__ import annotations

import math

import torch
import torch.distributed as dist

from ._utils import check_choice, check_positive_int, check_real, check_bool
from .losses import REDUCTIONS, _check_batch_args
from .parameterization import PARAMETERIZATIONS, get_score_fn
from .sde import check_sde
from .vlb import DECODERS, Chain

OBJECTIVES = ("vlb", "hybrid")


class LossSecondMomentSampler:
    """Draws DDPM timesteps with p_t ∝ √E[L_t²] over the last `history` losses at each t (Nichol & Dhariwal 2021,
    Sec. 3.3); uniform until every t has `history` values. The weight 1/(N p_t) keeps the loss unbiased.

    A floor `uniform_prob`/N is mixed into p (guided-diffusion's 0.001) so that no t is starved. The state is
    two tensors (`state_dict`), saved with the checkpoint, so a resumed run draws the same t.
    """

    def __init__(self, N: int, history: int = 10, uniform_prob: float = 0.001):
        self.N = check_positive_int(N, "N")
        self.history = check_positive_int(history, "history")
        self.uniform_prob = check_real(uniform_prob, "uniform_prob", 0, 1)
        self.losses = torch.zeros(self.N, self.history, dtype=torch.float64)  # the last losses at each t, oldest first
        self.counts = torch.zeros(self.N, dtype=torch.long)  # how many of them are filled

    @property
    def warmed_up(self) -> bool:
        return bool((self.counts == self.history).all())

    def probabilities(self) -> torch.Tensor:
        """p_t (float64 [N]): uniform while warming up, then ∝ √mean(L_t²) mixed with the uniform floor."""
        if not self.warmed_up:
            return torch.full((self.N,), 1 / self.N, dtype=torch.float64)
        p = self.losses.pow(2).mean(1).sqrt()
        return (1 - self.uniform_prob) * p / p.sum() + self.uniform_prob / self.N

    def sample(self, n: int, generator=None, device=None):
        """n timesteps in {0, …, N−1} and their weights 1/(N p_t)."""
        if not self.warmed_up:
            index = torch.randint(0, self.N, (n,), generator=generator, device=device)
            return index, torch.ones(n, device=device)
        p = self.probabilities()
        index = torch.multinomial(p.to(device), n, replacement=True, generator=generator)
        return index, (1 / (self.N * p)).to(device)[index].float()

    def update(self, index: torch.Tensor, losses: torch.Tensor) -> None:
        """Record per-sample losses at their timesteps (from every process, under torch.distributed)."""
        index, losses = index.detach(), losses.detach().double()
        if dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1:
            gathered = [torch.zeros_like(torch.stack([index.double(), losses])) for _ in range(dist.get_world_size())]
            dist.all_gather(gathered, torch.stack([index.double(), losses]))
            index, losses = torch.cat([g[0] for g in gathered]).long(), torch.cat([g[1] for g in gathered])
        for t, loss in zip(index.tolist(), losses.tolist()):
            if self.counts[t] == self.history:
                self.losses[t, :-1] = self.losses[t, 1:].clone()
                self.losses[t, -1] = loss
            else:
                self.losses[t, self.counts[t]] = loss
                self.counts[t] += 1

    def state_dict(self) -> dict:
        return {"losses": self.losses.clone(), "counts": self.counts.clone()}

    def load_state_dict(self, state: dict) -> None:
        if tuple(state["losses"].shape) != (self.N, self.history):
            raise ValueError(f"the saved importance-sampling history has shape {tuple(state['losses'].shape)}, "
                             f"this loss needs ({self.N}, {self.history})")
        self.losses, self.counts = state["losses"].double().cpu().clone(), state["counts"].long().cpu().clone()


class VLBLoss:
    """L_vlb or L_hybrid of a discrete-time model (`model(x, index)`); call it as `loss(model, x0, generator)`."""

    def __init__(self, sde, parameterization: str = "eps", objective: str = "hybrid", learned_variance: bool = True,
                 vlb_weight: float = 0.001, importance_sampling: bool = False, reduce: str = "mean",
                 decoder: str = "discretized"):
        if not check_sde(sde).ddpm_lattice:
            raise ValueError(f"VLBLoss needs an SDE with discrete DDPM betas (VPSDE), got {type(sde).__name__}")
        self.sde = sde
        self.parameterization = check_choice(parameterization, "parameterization", PARAMETERIZATIONS)
        self.objective = check_choice(objective, "objective", OBJECTIVES)
        self.learned_variance = check_bool(learned_variance, "learned_variance")
        if objective == "hybrid" and not learned_variance:
            raise ValueError("objective='hybrid' trains the variance through L_vlb with the mean's gradient stopped: "
                             "it needs learned_variance=True")
        self.vlb_weight = check_real(vlb_weight, "vlb_weight", low=0)  # λ of L_hybrid
        self.reduce = check_choice(reduce, "reduce", REDUCTIONS)
        self.decoder = check_choice(decoder, "decoder", DECODERS)  # L_0: 8-bit data in [−1, 1], or a density
        check_bool(importance_sampling, "importance_sampling")
        self.sampler = LossSecondMomentSampler(sde.N) if importance_sampling else None  # p_t ∝ √E[L_t²]
        self.chain = None  # the DDPM chain, built on the first call from the model's score function

    def per_sample(self, model, x0: torch.Tensor, generator=None, index=None, noise=None) -> torch.Tensor:
        """Per-sample losses [B] at DDPM timesteps `index` [B] (uniform when None), unweighted."""
        _check_batch_args(x0, generator, noise)
        if index is None:
            index = torch.randint(0, self.sde.N, (x0.shape[0],), generator=generator, device=x0.device)
        score_fn = get_score_fn(model, self.sde, self.parameterization, continuous=False,
                                learned_variance=self.learned_variance)
        if self.chain is None:
            self.chain = Chain(score_fn, self.sde)
        variance = "learned" if self.learned_variance else "beta_tilde"
        k = self.sde.N - 1 - index  # chain steps run from t = T down
        terms, z, eps = self.chain.evaluate(score_fn, x0, k, (variance,), noise=noise, generator=generator,
                                            decoder=self.decoder, detach_mean=self.objective == "hybrid")
        dims = x0[0].numel() if self.reduce == "mean" else 1
        vlb = self.sde.N * terms[variance] / (dims * math.log(2))  # N L_{t−1}, bits per dim (per sample for "sum")
        if self.objective == "vlb":
            return vlb
        sq = (z - eps).pow(2).flatten(1)
        return (sq.mean(1) if self.reduce == "mean" else sq.sum(1)) + self.vlb_weight * vlb

    def __call__(self, model, x0: torch.Tensor, generator=None, y=None) -> torch.Tensor:
        if self.sampler is None:
            return self.per_sample(model, x0, generator).mean()
        index, weight = self.sampler.sample(x0.shape[0], generator, x0.device)
        losses = self.per_sample(model, x0, generator, index=index)
        self.sampler.update(index, losses)
        return (losses * weight.to(losses.dtype)).mean()

    def state_dict(self) -> dict:
        """The importance sampler's history (empty without importance sampling)."""
        return self.sampler.state_dict() if self.sampler is not None else {}

    def load_state_dict(self, state: dict) -> None:
        if self.sampler is not None and state:
            self.sampler.load_state_dict(state)
