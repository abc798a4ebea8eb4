"""The D3PM forward chain, its closed-form posterior and the x₀-parameterised reverse process (Austin et al. 2021, §3).

States are integer tensors x [B, ...] with values in 0..K−1; distributions over a state carry a trailing axis of
size K. All probabilities are handled as logarithms, so tiny entries of Q̄_t neither underflow nor divide by zero.
log 0 is LOG_ZERO = −10⁴ rather than −inf: exp of it is exactly 0 in float32 and float64, and gradients stay finite
where every term of a log-sum-exp is impossible. Time steps t are integer tensors [B] in 0..T, with Q̄_0 = I.
"""
from __future__ import annotations

import torch

from .._utils import check_positive_int, describe
from .transitions import Transition


def sample_categorical(logp: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
    """A draw from Cat(exp(logp)) along the last axis by the Gumbel-max trick (LOG_ZERO entries are never drawn)."""
    u = torch.rand(logp.shape, generator=generator, device=logp.device, dtype=logp.dtype)
    gumbel = -torch.log(-torch.log(u.clamp(min=torch.finfo(u.dtype).tiny)))
    return (logp + gumbel).argmax(-1)


LOG_ZERO = -1e4


def _log(p: torch.Tensor) -> torch.Tensor:
    return torch.where(p > 0, p, 1.0).log().masked_fill(p <= 0, LOG_ZERO)


class D3PM:
    """q(x_t | x_{t−1}) = Cat(x_{t−1} Q_t) and q(x_t | x_0) = Cat(x_0 Q̄_t), Q̄_t = Q_1 ⋯ Q_t, for t = 1..T."""

    def __init__(self,
                 transition: Transition,   # the family of Q_t (uniform, absorbing, discretised Gaussian)
                 betas: torch.Tensor,      # β_1..β_T, each in (0, 1]
                 ):
        if not isinstance(transition, Transition):
            raise TypeError(f"transition must be a scoresde.discrete Transition, got {describe(transition)}")
        if not isinstance(betas, torch.Tensor) or betas.ndim != 1 or len(betas) == 0:
            raise ValueError(f"betas must be a 1-D tensor of per-step rates, got {describe(betas)}")
        if not bool(((betas > 0) & (betas <= 1)).all()):
            raise ValueError(f"betas must lie in (0, 1], got values in [{betas.min().item():.3g}, {betas.max().item():.3g}]")
        self.transition, self.betas = transition, betas.double()
        self.T, self.K, self.K0 = len(betas), transition.num_states, transition.num_data_states
        eye = torch.eye(self.K, dtype=torch.float64)[None]
        self.Q = torch.cat([eye, transition.matrices(self.betas)])   # Q[t] = Q_t, Q[0] = I
        self.Qbar = self.Q.clone()                                  # Qbar[t] = Q̄_t = Q_1 ⋯ Q_t, Qbar[0] = I
        for t in range(1, self.T + 1):
            self.Qbar[t] = self.Qbar[t - 1] @ self.Q[t]
        self.prior = transition.stationary                          # p(x_T)
        self._cache = {}

    # -- tables on the device and in the dtype of the caller, as logarithms -----------------------------------------
    def _table(self, name: str, like: torch.Tensor) -> torch.Tensor:
        key = (name, like.device, like.dtype)
        if key not in self._cache:
            self._cache[key] = _log(getattr(self, name)).to(like.device, like.dtype)
        return self._cache[key]

    def log_transition(self, s: torch.Tensor, t: torch.Tensor, like: torch.Tensor) -> torch.Tensor:
        """log Q_{s|t} = log(Q_{s+1} ⋯ Q_t) [B, K, K], the matrix of q(x_t | x_s), for steps s < t [B]."""
        if bool((t - s == 1).all()):
            return self._table("Q", like)[t]
        if bool((s == s[0]).all() and (t == t[0]).all()):  # one step of a sampler: one product
            return self._log_product(int(s[0]), int(t[0]), like).expand(len(t), -1, -1)
        out = torch.empty(len(t), self.K, self.K, device=like.device, dtype=like.dtype)
        for a, b in torch.unique(torch.stack([s, t], 1), dim=0).tolist():
            out[(s == a) & (t == b)] = self._log_product(a, b, like)
        return out

    def _log_product(self, s: int, t: int, like: torch.Tensor) -> torch.Tensor:
        key = ("Q", s, t, like.device, like.dtype)
        if key not in self._cache:
            product = torch.linalg.multi_dot([*self.Q[s + 1:t + 1], torch.eye(self.K, dtype=torch.float64)])
            self._cache[key] = _log(product).to(like.device, like.dtype)
        return self._cache[key]

    def check_steps(self, s: torch.Tensor, t: torch.Tensor) -> None:
        if not bool(((0 <= s) & (s < t) & (t <= self.T)).all()):
            raise ValueError(f"steps must satisfy 0 <= s < t <= T = {self.T}, got s in [{int(s.min())}, {int(s.max())}] "
                             f"and t in [{int(t.min())}, {int(t.max())}]")

    # -- the forward process -----------------------------------------------------------------------------------------
    def q_logprobs(self, x0: torch.Tensor, t: torch.Tensor, dtype=torch.float32) -> torch.Tensor:
        """log q(x_t | x_0) = log(x_0 Q̄_t) [B, ..., K]."""
        logQbar = self._table("Qbar", torch.empty(0, device=x0.device, dtype=dtype))[t]      # [B, K, K]
        rows = x0.reshape(len(x0), -1)
        out = logQbar.gather(1, rows[..., None].expand(-1, -1, self.K))                      # [B, N, K]
        return out.reshape(*x0.shape, self.K)

    def q_sample(self, x0: torch.Tensor, t: torch.Tensor, generator=None, dtype=torch.float32) -> torch.Tensor:
        """x_t ~ q(x_t | x_0)."""
        return sample_categorical(self.q_logprobs(x0, t, dtype), generator)

    def posterior_logprobs(self, x0: torch.Tensor, x_t: torch.Tensor, s: torch.Tensor, t: torch.Tensor,
                           dtype=torch.float32) -> torch.Tensor:
        """log q(x_s | x_t, x_0) ∝ log q(x_t | x_s) + log q(x_s | x_0) = x_t Q_{s|t}ᵀ ⊙ x_0 Q̄_s, normalised
        (Bayes' rule; Austin et al. 2021, §3, for s = t − 1)."""
        like = torch.empty(0, device=x_t.device, dtype=dtype)
        B = len(x_t)
        from_s = self.log_transition(s, t, like).gather(2, x_t.reshape(B, 1, -1).expand(-1, self.K, -1))  # [B, K, N]
        from_0 = self._table("Qbar", like)[s].gather(1, x0.reshape(B, -1, 1).expand(-1, -1, self.K))     # [B, N, K]
        return torch.log_softmax(from_s.transpose(1, 2) + from_0, -1).reshape(*x_t.shape, self.K)

    # -- the reverse process -----------------------------------------------------------------------------------------
    def x0_loglik(self, x_t: torch.Tensor, t: torch.Tensor, like: torch.Tensor) -> torch.Tensor:
        """log q(x_t | x̃₀) [B, ..., K₀] for every data state x̃₀: the likelihood in Bayes' rule for x̃₀."""
        B, K0 = len(x_t), self.K0
        logQbar_t = self._table("Qbar", like)[t][:, :K0]                                          # [B, K₀, K]
        return logQbar_t.gather(2, x_t.reshape(B, 1, -1).expand(-1, K0, -1)).transpose(1, 2).reshape(*x_t.shape, K0)

    def reverse_logprobs(self, x0_logits: torch.Tensor, x_t: torch.Tensor, s: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        """log p_θ(x_s | x_t) with p_θ(x_s | x_t) = Σ_x̃₀ q(x_s | x_t, x̃₀) p̃_θ(x̃₀ | x_t) (x₀-parameterisation,
        Austin et al. 2021, §3.3), where p̃_θ is softmax(x0_logits) [B, ..., K₀] restricted to the x̃₀ with
        q(x_t | x̃₀) > 0. With the exact p̃ = q(x₀ | x_t) this is the true reverse q(x_s | x_t). (The paper's Eq. 4
        weights the sum by q(x_t | x̃₀) as well, which equals this only where q(x_t | x̃₀) is constant in x̃₀.)"""
        B, K0 = len(x_t), self.K0
        logp0 = torch.log_softmax(x0_logits, -1).reshape(B, -1, K0)                               # [B, N, K₀]
        logQbar = self._table("Qbar", x0_logits)
        cols = x_t.reshape(B, 1, -1)
        to_t = self.x0_loglik(x_t, t, x0_logits).reshape(B, -1, K0)                              # q(x_t | x̃₀)
        logw = torch.where(to_t > LOG_ZERO, logp0 - to_t, LOG_ZERO)                               # p̃(x̃₀)/q(x_t | x̃₀)
        mix = torch.logsumexp(logw[..., None] + logQbar[s][:, None, :K0, :], dim=2)               # Σ_x̃₀ w q(x_s | x̃₀)
        from_s = self.log_transition(s, t, x0_logits).gather(2, cols.expand(-1, self.K, -1))     # q(x_t | x_s) [B, K, N]
        return torch.log_softmax(from_s.transpose(1, 2) + mix, -1).reshape(*x_t.shape, self.K)

    # -- the prior ---------------------------------------------------------------------------------------------------
    def prior_sample(self, shape, generator=None, device=None) -> torch.Tensor:
        """x_T ~ p(x_T), the transition's stationary distribution, independently per dimension."""
        logp = _log(self.prior).to(device=device, dtype=torch.float32).expand(*shape, self.K)
        return sample_categorical(logp, generator)

    def prior_kl(self, x0: torch.Tensor, dtype=torch.float32) -> torch.Tensor:
        """L_T = KL(q(x_T | x_0) ‖ p(x_T)) per dimension [B, ...], in nats."""
        logq = self.q_logprobs(x0, torch.full((len(x0),), self.T, device=x0.device), dtype)
        return kl_categorical(logq, _log(self.prior).to(logq.device, logq.dtype))

    def time_grid(self, steps: int | None = None, device=None) -> torch.Tensor:
        """`steps` + 1 integer times T = t_M > … > t_0 = 0, evenly spaced: t_i = ⌊i T / M⌋ (M = steps, default T)."""
        M = self.T if steps is None else check_positive_int(steps, "steps")
        if M > self.T:
            raise ValueError(f"steps must be <= T = {self.T} (the chain has T steps), got {M}")
        return torch.tensor([i * self.T // M for i in range(M, -1, -1)], device=device)

    def __repr__(self):
        return f"D3PM({type(self.transition).__name__}, K={self.K}, T={self.T})"


def kl_categorical(logq: torch.Tensor, logp: torch.Tensor) -> torch.Tensor:
    """KL(q ‖ p) = Σ_k q_k (log q_k − log p_k) along the last axis, with 0 log 0 = 0."""
    q = logq.exp()
    return torch.where(q > 0, q * (logq - logp), 0.0).sum(-1)
