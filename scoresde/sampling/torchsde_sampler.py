"""The reverse-time SDE solved by torchsde.sdeint (Li et al. 2020; Kidger et al. 2021).

torchsde integrates forward in time with a 2-D state, so with s = T − t and y(s) = flatten(x(T − s)):
    dy = −[f(t) x − g(t)² ∇log p_t(x)] ds + g(t) dW_s.
The noise is additive (g does not depend on x), so Itô and Stratonovich solutions coincide and every
torchsde method applies; `sde_type` is chosen to suit the method.
"""
from __future__ import annotations

import torch
import torchsde

from .._utils import SampleSeeds, append_dims, check_choice
from ..sde import reverse_drift
from .base import Sampler

# method -> the SDE type torchsde expects for it (the same process here, see above).
METHODS = {"euler": "ito", "milstein": "ito", "srk": "ito", "reversible_heun": "stratonovich",
           "heun": "stratonovich", "midpoint": "stratonovich", "euler_heun": "stratonovich"}
# torchsde 0.2.6's BrownianPath is left out: it takes no seed (runs could not repeat) and is deprecated there.
BROWNIAN = ("interval", "tree")
LEVY_METHODS = ("srk", "reversible_heun")  # need space-time Lévy area, which only BrownianInterval provides


class _ReverseSDE(torch.nn.Module):
    noise_type = "diagonal"

    def __init__(self, score, sde, shape, T, sde_type):
        super().__init__()
        self.score, self.sde, self.shape, self.T, self.sde_type = score, sde, shape, T, sde_type

    def _time(self, s, y):
        return (self.T - s).to(y.dtype).expand(y.shape[0]) if torch.is_tensor(s) else torch.full(
            (y.shape[0],), self.T - s, device=y.device, dtype=y.dtype)

    def f(self, s, y):
        t = self._time(s, y)
        return -reverse_drift(self.sde, self.score, y.view(self.shape), t, 1.0).flatten(1)

    def g(self, s, y):
        return append_dims(self.sde.coefficients(self._time(s, y))[1], 2).expand_as(y)


class _PerSampleBrownian(torchsde.BaseBrownian):
    """One Brownian motion per sample (size [1, D] each, seeded by that sample's own generator), stacked."""

    def __init__(self, parts):
        self.parts = parts

    def __call__(self, ta, tb=None, return_U=False, return_A=False):
        outs = [part(ta, tb, return_U=return_U, return_A=return_A) for part in self.parts]
        return tuple(map(torch.cat, zip(*outs))) if isinstance(outs[0], tuple) else torch.cat(outs)

    def __repr__(self):
        return f"_PerSampleBrownian({len(self.parts)} x {self.parts[0]!r})"

    dtype = property(lambda self: self.parts[0].dtype)
    device = property(lambda self: self.parts[0].device)
    shape = property(lambda self: (len(self.parts), *self.parts[0].shape[1:]))
    levy_area_approximation = property(lambda self: self.parts[0].levy_area_approximation)


def _brownian(kind, t1, size, device, dtype, generator, levy):
    if isinstance(generator, SampleSeeds):  # per-sample seeds: each sample's path from its own generator
        return _PerSampleBrownian([_brownian(kind, t1, (1, *size[1:]), device, dtype, g, levy) for g in generator.generators])
    entropy = int(torch.randint(0, 2**31 - 1, (1,), generator=generator, device=device).item())
    if kind == "interval":
        return torchsde.BrownianInterval(t0=0.0, t1=t1, size=size, device=device, dtype=dtype, entropy=entropy,
                                         levy_area_approximation=levy)
    return torchsde.BrownianTree(t0=0.0, t1=t1, w0=torch.zeros(size, device=device, dtype=dtype), entropy=entropy)


class TorchSDESampler(Sampler):
    """torchsde.sdeint on the reverse-time SDE with dt = (T − eps)/(steps − 1) and fixed steps.

    method: one of METHODS (srk costs several score calls per step; the NFE reported is counted).
    brownian: torchsde's BrownianInterval ("interval", default) or BrownianTree ("tree"); the entropy
    is drawn from the sampler's generator, so seeded runs repeat. srk and reversible_heun need the
    interval's space-time Lévy area. A user time grid is not
    supported: torchsde takes a constant dt.
    """

    name = "torchsde"
    kind = "SDE"  # family, for `scoresde compare`

    def __init__(self, method: str = "euler", brownian: str = "interval", **kwargs):
        super().__init__(**kwargs)
        check_choice(method, "method", METHODS)
        check_choice(brownian, "brownian", BROWNIAN)
        if brownian != "interval" and method in LEVY_METHODS:
            raise ValueError(f"method {method!r} needs brownian='interval' (space-time Lévy area), got {brownian!r}")
        if self.ts is not None or self.grid != "uniform":
            raise ValueError("the torchsde sampler needs a uniform grid: give steps and eps, not ts or another grid")
        self.method, self.brownian = method, brownian

    def integrate(self, score, sde, x, ts, generator):
        if len(ts) < 2:
            return x
        shape = x.shape
        span = torch.tensor([0.0, (ts[0] - ts[-1]).item()], device=x.device, dtype=x.dtype)  # s-grid in x's dtype
        levy = "space-time" if self.method in LEVY_METHODS else "none"
        bm = _brownian(self.brownian, span[1].item(), (shape[0], x[0].numel()), x.device, x.dtype, generator, levy)
        rsde = _ReverseSDE(score, sde, shape, ts[0].item(), METHODS[self.method])
        ys = torchsde.sdeint(rsde, x.flatten(1), span, bm=bm, method=self.method, dt=span[1].item() / (len(ts) - 1))
        x = ys[-1].view(shape)
        self._record(x, ts[-1], len(ts) - 2)
        return x
