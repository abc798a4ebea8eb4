"""Bad input fails at once at every public entry point, naming the argument; non-finite values stop samplers soon.

Each BAD case asserts the exception type and that the message names the argument (and, where it helps,
the value received). The NaN tests count score calls: a score that turns NaN after a few calls must
stop every sampler and the likelihood within a bounded number of evaluations, naming the time reached.
"""
import math
import re

import numpy as np
import pytest
import torch

import scoresde
from scoresde import CosineSchedule, VESDE, VPSDE, subVPSDE
from scoresde._utils import ArgumentTypeError
from scoresde.analytic import GaussianMixture
from scoresde.data import ImageData, ToyData, build_data, stream_generator
from scoresde.data.toy import checkerboard, moons
from scoresde.likelihood import dequantize, likelihood, uint8_bpd_offset
from scoresde.losses import DDPMLoss, DSMLoss
from scoresde.metrics import frechet_distance, kid, mmd, sliced_wasserstein
from scoresde.parameterization import convert, get_score_fn
from scoresde.sampling import get_sampler
from scoresde.sampling import base

SDE = VPSDE()
X = torch.randn(4, 2, generator=torch.Generator().manual_seed(0))
T_HALF = torch.full((4,), 0.5)
NAN = float("nan")


def score(x, t):
    return -x


def model(x, label):
    return torch.zeros_like(x)


def sample(name="ddim", options=None, **call):
    """Run a 3-step sampler on (score, SDE, (4, 2)), with any call argument replaced."""
    args = {"score_fn": score, "sde": SDE, "shape": (4, 2), **call}
    sampler = get_sampler(name, **{"steps": 3, "progress": False, **(options or {})})
    return sampler(args.pop("score_fn"), args.pop("sde"), args.pop("shape"), **args)


MIXTURE = GaussianMixture([0.5, 0.5], [[-1.0, 0.0], [1.0, 0.0]], torch.eye(2, dtype=torch.float64).expand(2, 2, 2))

# (id, call, exception type, pattern the message must match)
BAD = [
    # SDEs and schedules
    ("vp-beta_min-str", lambda: VPSDE(beta_min="0.1"), TypeError, r"beta_min must be a real number, got '0.1' \(str\)"),
    ("vp-beta_max-inf", lambda: VPSDE(beta_max=float("inf")), ValueError, "beta_max must be finite, got inf"),
    ("vp-beta_max-nan", lambda: VPSDE(beta_max=NAN), ValueError, "beta_max must be finite, got nan"),
    ("vp-beta_min-negative", lambda: VPSDE(beta_min=-1), ValueError, "beta_min must be >= 0, got -1"),
    ("vp-N-float", lambda: VPSDE(N=10.0), TypeError, r"N must be an integer >= 1, got 10.0 \(float\)"),
    ("vp-N-bool", lambda: VPSDE(N=True), TypeError, "N must be an integer >= 1, got True"),
    ("vp-schedule-None", lambda: VPSDE(schedule=None), TypeError, r"schedule must be one of \['cosine', 'linear'\], got None"),
    ("vp-cosine-beta_min-str", lambda: VPSDE(schedule="cosine", beta_min="x"), TypeError, "beta_min must be a real number"),
    ("subvp-beta_min-None", lambda: subVPSDE(beta_min=None), TypeError, "beta_min must be a real number, got None"),
    ("ve-sigma_min-str", lambda: VESDE(sigma_min="0.01"), TypeError, "sigma_min must be a real number"),
    ("ve-sigma_max-inf", lambda: VESDE(sigma_max=float("inf")), ValueError, "sigma_max must be finite"),
    ("cosine-s-negative", lambda: CosineSchedule(s=-1), ValueError, r"s \(the cosine offset\) must be > 0, got -1"),
    ("cosine-max_beta-1", lambda: CosineSchedule(max_beta=1.0), ValueError, r"max_beta must lie in \(0, 1\), got 1.0"),
    ("discretize-dt-0", lambda: SDE.discretize(X, T_HALF, dt=0), ValueError, r"dt must lie in \(0, T\]"),
    ("prior_sampling-shape-int", lambda: SDE.prior_sampling(4), TypeError, "shape must be a sequence of ints"),
    ("prior_sampling-dtype-int", lambda: SDE.prior_sampling((4, 2), dtype=torch.int64), TypeError,
     "dtype must be a floating-point torch.dtype.*got torch.int64"),
    ("reverse-score_fn-None", lambda: SDE.reverse(None), TypeError, "score_fn must be callable"),
    ("reverse-probability_flow-str", lambda: SDE.reverse(score, probability_flow="yes"), TypeError,
     "probability_flow must be True or False, got 'yes'"),
    # get_sampler and the sampler constructors
    ("sampler-name-None", lambda: get_sampler(None), TypeError, "sampler name must be a string"),
    ("sampler-eps-str", lambda: get_sampler("ode", eps="0.1"), TypeError, r"eps must be a real number, got '0.1' \(str\)"),
    ("sampler-eps-negative", lambda: get_sampler("ode", eps=-1), ValueError, "eps must be > 0, got -1"),
    ("sampler-eps-nan", lambda: get_sampler("pc", eps=NAN), ValueError, "eps must be finite, got nan"),
    ("sampler-steps-float", lambda: get_sampler("ddim", steps=10.0), TypeError, "steps must be an integer >= 1, got 10.0"),
    ("sampler-steps-str", lambda: get_sampler("ddim", steps="10"), TypeError, "steps must be an integer >= 1, got '10'"),
    ("sampler-ts-and-steps", lambda: get_sampler("ddim", ts=[0.9, 0.5], steps=10), ValueError,
     "give either steps or ts, not both: ts sets its own 2 times, got steps=10"),
    ("sampler-ts-str", lambda: get_sampler("ddim", ts="0.9"), TypeError, "ts must be a 1-D sequence of times"),
    ("sampler-ts-nan", lambda: get_sampler("ddim", ts=[0.9, NAN]), ValueError, "ts must be a 1-D strictly decreasing"),
    ("sampler-eta-str", lambda: get_sampler("ddim", eta="0"), TypeError, "eta must be a real number"),
    ("sampler-eta-nan", lambda: get_sampler("ddim", eta=NAN), ValueError, "eta must be finite"),
    ("sampler-denoise-str", lambda: get_sampler("ddim", denoise="False"), TypeError,
     "denoise must be True or False, got 'False'"),
    ("sampler-progress-int", lambda: get_sampler("ddim", progress=1), TypeError, "progress must be True or False"),
    ("sampler-callback-int", lambda: get_sampler("ddim", callback=1), TypeError, "callback must be callable"),
    ("sampler-grid-int", lambda: get_sampler("ancestral", grid=1), TypeError, r"grid must be one of \['karras', "),
    ("sampler-rho-0", lambda: get_sampler("edm", rho=0), ValueError, "rho must be > 0, got 0"),
    ("pc-snr-str", lambda: get_sampler("pc", snr="0.16"), TypeError, "snr must be a real number"),
    ("pc-snr-0", lambda: get_sampler("pc", snr=0), ValueError, "snr must be > 0, got 0"),
    ("pc-predictor-list", lambda: get_sampler("pc", predictor=["ancestral"]), TypeError,
     r"predictor must be one of \['ancestral', .*got \['ancestral'\] \(list\)"),
    ("pc-n_corrector_steps-float", lambda: get_sampler("pc", n_corrector_steps=1.5), TypeError,
     "n_corrector_steps must be an integer >= 0"),
    ("ode-rtol-atol-0", lambda: get_sampler("ode", rtol=0, atol=0), ValueError, "rtol must be > 0, got 0"),
    ("ode-atol-negative", lambda: get_sampler("ode", atol=-1e-5), ValueError, "atol must be > 0"),
    ("ode-rtol-str", lambda: get_sampler("ode", rtol="1e-5"), TypeError, "rtol must be a real number"),
    ("ode-max_nfe-0", lambda: get_sampler("ode", max_nfe=0), ValueError, "max_nfe must be an integer >= 1, got 0"),
    ("dpm-order-bool", lambda: get_sampler("dpm_solver", order=True), ValueError, r"order must be one of \[1, 2, 3\], got True"),
    ("unipc-corrector-str", lambda: get_sampler("unipc", corrector="no"), TypeError, "corrector must be True or False"),
    ("edm-S_churn-negative", lambda: get_sampler("edm", S_churn=-1), ValueError, "S_churn must be >= 0, got -1"),
    ("ancestral-variance-int", lambda: get_sampler("ancestral", variance=1), TypeError, "variance must be one of"),
    ("torchsde-method-int", lambda: get_sampler("torchsde", method=1), TypeError, "method must be one of"),
    # sampler calls
    ("call-shape-int", lambda: sample(shape=4), TypeError, r"shape must be a sequence of ints \[B, \.\.\.\].*got 4 \(int\)"),
    ("call-shape-zero", lambda: sample(shape=(4, 0)), ValueError, r"shape must be \[B, \.\.\.\] with at least 2 positive"),
    ("call-shape-float", lambda: sample(shape=(4, 2.0)), ValueError, r"shape must be \[B, \.\.\.\]"),
    ("call-score_fn-None", lambda: sample(score_fn=None), TypeError, "score_fn must be callable.*got None"),
    ("call-sde-str", lambda: sample(sde="vp"), TypeError, "sde must be a scoresde.SDE.*got 'vp'"),
    ("call-generator-str", lambda: sample(generator="cpu"), TypeError, "generator must be a torch.Generator or None, got 'cpu'"),
    ("call-device-nope", lambda: sample(device="nope"), ValueError, "device must name a torch device.*got 'nope'"),
    ("call-device-cuda99", lambda: sample(device="cuda:99"), ValueError, "device='cuda:99' but"),
    ("call-device-int", lambda: sample(device=[0]), TypeError, "device must be a torch.device or a string"),
    ("call-dtype-int64", lambda: sample(dtype=torch.int64), TypeError, "dtype must be a floating-point torch.dtype"),
    ("call-dtype-str", lambda: sample(dtype="float32"), TypeError, "dtype must be a floating-point torch.dtype"),
    ("call-score-shape", lambda: sample(score_fn=lambda x, t: x[:, :1]), ValueError,
     r"score_fn must return a tensor shaped like x \(4, 2\), got \(4, 1\)"),
    ("call-seeds-negative", lambda: sample(seeds=[0, 1, 2, -3]), ValueError,
     "seeds must be a non-empty sequence of non-negative integers"),
    ("call-seeds-count", lambda: sample(seeds=[0, 1]), ValueError, "2 seeds for a batch of 4"),
    ("call-ts-beyond-T", lambda: sample(options={"ts": [2.0, 0.5], "steps": None}), ValueError, r"ts must lie in \(0, T\]"),
    # get_score_fn and conversions
    ("score_fn-model-None", lambda: get_score_fn(None, SDE), TypeError, "model must be callable"),
    ("score_fn-sde-str", lambda: get_score_fn(model, "vp"), TypeError, "sde must be a scoresde.SDE"),
    ("score_fn-parameterization-None", lambda: get_score_fn(model, SDE, parameterization=None), TypeError,
     "parameterization must be one of"),
    ("score_fn-continuous-str", lambda: get_score_fn(model, SDE, continuous="no"), TypeError,
     "continuous must be True or False"),
    ("convert-source", lambda: convert(X, X, torch.ones(4), torch.ones(4), "noise", "eps"), ValueError,
     "parameterization must be one of"),
    # losses
    ("dsm-sde-None", lambda: DSMLoss(None), TypeError, "sde must be a scoresde.SDE.*got None"),
    ("dsm-eps-str", lambda: DSMLoss(SDE, eps="1e-5"), TypeError, "eps must be a real number"),
    ("dsm-eps-T", lambda: DSMLoss(SDE, eps=1.0), ValueError, r"eps must lie in \(0, T\) = \(0, 1.0\), got 1.0"),
    ("dsm-weighting-None", lambda: DSMLoss(SDE, weighting=None), TypeError, "weighting must be one of"),
    ("dsm-importance_sampling-str", lambda: DSMLoss(SDE, importance_sampling="yes"), TypeError,
     "importance_sampling must be True or False"),
    ("dsm-score-B1", lambda: DSMLoss(SDE)(lambda x, t: x[:, :1], X), ValueError,
     r"score_fn must return a tensor shaped like x \(4, 2\), got \(4, 1\)"),
    ("dsm-x0-nan", lambda: DSMLoss(SDE)(score, X.where(X > 0, NAN)), ValueError, "x0 must be finite, got .* NaN"),
    ("dsm-x0-int", lambda: DSMLoss(SDE)(score, torch.ones(4, 2, dtype=torch.long)), ValueError,
     r"x0 must be a floating-point tensor of shape \[B, \.\.\.\]"),
    ("dsm-score_fn-None", lambda: DSMLoss(SDE)(None, X), TypeError, "score_fn must be callable"),
    ("dsm-noise-shape", lambda: DSMLoss(SDE)(score, X, noise=torch.randn(4, 1)), ValueError,
     r"noise must be a floating-point tensor shaped like x0 \(4, 2\)"),
    ("dsm-t-zero", lambda: DSMLoss(SDE)(score, X, t=torch.zeros(4)), ValueError, r"t must lie in \(0, T\]"),
    ("dsm-generator-str", lambda: DSMLoss(SDE)(score, X, generator="cpu"), TypeError, "generator must be a torch.Generator"),
    ("ddpm-parameterization", lambda: DDPMLoss(SDE, parameterization="noise"), ValueError, "parameterization must be one of"),
    ("ddpm-reduce-None", lambda: DDPMLoss(SDE, reduce=None), TypeError, "reduce must be one of"),
    ("ddpm-ve", lambda: DDPMLoss(VESDE()), ValueError, "DDPMLoss needs an SDE with discrete DDPM betas"),
    ("ddpm-index-minus-1", lambda: DDPMLoss(SDE)(model, X, index=torch.full((4,), -1)), ValueError,
     r"index must lie in \{0, …, N−1\} = \{0, …, 999\}, got values in \[-1, -1\]"),
    ("ddpm-index-N", lambda: DDPMLoss(SDE)(model, X, index=torch.full((4,), 1000)), ValueError, "index must lie in"),
    ("ddpm-index-float", lambda: DDPMLoss(SDE)(model, X, index=torch.full((4,), 3.0)), ValueError,
     "index must be an integer tensor of shape"),
    ("ddpm-index-int", lambda: DDPMLoss(SDE)(model, X, index=3), ValueError, "index must be an integer tensor.*got 3"),
    ("ddpm-model-shape", lambda: DDPMLoss(SDE)(lambda x, i: x[:, :1], X), ValueError, "model must return a tensor shaped"),
    ("ddpm-model-None", lambda: DDPMLoss(SDE)(None, X), TypeError, "model must be callable"),
    # likelihood
    ("likelihood-rtol-atol-0", lambda: likelihood(score, SDE, X, rtol=0, atol=0), ValueError, "rtol must be > 0, got 0"),
    ("likelihood-x-nan", lambda: likelihood(score, SDE, X.where(X > 0, NAN)), ValueError, "x must be finite, got .* NaN"),
    ("likelihood-x-rank1", lambda: likelihood(score, SDE, torch.randn(4)), ValueError,
     r"x must be a floating-point tensor of shape \[B, \.\.\.\]"),
    ("likelihood-score-B1", lambda: likelihood(lambda x, t: x[:, :1], SDE, X), ValueError, "score_fn must return a tensor"),
    ("likelihood-score_fn-None", lambda: likelihood(None, SDE, X), TypeError, "score_fn must be callable"),
    ("likelihood-sde-None", lambda: likelihood(score, None, X), TypeError, "sde must be a scoresde.SDE"),
    ("likelihood-method-None", lambda: likelihood(score, SDE, X, method=None), TypeError, "method must be one of"),
    ("likelihood-eps-str", lambda: likelihood(score, SDE, X, eps="0.1"), TypeError, "eps must be a real number"),
    ("likelihood-max_nfe-0", lambda: likelihood(score, SDE, X, max_nfe=0), ValueError, "max_nfe must be an integer >= 1"),
    ("likelihood-generator-str", lambda: likelihood(score, SDE, X, generator="cpu"), TypeError, "generator must be"),
    ("likelihood-bpd_offset-nan", lambda: likelihood(score, SDE, X, bpd_offset=NAN), ValueError, "bpd_offset must be finite"),
    ("bpd_offset-data_range-str", lambda: uint8_bpd_offset("ab"), TypeError, "data_range must be a pair"),
    ("dequantize-float", lambda: dequantize(torch.rand(2, 3)), ValueError, "u must be an integer tensor"),
    # metrics
    ("sw-x-str", lambda: sliced_wasserstein("a", X), TypeError, "x must be a tensor or numpy array"),
    ("sw-y-nan", lambda: sliced_wasserstein(X, X.where(X > 0, NAN)), ValueError, "y must be finite"),
    ("sw-p-3", lambda: sliced_wasserstein(X, X, p=3), ValueError, "p must be 1 or 2, got 3"),
    ("sw-n_projections-0", lambda: sliced_wasserstein(X, X, n_projections=0), ValueError, "n_projections must be an integer"),
    ("sw-generator-int", lambda: sliced_wasserstein(X, X, generator=1), TypeError, "generator must be a torch.Generator"),
    ("mmd-bandwidth-0", lambda: mmd(X, X, bandwidths=(0.0,)), ValueError, "bandwidths must be > 0, got 0.0"),
    ("mmd-bandwidth-str", lambda: mmd(X, X, bandwidths="1"), TypeError, "bandwidths must be a non-empty tuple"),
    ("mmd-one-sample", lambda: mmd(X[:1], X), ValueError, "x must hold at least 2"),
    ("mmd-dimension", lambda: mmd(X, torch.randn(4, 3)), ValueError, "x and y must have the same dimension, got 2 and 3"),
    ("kid-subsets-0", lambda: kid(X, X, subsets=0), ValueError, "subsets must be an integer >= 1"),
    ("kid-subset_size-1", lambda: kid(X, X, subset_size=1), ValueError, "subset_size must be an integer >= 2"),
    ("frechet-shapes", lambda: frechet_distance(np.zeros(2), np.eye(3), np.zeros(2), np.eye(2)), ValueError,
     r"mu1 must have shape \[F\] and sigma1 shape \[F, F\]"),
    ("frechet-str", lambda: frechet_distance("a", np.eye(2), np.zeros(2), np.eye(2)), TypeError,
     "mu1 and sigma1 must be arrays of numbers"),
    # analytic problems
    ("mixture-weights-sum", lambda: GaussianMixture([0.5, 0.6], [[0.0], [1.0]], [[[1.0]], [[1.0]]]), ValueError,
     "weights must be > 0 and sum to 1"),
    ("mixture-covs-not-pd", lambda: GaussianMixture([1.0], [[0.0, 0.0]], [[[1.0, 0.0], [0.0, -1.0]]]), ValueError,
     "covs must be positive definite"),
    ("mixture-shapes", lambda: GaussianMixture([1.0], [[0.0, 0.0]], [[[1.0]]]), ValueError,
     r"weights, means and covs must have shapes \[K\], \[K, D\] and \[K, D, D\]"),
    ("mixture-score-dimension", lambda: MIXTURE.score(SDE, torch.randn(4, 3), T_HALF), ValueError,
     r"x must have D = 2 values per sample"),
    ("mixture-sample-n-0", lambda: MIXTURE.sample(0), ValueError, "n must be an integer >= 1, got 0"),
    # data builders
    ("data-dataset-typo", lambda: build_data("moon"), ValueError, r"config.data.dataset must be one of \[.*got 'moon'"),
    ("data-dataset-None", lambda: build_data(None), TypeError, "config.data.dataset must be one of"),
    ("data-n_eval-0", lambda: build_data("moons", n_eval=0), ValueError, "n_eval must be an integer >= 1, got 0"),
    ("data-seed-negative", lambda: build_data("moons", seed=-1), ValueError, "seed must be an integer >= 0, got -1"),
    ("data-centered-str", lambda: build_data("moons", centered="yes"), TypeError, "centered must be True or False"),
    ("data-image_size-float", lambda: build_data("moons", image_size=32.0), TypeError, "image_size must be an integer"),
    ("data-root-None", lambda: build_data("digits", root=None), TypeError, "root must be a folder path"),
    ("toy-batch_size-0", lambda: ToyData("moons", n_eval=4).train_batch(0, 0, 0), ValueError, "batch_size must be an integer"),
    ("toy-step-negative", lambda: ToyData("moons", n_eval=4).train_batch(-1, 4, 0), ValueError, "step must be an integer >= 0"),
    ("toy-n-negative", lambda: checkerboard(-1), ValueError, "n must be an integer >= 1, got -1"),
    ("toy-generator-str", lambda: moons(10, generator="x"), TypeError, "generator must be a torch.Generator"),
    ("images-float", lambda: ImageData(torch.rand(4, 1, 8, 8), torch.rand(2, 1, 8, 8)), ValueError,
     r"images must be a non-empty uint8 tensor \[N, C, H, W\]"),
    ("stream-seed-negative", lambda: stream_generator(-1), ValueError, "seed must be an integer >= 0, got -1"),
]


@pytest.mark.parametrize("call, exc, match", [pytest.param(c, e, m, id=i) for i, c, e, m in BAD])
def test_bad_input_is_refused_naming_the_argument(call, exc, match):
    with pytest.raises(exc, match=match):
        call()


def test_enough_bad_inputs_and_type_errors_stay_value_errors():
    """The table covers every entry point, and a wrong type is also a ValueError for callers that catch that."""
    assert len(BAD) >= 60 and len({i for i, *_ in BAD}) == len(BAD)
    assert issubclass(ArgumentTypeError, TypeError) and issubclass(ArgumentTypeError, ValueError)


def test_model_failing_on_its_first_call_is_told_the_shapes_it_got():
    """A model error (here a matmul on data of the wrong rank) keeps its type and gains a note with x's shape."""
    net = torch.nn.Linear(2, 2)
    with pytest.raises(RuntimeError, match="mat1 and mat2 shapes cannot be multiplied") as info:
        sample(score_fn=lambda x, t: net(x), shape=(4, 2, 1))
    assert any("x: a tensor of shape (4, 2, 1)" in note for note in info.value.__notes__)


class NaNAfter:
    """A score that is exact for N(0, I) data (−x) for its first k calls, then NaN; counts every call."""

    def __init__(self, k: int):
        self.k, self.calls = k, 0

    def __call__(self, x, t):
        self.calls += 1
        return -x if self.calls <= self.k else torch.full_like(x, NAN)


def nan_below(t_nan: float):
    """A score that is NaN wherever t < t_nan."""
    return lambda x, t: torch.where(t[:, None] < t_nan, torch.full_like(x, NAN), -x)


def window(message: str) -> tuple[float, float]:
    """(t_from, t_to) out of "... became non-finite between t=0.52 and t=0.47 ..."."""
    found = re.search(r"became non-finite between t=([-\d.e]+) and t=([-\d.e]+)", message)
    assert found, message
    return float(found[1]), float(found[2])


FIXED_STEP = [("ancestral", {}), ("ddim", {}), ("reverse_diffusion", {}), ("euler_maruyama", {}), ("pc", {}),
              ("dpm_solver", {}), ("unipc", {}), ("deis", {}), ("dpm_solver_sde", {}), ("edm", {}),
              ("ode", {"method": "euler"}), ("ode", {"method": "heun"})]
FIXED_IDS = [name + (":" + o["method"] if o else "") for name, o in FIXED_STEP]


@pytest.mark.parametrize("name, options", FIXED_STEP, ids=FIXED_IDS)
def test_fixed_step_samplers_stop_soon_after_the_score_turns_nan(name, options):
    """NaN from the 6th call on: without the guard the 200-step loop would make 200+ calls."""
    score_fn = NaNAfter(5)
    with pytest.raises(ValueError, match=rf"{name} sampler produced non-finite samples: the state became non-finite "
                                         r"between t=[\d.]+ and t=[\d.]+ \(grid time \d+ of 199\), after \d+ score"):
        get_sampler(name, steps=200, progress=False, **options)(score_fn, SDE, (4, 2))
    assert score_fn.calls < 50  # 5 good calls, then at most CHECK_EVERY = 10 steps of 1 or 2 calls


@pytest.mark.parametrize("name, options", FIXED_STEP, ids=FIXED_IDS)
def test_fixed_step_samplers_name_the_time_the_state_turned_nan(name, options):
    """The window in the message holds t = 0.5, where the score turns NaN, and spans at most 20 grid steps."""
    steps = 101  # grid spacing h = (1 − 1e-3)/100 ≈ 0.01
    options = {**options, "grid": "uniform"}
    with pytest.raises(ValueError) as info:
        get_sampler(name, steps=steps, progress=False, **options)(nan_below(0.5), SDE, (4, 2))
    t_from, t_to = window(str(info.value))
    h = (1 - SDE.sampling_eps) / (steps - 1)
    assert t_to < 0.5 <= t_from + h + 1e-9 and t_from - t_to <= 20 * h + 1e-9


@pytest.mark.parametrize("method", ["dopri5", "rk45"])
def test_adaptive_ode_stops_at_once_when_the_score_turns_nan(method):
    score_fn = NaNAfter(5)
    with pytest.raises(ValueError, match=rf"{method}: the ODE's right-hand side .* returned non-finite values at t=0\.\d+"):
        get_sampler("ode", method=method, progress=False)(score_fn, SDE, (4, 2))
    assert score_fn.calls <= 5 + 7 < 50  # at most one more Dormand–Prince step


@pytest.mark.parametrize("method", ["dopri5", "rk45"])
def test_adaptive_ode_names_the_time_where_the_score_turns_nan(method):
    with pytest.raises(ValueError) as info:
        get_sampler("ode", method=method, progress=False)(nan_below(0.5), SDE, (4, 2))
    t = float(re.search(r"non-finite values at t=([\d.e-]+)", str(info.value))[1])
    assert 0.2 < t < 0.5


@pytest.mark.parametrize("method", ["dopri5", "rk45"])
def test_likelihood_stops_at_once_when_the_score_turns_nan(method):
    score_fn = NaNAfter(5)
    with pytest.raises(ValueError, match=r"returned non-finite values at t=0\.\d+ from a finite state"):
        likelihood(score_fn, SDE, X, method=method)
    assert score_fn.calls <= 5 + 7 < 50


@pytest.mark.parametrize("run", [
    lambda **kw: get_sampler("ode", progress=False, **kw)(score, SDE, (4, 2)),
    lambda **kw: likelihood(score, SDE, X, **kw),
], ids=["ode", "likelihood"])
def test_adaptive_budget_names_tolerances_and_time_reached(run):
    """Tolerances too tight for the budget fail after max_nfe evaluations, naming rtol, atol and t."""
    with pytest.raises(ValueError, match=r"dopri5 stopped at max_nfe=40 evaluations, having reached only t=[\d.e-]+ on "
                                         r"its way from [\d.]+ to [\d.]+ \(rtol=1e-12, atol=1e-12\)"):
        run(rtol=1e-12, atol=1e-12, max_nfe=40)


def test_checks_do_not_change_healthy_results(monkeypatch):
    """The guard has no side effects: the same samples with a check every CHECK_EVERY steps and with none."""
    run = lambda: get_sampler("pc", steps=35, progress=False)(score, SDE, (4, 2), generator=torch.Generator().manual_seed(0))
    x1, nfe1 = run()
    monkeypatch.setattr(base, "CHECK_EVERY", 10**9)
    x2, nfe2 = run()
    assert torch.equal(x1, x2) and nfe1 == nfe2 == 70 and torch.isfinite(x1).all()
    assert math.isfinite(likelihood(score, SDE, X).logp.sum().item())


def test_likelihood_names_a_shape_the_model_was_not_built_for_and_refuses_an_empty_batch():
    from scoresde.models import MLP
    from scoresde.parameterization import get_score_fn
    sde = scoresde.VPSDE()
    score = get_score_fn(MLP(dim=2, hidden=8, layers=1, emb_dim=4), sde)
    for bad in ((4, 3), (4, 2, 1)):
        with pytest.raises(ValueError, match=rf"x has shape {re.escape(str(bad))}, but the model was built for data "
                                             r"of shape \[B, 2\]"):
            likelihood(score, sde, torch.randn(*bad))
    with pytest.raises(ValueError, match=r"x must hold at least one sample.*\(0, 2\)"):
        likelihood(score, sde, torch.zeros(0, 2))


def test_a_score_of_another_dtype_is_refused_naming_both():
    sde = scoresde.VPSDE()
    with pytest.raises(ValueError, match="score_fn returned torch.float64 for x of dtype torch.float32"):
        get_sampler("ddim", steps=3, progress=False)(lambda x, t: -x.double(), sde, (4, 2))
    with pytest.raises(ValueError, match="score_fn returned torch.float64 for x of dtype torch.float32"):
        likelihood(lambda x, t: -x.double(), sde, torch.randn(4, 2))


def test_misspelt_config_keys_and_sampler_names_get_the_closest_valid_ones():
    from scoresde.config import apply_overrides, default_config
    with pytest.raises(ValueError, match=r"'training.n_iter'.*\(did you mean 'training.n_iters'\?\)"):
        apply_overrides(default_config(), ["--config.training.n_iter=100"])
    with pytest.raises(ValueError, match=r"\(did you mean 'dpm_solver' or 'dpm_solver_sde'\?\)"):
        get_sampler("dpm_solvr")
    with pytest.raises(ValueError) as info:
        apply_overrides(default_config(), ["--config.foo.bar=1"])
    assert "did you mean" not in str(info.value)
