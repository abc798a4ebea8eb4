"""Linear observation operators y = A x (+ σ_y ε) on batches [B, ...], each with its SVD A = U Σ Vᵀ.

Every operator acts on one sample's shape (`check(shape)` says which it fits) and gives, besides A and Aᵀ:
    Vt(x)  the coordinates Vᵀx of x [B, d] (d = x's size; the first k pair with the singular values),
    V(c)   x from its coordinates,
    Ut(y)  Uᵀy [B, m], and U(c),
    singulars(like)  the k singular values s ≥ 0 (k ≤ min(m, d)),
so that A x = U (s ⊙ (Vᵀx)[:k]) exactly, A⁺ y = V((Uᵀy)[:k] / s, where s > 0, padded with zeros) and the
row-space projection A⁺A x keeps the coordinates with s > 0 (Kawar et al. 2022, Sec. 3.2, the "spectral space").
Blur is diagonal in the Fourier basis: its coordinates are complex, with Hermitian symmetry for real x, and V(c)
returns the real part. A non-linear forward model (DPS only) is any differentiable callable y = f(x).
"""
from __future__ import annotations

import math

import torch

from .._utils import ArgumentTypeError, check_positive_int, check_real, describe
from .projection import COLOR_DECOUPLING


def _shape_error(op, shape, wants: str):
    return ValueError(f"operator {op.name!r} does not fit data of shape {tuple(shape)}: it needs {wants}")


class LinearOperator:
    """Base class: subclasses define check, A, At, Vt, V, Ut, U and singulars for one sample's shape."""

    name = "linear"
    shape: tuple[int, ...] | None = None  # one sample's shape of x, once bound

    def check(self, shape) -> tuple[int, ...]:
        """The observation's per-sample shape for data of per-sample `shape`; ValueError if the operator does not
        fit it."""
        raise NotImplementedError

    def A(self, x: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError

    def At(self, y: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        return self.A(x)

    def data_shape(self, out_shape) -> tuple[int, ...] | None:
        """One sample's shape of x for observations of per-sample `out_shape` (None: it does not say)."""
        return None

    def bind(self, shape) -> "LinearOperator":
        """Fix one sample's shape (checked), as the solvers do before the first step; returns the operator."""
        self.out_shape = self.check(tuple(shape))
        self.shape = tuple(shape)
        self.setup()
        return self

    def setup(self) -> None:
        """Precompute what depends on the bound shape (the singular values, a Fourier multiplier)."""

    def pinv(self, y: torch.Tensor) -> torch.Tensor:
        """A⁺ y: the minimum-norm x with A x = y (on the range)."""
        s = self.singulars(y)
        inv = torch.where(s > 0, 1 / torch.where(s > 0, s, torch.ones_like(s)), torch.zeros_like(s))
        return self.V(self.pad(self.Ut(y)[:, :len(s)] * inv))

    def observed(self, like: torch.Tensor) -> torch.Tensor:
        """Which of the d coordinates Vᵀx the observation fixes (s > 0), a bool tensor [d]."""
        s = self.singulars(like)
        keep = torch.zeros(math.prod(self.shape), dtype=torch.bool, device=like.device)
        keep[:len(s)] = s > 0
        return keep

    def project(self, x: torch.Tensor) -> torch.Tensor:
        """A⁺A x: the orthogonal projection onto the row space (what an observation fixes)."""
        return self.V(self.Vt(x) * self.observed(x))

    def pad(self, c: torch.Tensor) -> torch.Tensor:
        """The k leading coordinates c [B, k] padded with zeros to all d coordinates."""
        return torch.cat([c, c.new_zeros(c.shape[0], math.prod(self.shape) - c.shape[1])], dim=1)

    def matrix(self, shape, dtype=torch.float64, device="cpu") -> torch.Tensor:
        """A as a dense [m, d] matrix on flattened samples (for tests and exact posteriors)."""
        d = math.prod(shape)
        basis = torch.eye(d, dtype=dtype, device=device).reshape(d, *shape)
        return self.A(basis).flatten(1).T

    def describe(self) -> str:
        return self.name


class Inpaint(LinearOperator):
    """A x = m ⊙ x: the known pixels m = 1 (y keeps x's shape, zero where unknown); U = V = I, s = m."""

    name = "inpaint"

    def __init__(self, mask: torch.Tensor):
        if not isinstance(mask, torch.Tensor) or not bool(((mask == 0) | (mask == 1)).all()):
            raise ArgumentTypeError(f"mask must be a tensor of 0/1 (or bool) values, 1 where observed, got "
                                    f"{describe(mask)}")
        self.mask = mask.double()

    def check(self, shape):
        m = self.mask
        if m.ndim > len(shape) or any(a not in (1, b) for a, b in zip(reversed(m.shape), reversed(shape))):
            raise _shape_error(self, shape, f"a mask that broadcasts to it, got mask of shape {tuple(m.shape)}")
        return tuple(shape)

    def data_shape(self, out_shape):
        return tuple(out_shape)

    def _m(self, x, shape):
        return self.mask.to(x.device, x.real.dtype).expand(shape)

    def A(self, x):
        return self._m(x, x.shape[1:]) * x

    At = A

    def Vt(self, x):
        return x.flatten(1)

    def V(self, c):
        return c.reshape(c.shape[0], *self.shape)

    Ut = Vt

    def U(self, c):
        return self.V(c)

    def setup(self):
        self._s = self.mask.expand(self.shape).flatten()

    def singulars(self, like):
        return self._s.to(like.device, like.real.dtype)


class Downsample(LinearOperator):
    """A x = D x, the mean of each factor × factor block of images [C, H, W] (scoresde.resize.downsample).

    Its rows are orthogonal with norm 1/f, so U = I, s = 1/f, and V holds, per block, an orthonormal basis whose
    first vector is the constant 1/f (so (Vᵀx) over blocks starts with f · D x)."""

    name = "downsample"

    def __init__(self, factor: int):
        self.factor = check_positive_int(factor, "factor")
        f2 = self.factor ** 2
        first = torch.cat([torch.ones(f2, 1), torch.eye(f2, dtype=torch.float64)[:, 1:]], dim=1).double()
        Q, _ = torch.linalg.qr(first)
        self.H = Q * torch.sign(Q[0, 0])  # [f², f²] orthogonal, column 0 = 1/f

    def check(self, shape):
        f = self.factor
        if len(shape) != 3 or shape[1] % f or shape[2] % f:
            raise _shape_error(self, shape, f"images [C, H, W] with H and W multiples of factor={f}")
        return (shape[0], shape[1] // f, shape[2] // f)

    def data_shape(self, out_shape):
        return (out_shape[0], *(n * self.factor for n in out_shape[1:])) if len(out_shape) == 3 else None

    def A(self, x):
        return torch.nn.functional.avg_pool2d(x, self.factor) if self.factor > 1 else x

    def At(self, y):
        f = self.factor
        return y.repeat_interleave(f, dim=-2).repeat_interleave(f, dim=-1) / f**2

    def _blocks(self, x):
        B, C, H, W = x.shape
        f = self.factor
        return x.reshape(B, C, H // f, f, W // f, f).permute(0, 1, 2, 4, 3, 5).reshape(B, C, H // f, W // f, f * f)

    def Vt(self, x):
        c = self._blocks(x) @ self.H.to(x.device, x.dtype)  # [B, C, h, w, f²]
        return torch.cat([c[..., 0].flatten(1), c[..., 1:].flatten(1)], dim=1)

    def V(self, c):
        C, H, W = self.shape
        f, B = self.factor, c.shape[0]
        m = C * (H // f) * (W // f)
        blocks = torch.cat([c[:, :m].reshape(B, C, H // f, W // f, 1),
                            c[:, m:].reshape(B, C, H // f, W // f, f * f - 1)], dim=-1)
        x = blocks @ self.H.to(c.device, c.dtype).T
        return x.reshape(B, C, H // f, W // f, f, f).permute(0, 1, 2, 4, 3, 5).reshape(B, C, H, W)

    def Ut(self, y):
        return y.flatten(1)

    def U(self, c):
        return c.reshape(c.shape[0], *self.out_shape)

    def singulars(self, like):
        return torch.full((math.prod(self.out_shape),), 1 / self.factor, dtype=like.real.dtype, device=like.device)


def gaussian_kernel(size: int = 9, std: float = 2.0) -> torch.Tensor:
    """A normalised size × size Gaussian blur kernel with standard deviation `std` pixels."""
    size, std = check_positive_int(size, "size"), check_real(std, "std", low=0, inclusive=(False, True))
    r = torch.arange(size, dtype=torch.float64) - (size - 1) / 2
    k = torch.exp(-0.5 * (r / std) ** 2)
    k = k[:, None] * k[None, :]
    return k / k.sum()


class Blur(LinearOperator):
    """A x = k ⊛ x, circular convolution of each channel of images [C, H, W] with a kernel [kh, kw] centred at
    its middle: diagonal in the unitary 2-D Fourier basis, A = F⁻¹ diag(k̂) F. So Vᵀ = F, s = |k̂| and U = F⁻¹
    diag(k̂/|k̂|): complex coordinates with Hermitian symmetry (V(c) is real for real data).

    Frequencies where |k̂| < rcond · max |k̂| are set to zero, so that A is the blur with its near-null frequencies
    removed: a method that divides by s (A⁺, DDRM, DDNM) would otherwise amplify the noise (and float32 round-off)
    there by up to 1/s. rcond = 3e-2 keeps a 9 × 9, std 2 Gaussian kernel's frequencies up to about 1/4 of the
    sampling rate; rcond = 0 keeps all but the round-off of exact zeros (below 1e-13)."""

    name = "blur"

    def __init__(self, kernel: torch.Tensor | None = None, rcond: float = 3e-2):
        kernel = gaussian_kernel() if kernel is None else kernel
        self.rcond = check_real(rcond, "rcond", 0, 1)
        if not isinstance(kernel, torch.Tensor) or kernel.ndim != 2 or not kernel.is_floating_point():
            raise ArgumentTypeError(f"kernel must be a float tensor [kh, kw], got {describe(kernel)}")
        self.kernel = kernel.double()

    def check(self, shape):
        kh, kw = self.kernel.shape
        if len(shape) != 3 or shape[1] < kh or shape[2] < kw:
            raise _shape_error(self, shape, f"images [C, H, W] at least as large as the kernel ({kh} x {kw})")
        return tuple(shape)

    def data_shape(self, out_shape):
        return tuple(out_shape)

    def setup(self):
        C, H, W = self.shape
        kh, kw = self.kernel.shape
        padded = torch.zeros(H, W, dtype=torch.float64)
        padded[:kh, :kw] = self.kernel
        khat = torch.fft.fft2(torch.roll(padded, (-(kh // 2), -(kw // 2)), dims=(0, 1)))  # centre at (0, 0)
        keep = khat.abs() > max(self.rcond, 1e-13) * khat.abs().max()  # near-null frequencies and round-off zeros
        khat = torch.where(keep, khat, torch.zeros_like(khat))
        s = khat.abs()
        self._khat = khat
        self._phase = torch.where(s > 1e-300, khat / s.clamp(min=1e-300), torch.ones_like(khat))
        self._s = s.expand(C, H, W).flatten()

    def _fft(self, x):
        return torch.fft.fft2(x, norm="ortho")

    def A(self, x):
        f = self._fft(x)
        return torch.fft.ifft2(f * self._khat.to(f.device, f.dtype), norm="ortho").real

    def At(self, y):
        f = self._fft(y)
        return torch.fft.ifft2(f * self._khat.conj().to(f.device, f.dtype), norm="ortho").real

    def Vt(self, x):
        return self._fft(x).flatten(1)

    def V(self, c):
        return torch.fft.ifft2(c.reshape(c.shape[0], *self.shape), norm="ortho").real

    def Ut(self, y):
        f = self._fft(y)
        return (f * self._phase.conj().to(f.device, f.dtype)).flatten(1)

    def U(self, c):
        c = c.reshape(c.shape[0], *self.out_shape)
        return torch.fft.ifft2(c * self._phase.to(c.device, c.dtype), norm="ortho").real

    def singulars(self, like):
        return self._s.to(like.device, like.real.dtype)


class Colorize(LinearOperator):
    """A x = the grey level (x_R + x_G + x_B)/3 of images [3, H, W], y of shape [1, H, W]: one row (1, 1, 1)/3 per
    pixel, so U = I, s = 1/√3 and V is Song et al.'s colour decoupling M (its first column the grey direction)."""

    name = "colorize"

    def check(self, shape):
        if len(shape) != 3 or shape[0] != 3:
            raise _shape_error(self, shape, "RGB images [3, H, W]")
        return (1, *shape[1:])

    def data_shape(self, out_shape):
        return (3, *out_shape[1:]) if len(out_shape) == 3 else None

    def A(self, x):
        return x.mean(1, keepdim=True)

    def At(self, y):
        return y.expand(-1, 3, *y.shape[2:]) / 3

    def Vt(self, x):
        c = torch.einsum("ji,bj...->bi...", COLOR_DECOUPLING.to(x.device, x.dtype), x)
        return torch.cat([c[:, 0].flatten(1), c[:, 1:].flatten(1)], dim=1)

    def V(self, c):
        B, (_, H, W) = c.shape[0], self.shape
        coords = torch.cat([c[:, :H * W].reshape(B, 1, H, W), c[:, H * W:].reshape(B, 2, H, W)], dim=1)
        return torch.einsum("ij,bj...->bi...", COLOR_DECOUPLING.to(c.device, c.dtype), coords)

    def Ut(self, y):
        return y.flatten(1)

    def U(self, c):
        return c.reshape(c.shape[0], *self.out_shape)

    def singulars(self, like):
        return torch.full((math.prod(self.out_shape),), 1 / math.sqrt(3), dtype=like.real.dtype, device=like.device)


class Dense(LinearOperator):
    """A given as a dense matrix [m, d] acting on flattened samples; y is [m]. Its SVD by torch.linalg.svd;
    singular values below rcond · max s (default max(m, d) · float64 eps, numpy's pinv rule) are exact zeros, and
    A is U Σ Vᵀ with them removed, so a rank-deficient matrix has a null space rather than 1/s ≈ 1e16."""

    name = "dense"

    def __init__(self, matrix: torch.Tensor, rcond: float | None = None):
        if not isinstance(matrix, torch.Tensor) or matrix.ndim != 2 or not matrix.is_floating_point():
            raise ArgumentTypeError(f"matrix must be a float tensor [m, d], got {describe(matrix)}")
        if not bool(torch.isfinite(matrix).all()):
            raise ValueError("matrix must be finite")
        eps = torch.finfo(torch.float64).eps
        rcond = max(matrix.shape) * eps if rcond is None else check_real(rcond, "rcond", 0, 1)
        U, s, Vh = torch.linalg.svd(matrix.double(), full_matrices=True)
        s = torch.where(s > rcond * s.max(), s, torch.zeros_like(s))
        self._U, self._s, self._Vh = U, s, Vh
        k = len(s)
        self.M = U[:, :k] @ torch.diag(s) @ Vh[:k]  # the matrix the SVD describes

    def check(self, shape):
        if math.prod(shape) != self.M.shape[1]:
            raise _shape_error(self, shape, f"{self.M.shape[1]} values per sample (matrix is "
                                            f"{self.M.shape[0]} x {self.M.shape[1]})")
        return (self.M.shape[0],)

    def data_shape(self, out_shape):
        return (self.M.shape[1],)

    def A(self, x):
        return x.flatten(1) @ self.M.to(x.device, x.dtype).T

    def At(self, y):
        return (y @ self.M.to(y.device, y.dtype)).reshape(y.shape[0], *self.shape)

    def Vt(self, x):
        return x.flatten(1) @ self._Vh.to(x.device, x.dtype).T

    def V(self, c):
        return (c @ self._Vh.to(c.device, c.dtype)).reshape(c.shape[0], *self.shape)

    def Ut(self, y):
        return y @ self._U.to(y.device, y.dtype)

    def U(self, c):
        return c @ self._U.to(c.device, c.dtype).T

    def singulars(self, like):
        return self._s.to(like.device, like.real.dtype)


OPERATORS = {"inpaint": Inpaint, "downsample": Downsample, "blur": Blur, "colorize": Colorize, "dense": Dense}
MASKS = ("half", "box")  # build_operator's masks: the upper half known, or all but a centre box of half the size


def image_mask(kind: str, shape) -> torch.Tensor:
    """1 where known, [1, H, W] for images [C, H, W]: the upper half ("half") or all but a centre box ("box")."""
    if kind not in MASKS:
        raise ValueError(f"mask must be one of {list(MASKS)}, got {kind!r}")
    h, w = shape[-2:]
    m = torch.ones(1, h, w, dtype=torch.float64)
    if kind == "half":
        m[:, h // 2:, :] = 0
    else:
        m[:, h // 4:h - h // 4, w // 4:w - w // 4] = 0
    return m


def build_operator(name: str, shape, mask: str = "half", factor: int = 4, blur_std: float = 2.0,
                   blur_size: int = 9) -> LinearOperator:
    """An image operator by name (what `scoresde restore --operator` builds), bound to images of `shape` [C, H, W]."""
    builders = {"inpaint": lambda: Inpaint(image_mask(mask, shape)), "downsample": lambda: Downsample(factor),
                "blur": lambda: Blur(gaussian_kernel(blur_size, blur_std)), "colorize": Colorize}
    if name not in builders:
        raise ValueError(f"operator must be one of {list(builders)} for images (a dense matrix is Python only: "
                         f"scoresde.inverse.Dense), got {name!r}")
    return builders[name]().bind(tuple(shape))


def is_linear(operator) -> bool:
    """A LinearOperator (with an SVD); else a non-linear callable forward model."""
    return isinstance(operator, LinearOperator)


def check_operator(operator, shape, linear: bool = False, method: str = "this method"):
    """The operator bound to per-sample `shape` (a LinearOperator, or with linear=False any callable)."""
    if isinstance(operator, LinearOperator):
        return operator.bind(tuple(shape))
    names = "a LinearOperator with an SVD (" + ", ".join(OPERATORS) + ")"
    if linear:
        raise ArgumentTypeError(f"method {method!r} needs operator to be {names}, got {describe(operator)}; a "
                                f"non-linear forward model works with method 'dps'")
    if not callable(operator):
        raise ArgumentTypeError(f"operator must be {names} or a differentiable callable y = f(x), got "
                                f"{describe(operator)}")
    return operator
