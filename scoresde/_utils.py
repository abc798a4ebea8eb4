"""Small helpers shared by every module: broadcasting, validation, progress bars.

The `check_*` validators guard the public entry points. Each raises at once with a message that names
the argument, the value received and what is accepted. A wrong type raises `ArgumentTypeError`, which
is both a TypeError and a ValueError, so callers that catch ValueError (the CLI) report it cleanly.
"""
from __future__ import annotations

import difflib
import math
import numbers
from typing import Iterable, Sequence

import torch


class ArgumentTypeError(TypeError, ValueError):
    """An argument of the wrong type: a TypeError that `except ValueError` also catches."""


@torch.no_grad()
def ema_update_(ema: torch.nn.Module, model: torch.nn.Module, weight: float) -> None:
    """One moving-average step: each of ema's parameters moves `weight` of the way to model's (θ̂ ← θ̂ + w(θ − θ̂)),
    and its buffers (running statistics) become model's."""
    for ema_p, p in zip(ema.parameters(), model.parameters()):
        ema_p.lerp_(p.detach(), weight)
    for ema_b, b in zip(ema.buffers(), model.buffers()):
        ema_b.copy_(b)


def append_dims(v: torch.Tensor, ndim: int) -> torch.Tensor:
    """Append trailing singleton dims so a per-sample tensor [B] broadcasts against [B, ...]."""
    extra = ndim - v.ndim
    if extra < 0:
        raise ValueError(f"append_dims: tensor has {v.ndim} dims, more than the target {ndim}")
    return v.reshape(*v.shape, *([1] * extra))


def describe(value) -> str:
    """What an error message says was received: `value!r (type)`, shortened, or a tensor's shape and dtype."""
    if isinstance(value, torch.Tensor):
        return f"a tensor of shape {tuple(value.shape)} and dtype {value.dtype}"
    text = repr(value)
    text = text if len(text) <= 80 else text[:77] + "..."
    return f"{text} ({type(value).__name__})"


def did_you_mean(got, valid: Iterable[str], cutoff: float = 0.6) -> str:
    """" (did you mean 'x'?)" with the closest valid names to a misspelt one, or "" when none is close."""
    close = difflib.get_close_matches(str(got), [str(v) for v in valid], n=3, cutoff=cutoff)
    return f" (did you mean {' or '.join(repr(c) for c in close)}?)" if close else ""


def choice_error(arg: str, got, valid: Iterable[str]) -> ValueError:
    """A ValueError naming the argument, what it got and the valid choices (and the closest, if any is close)."""
    return ValueError(f"{arg} must be one of {sorted(valid)}, got {got!r}{did_you_mean(got, valid)}")


def check_choice(value, name: str, valid: Iterable[str]) -> str:
    """Return value if it is one of the names in `valid`; anything else (a list, None) fails with the choices."""
    if not isinstance(value, str):
        raise ArgumentTypeError(f"{name} must be one of {sorted(valid)}, got {describe(value)}")
    if value not in valid:
        raise choice_error(name, value, valid)
    return value


def _interval(low, high, inclusive, symbol: str | None = None) -> str:
    """The accepted range as a message says it: "be > 0", "be <= 1" or "lie in (0, T) = (0, 1.0]"."""
    lo_in, hi_in = inclusive
    if high is None:
        return f"be {'>=' if lo_in else '>'} {low}"
    if low is None:
        return f"be {'<=' if hi_in else '<'} {high}"
    return f"lie in {symbol + ' = ' if symbol else ''}{'[' if lo_in else '('}{low}, {high}{']' if hi_in else ')'}"


def check_real(value, name: str, low: float | None = None, high: float | None = None,
               inclusive: tuple[bool, bool] = (True, True), symbol: str | None = None) -> float:
    """Return value as a float if it is a finite real number within [low, high] (ends per `inclusive`).

    Strings, None, bools and tensors of more than one element raise ArgumentTypeError; NaN, ±inf and
    values out of range raise ValueError, e.g. "eps must be > 0, got -1". `symbol` names the interval
    in words ("(0, T)") before its numbers.
    """
    if isinstance(value, torch.Tensor) and value.numel() == 1 and not value.dtype.is_complex:
        value = value.item()
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise ArgumentTypeError(f"{name} must be a real number, got {describe(value)}")
    if not math.isfinite(value):
        raise ValueError(f"{name} must be finite, got {value!r}")
    lo_in, hi_in = inclusive
    if (low is not None and (value < low or (value == low and not lo_in))) or \
            (high is not None and (value > high or (value == high and not hi_in))):
        raise ValueError(f"{name} must {_interval(low, high, inclusive, symbol)}, got {value!r}")
    return float(value)


def check_positive_int(value, name: str, minimum: int = 1) -> int:
    """Return value if it is an integer >= minimum (bools and floats such as 10.0 are refused)."""
    if isinstance(value, bool) or not isinstance(value, numbers.Integral):
        raise ArgumentTypeError(f"{name} must be an integer >= {minimum}, got {describe(value)}")
    if value < minimum:
        raise ValueError(f"{name} must be an integer >= {minimum}, got {value!r}")
    return int(value)


def check_bool(value, name: str, allow_none: bool = False):
    """Return value if it is a bool (or None when allowed): the string "False" is not false."""
    if not (isinstance(value, bool) or (allow_none and value is None)):
        raise ArgumentTypeError(f"{name} must be {'True, False or None' if allow_none else 'True or False'}, "
                                f"got {describe(value)}")
    return value


def check_callable(fn, name: str, signature: str = "") -> None:
    """Raise unless fn can be called; `signature` says how it will be, e.g. "score_fn(x, t) -> tensor like x"."""
    if not callable(fn):
        raise ArgumentTypeError(f"{name} must be callable{' as ' + signature if signature else ''}, got {describe(fn)}")


def check_output(out, x: torch.Tensor, name: str = "score_fn") -> torch.Tensor:
    """Return out if it is a tensor shaped exactly like x: a [B, 1] output must not broadcast silently."""
    if not isinstance(out, torch.Tensor) or out.shape != x.shape:
        got = tuple(out.shape) if isinstance(out, torch.Tensor) else type(out).__name__
        raise ValueError(f"{name} must return a tensor shaped like x {tuple(x.shape)}, got {got}")
    return out


def check_like(value, x: torch.Tensor, name: str, like: str = "x") -> torch.Tensor:
    """Return value if it is a floating-point tensor of x's shape (noise given for x, for example)."""
    if not isinstance(value, torch.Tensor) or not value.is_floating_point() or value.shape != x.shape:
        raise ValueError(f"{name} must be a floating-point tensor shaped like {like} {tuple(x.shape)}, "
                         f"got {describe(value)}")
    return value


def check_time(t: torch.Tensor, T: float, batch: int | None = None, name: str = "t") -> None:
    """Raise ValueError unless t is a float tensor [B] with values in (0, T]."""
    if not isinstance(t, torch.Tensor) or not t.is_floating_point():
        raise ValueError(f"{name} must be a floating-point tensor of shape [B], got {type(t).__name__}"
                         + (f" of dtype {t.dtype}" if isinstance(t, torch.Tensor) else ""))
    if t.ndim != 1:
        raise ValueError(f"{name} must have shape [B], got shape {tuple(t.shape)}")
    if batch is not None and t.shape[0] != batch:
        raise ValueError(f"{name} has batch size {t.shape[0]} but x has batch size {batch}")
    if t.numel() and not bool(((t > 0) & (t <= T * (1 + 1e-6))).all()):
        raise ValueError(f"{name} must lie in (0, T] = (0, {T}], got values in "
                         f"[{t.min().item():.3g}, {t.max().item():.3g}]")


def check_batch(x: torch.Tensor, name: str = "x", finite: bool = False) -> None:
    """Raise ValueError unless x is a float tensor with a batch dimension (and, if asked, finite)."""
    if not isinstance(x, torch.Tensor) or not x.is_floating_point() or x.ndim < 2:
        raise ValueError(f"{name} must be a floating-point tensor of shape [B, ...] with at least "
                         f"2 dims (use [B, 1] for scalars), got {describe(x)}")
    if finite and not bool(torch.isfinite(x).all()):
        raise ValueError(f"{name} must be finite, got {describe_nonfinite(x)}")


def describe_nonfinite(x: torch.Tensor) -> str:
    """The non-finite entries of x, counted for a message: "3 NaN and 1 inf among 8 values"."""
    return f"{int(x.isnan().sum())} NaN and {int(x.isinf().sum())} inf among {x.numel()} values"


def check_finite(x: torch.Tensor, message: str) -> None:
    """Raise ValueError(message) if x holds NaN or ±inf (one host synchronisation)."""
    if not bool(torch.isfinite(x).all()):
        raise ValueError(message)


def check_shape(shape, name: str = "shape") -> tuple[int, ...]:
    """Return shape as a tuple if it is a sequence [B, ...] of at least 2 positive ints."""
    if isinstance(shape, (str, bytes)) or not isinstance(shape, Sequence):
        raise ArgumentTypeError(f"{name} must be a sequence of ints [B, ...] such as (64, 2), got {describe(shape)}")
    dims = tuple(shape)
    if len(dims) < 2 or any(isinstance(s, bool) or not isinstance(s, numbers.Integral) or s < 1 for s in dims):
        raise ValueError(f"{name} must be [B, ...] with at least 2 positive dims (use [B, 1] for scalars), got {dims}")
    return tuple(int(s) for s in dims)


def check_device(device, name: str = "device") -> torch.device:
    """Parse device into a torch.device that exists on this machine ("cpu", "cuda", "cuda:1", ...)."""
    if not isinstance(device, (str, torch.device)):
        raise ArgumentTypeError(f"{name} must be a torch.device or a string such as 'cpu' or 'cuda', "
                                f"got {describe(device)}")
    try:
        dev = torch.device(device)
    except RuntimeError:
        raise ValueError(f"{name} must name a torch device such as 'cpu', 'cuda' or 'cuda:0', got {device!r}") from None
    if dev.type == "cuda":
        if not torch.cuda.is_available():
            raise ValueError(f"{name}={str(device)!r} but CUDA is not available on this machine; use 'cpu'")
        if dev.index is not None and dev.index >= torch.cuda.device_count():
            raise ValueError(f"{name}={str(device)!r} but this machine has {torch.cuda.device_count()} CUDA device(s)")
    elif dev.type == "mps" and not torch.backends.mps.is_available():
        raise ValueError(f"{name}={str(device)!r} but MPS is not available on this machine; use 'cpu'")
    return dev


def check_dtype(dtype, name: str = "dtype") -> torch.dtype:
    """Return dtype (None: torch's default) if it is a floating-point torch.dtype."""
    if dtype is None:
        return torch.get_default_dtype()
    if not isinstance(dtype, torch.dtype) or not dtype.is_floating_point:
        raise ArgumentTypeError(f"{name} must be a floating-point torch.dtype such as torch.float32 or "
                                f"torch.float64, got {describe(dtype)}")
    return dtype


def check_generator(generator: torch.Generator | None, device: torch.device | None = None) -> None:
    """Raise unless generator is None or a torch.Generator on the type of `device` (when given)."""
    if generator is None:
        return
    if not isinstance(generator, (torch.Generator, SampleSeeds)):  # SampleSeeds: a sampler's per-sample seeds
        raise ArgumentTypeError(f"generator must be a torch.Generator or None, got {describe(generator)}; "
                                "create one with torch.Generator(device).manual_seed(seed)")
    if device is not None and torch.device(generator.device).type != torch.device(device).type:
        raise ValueError(f"generator lives on {generator.device} but sampling runs on {device}; "
                         f"create it with torch.Generator(device={str(device)!r})")


def resolve_device(device, generator: torch.Generator | None) -> torch.device:
    """The device to draw on (default: the generator's, else the CPU), checked against the generator."""
    check_generator(generator)
    device = check_device(device if device is not None else generator.device if generator is not None else "cpu")
    check_generator(generator, device)
    return device


class SampleSeeds:
    """One torch.Generator per sample: sample i's noise comes from seeds[i] alone (as in EDM and k-diffusion),
    so it does not depend on the batch size or on the sample's position in the batch."""

    def __init__(self, seeds: Sequence[int], device):
        seeds = list(seeds)
        if not seeds or any(isinstance(s, bool) or not isinstance(s, int) or s < 0 for s in seeds):
            raise ValueError(f"seeds must be a non-empty sequence of non-negative integers, got {seeds!r}")
        self.device = torch.device(device)
        self.generators = [torch.Generator(device=self.device).manual_seed(s) for s in seeds]

    def __len__(self) -> int:
        return len(self.generators)

    def randn(self, shape: Sequence[int], device, dtype) -> torch.Tensor:
        if shape[0] != len(self):
            raise ValueError(f"{len(self)} seeds given for a batch of {shape[0]} samples")
        return torch.stack([torch.randn(tuple(shape[1:]), generator=g, device=device, dtype=dtype) for g in self.generators])


def randn(shape: Sequence[int], generator: torch.Generator | SampleSeeds | None, device, dtype) -> torch.Tensor:
    """Standard normal noise drawn from `generator` (which must live on `device`), or from per-sample seeds."""
    if isinstance(generator, SampleSeeds):
        return generator.randn(shape, device, dtype)
    return torch.randn(tuple(shape), generator=generator, device=device, dtype=dtype)


def full_precision(logits: torch.Tensor) -> torch.Tensor:
    """Logits as float32 or float64: bf16/fp16 (autocast) are promoted to float32, float64 stays."""
    return logits if logits.dtype in (torch.float32, torch.float64) else logits.float()


def noise_like(x: torch.Tensor, generator: torch.Generator | None) -> torch.Tensor:
    """Standard normal noise shaped, placed and typed like x."""
    return randn(x.shape, generator, x.device, x.dtype)


def progress(iterable, enabled: bool, desc: str = "", total: int | None = None):
    """Wrap an iterable in a tqdm bar when enabled and tqdm is installed."""
    if not enabled:
        return iterable
    try:
        from tqdm.auto import tqdm
    except ImportError:  # tqdm is an optional extra
        return iterable
    return tqdm(iterable, desc=desc, total=total, leave=False, dynamic_ncols=True)
