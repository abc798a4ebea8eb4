"""EDM's network pickles (Karras et al. 2022) as scoresde runs, read by a restricted unpickler that runs nothing.

An EDM pickle (network-snapshot-*.pkl) holds {'ema': network, 'loss_fn', 'augment_pipe', 'dataset_kwargs'}; each
network object is EDM's `torch_utils.persistence` record: its class name, the source code of its module, its
constructor arguments and its state. Unpickling it normally executes that source. Here `find_class` resolves only
what tensors and plain containers need; a persistence record becomes a `Record` (class name, constructor arguments,
state), its source is discarded unread, and anything else is refused by name. The network is then rebuilt from
scoresde's own classes (scoresde.models.edm) with the recorded arguments, and its tensors are loaded into it.
"""
from __future__ import annotations

import collections
import io
import json
import pickle
from pathlib import Path

import torch

from .. import checkpoint as ckpt
from .. import families
from ..config import default_config, validate
from ..models.edm import PRECONDITIONERS
from .run_files import write_run


class Record:
    """An EDM persistence record or a plain torch.nn container, as data: class name, constructor arguments, state."""

    def __init__(self, class_name: str = "", state=None):
        self.class_name, self.state = class_name, state or {}

    def __setstate__(self, state):  # a torch.nn container (ModuleDict, ModuleList) pickled the ordinary way
        self.state = state

    @property
    def init_kwargs(self) -> dict:
        return dict(self.state.get("_init_kwargs") or {})

    @property
    def init_args(self) -> tuple:
        return tuple(self.state.get("_init_args") or ())


def _persistent_record(meta):
    """torch_utils.persistence._reconstruct_persistent_obj, without running meta['module_src']."""
    return Record(meta.get("class_name", "?"), dict(meta.get("state") or {}))


def _storage_from_bytes(data: bytes):
    return torch.load(io.BytesIO(data), weights_only=True)  # a storage written by torch.save: tensors only


def _containers():
    return {name: type(name, (Record,), {}) for name in ("ModuleDict", "ModuleList", "Sequential")}


_CONTAINERS = _containers()
ALLOWED = {  # (module, name) → what it becomes; nothing else is resolved
    ("torch_utils.persistence", "_reconstruct_persistent_obj"): _persistent_record,
    ("torch._utils", "_rebuild_tensor_v2"): torch._utils._rebuild_tensor_v2,
    ("torch._utils", "_rebuild_parameter"): torch._utils._rebuild_parameter,
    ("torch._utils", "_rebuild_parameter_with_state"): torch._utils._rebuild_parameter_with_state,
    ("torch.storage", "_load_from_bytes"): _storage_from_bytes,
    ("collections", "OrderedDict"): collections.OrderedDict,
    ("dnnlib.util", "EasyDict"): dict,
    ("builtins", "set"): set,
    **{("torch.nn.modules.container", name): cls for name, cls in _CONTAINERS.items()},
}
_NUMPY = {(m, n) for m in ("numpy.core.multiarray", "numpy._core.multiarray") for n in ("scalar", "_reconstruct")} | {
    ("numpy", "dtype"), ("numpy", "ndarray")}  # numbers and arrays from their bytes (augment_pipe's settings)


class RestrictedUnpickler(pickle.Unpickler):
    """Resolves only ALLOWED (and numpy scalars); refuses every other global, naming it."""

    def find_class(self, module, name):
        if (module, name) in ALLOWED:
            return ALLOWED[module, name]
        if (module, name) in _NUMPY:
            import numpy as np
            multiarray = getattr(np, "_core", np.core).multiarray
            return {"dtype": np.dtype, "ndarray": np.ndarray}.get(name) or getattr(multiarray, name)
        raise pickle.UnpicklingError(f"the pickle asks for {module}.{name}, which a network snapshot does not need; "
                                     f"refusing it (nothing in the file was run)")


def read_pickle(path) -> object:
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"EDM pickle {path} does not exist")
    try:
        with open(path, "rb") as f:
            return RestrictedUnpickler(f).load()
    except pickle.UnpicklingError as e:
        if "persistent" in str(e):  # torch.save's format, not pickle.dump's
            raise ValueError(f"cannot read EDM pickle {path}: it was written by torch.save, not pickle.dump: is it a "
                             f"score_sde checkpoint (scoresde import score_sde FILE --config ...)?") from None
        raise ValueError(f"cannot read EDM pickle {path}: {' '.join(str(e).split())}") from None
    except Exception as e:  # truncated, zero-filled, not a pickle
        reason = ckpt.failure_reason(e)
        raise ValueError(f"cannot read EDM pickle {path}: {type(e).__name__}: {reason}") from None


def state_dict(record: Record, prefix: str = "") -> dict:
    """The tensors of a recorded module tree under their state-dict names (parameters, then persistent buffers)."""
    state = record.state
    out = {}
    skip = set(state.get("_non_persistent_buffers_set") or ())
    for name, value in (state.get("_parameters") or {}).items():
        if value is not None:
            out[prefix + name] = value.detach() if isinstance(value, torch.Tensor) else value
    for name, value in (state.get("_buffers") or {}).items():
        if value is not None and name not in skip:
            out[prefix + name] = value
    for name, child in (state.get("_modules") or {}).items():
        if isinstance(child, Record):
            out.update(state_dict(child, f"{prefix}{name}."))
    return out


def _jsonable(value):
    if isinstance(value, dict):
        return {k: _jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_jsonable(v) for v in value]
    if hasattr(value, "item") and not isinstance(value, torch.Tensor):  # numpy scalars
        return value.item()
    if isinstance(value, (bool, int, float, str)) or value is None:
        return value
    raise ValueError(f"an EDM constructor argument is not a plain value: {type(value).__name__}")


def network_config(net: Record, path) -> dict:
    """{'precond': class name, 'kwargs': constructor keyword arguments} of the recorded network."""
    if net.class_name not in PRECONDITIONERS:
        raise ValueError(f"{path}: the network is an EDM {net.class_name}, which scoresde does not know; known: "
                         f"{sorted(PRECONDITIONERS)}")
    if net.init_args:
        raise ValueError(f"{path}: the {net.class_name} was built with positional arguments, which are not recorded "
                         f"by name")
    kwargs = _jsonable(net.init_kwargs)
    kwargs.pop("use_fp16", None)  # a speed setting: scoresde chooses the dtype at sampling time
    return {"precond": net.class_name, "kwargs": kwargs}


def run_config(network: dict):
    """A scoresde config for an EDM network: the x₀-prediction of its denoiser on the SDE of its preconditioner."""
    kwargs = network["kwargs"]
    c = default_config()
    c.model.update(name="edm", parameterization="x0", num_classes=int(kwargs.get("label_dim", 0) or 0))
    c.model.edm.update(precond=network["precond"], kwargs=json.dumps(kwargs, sort_keys=True))
    size = int(kwargs["img_resolution"])
    c.data.update(dataset="cifar10" if size == 32 else "image_folder", image_size=size, centered=True)
    if network["precond"] == "VPPrecond":
        beta_min = float(kwargs.get("beta_min", 0.1))
        c.sde.update(type="vp", beta_min=beta_min, beta_max=beta_min + float(kwargs.get("beta_d", 19.9)))
    elif network["precond"] == "iDDPMPrecond":
        c.sde.update(type="vp", schedule="cosine")
    else:  # VE and EDM: EDM's σ-time, σ(t) = t from 0.002 to 80 (its sampling range)
        c.sde.update(type="edm", sigma_min=0.002, sigma_max=80.0)
    c.sampling.update(name="edm", steps=18)
    c.loss.continuous = True
    return c


def import_edm(path, workdir, config=None, weights: str = "ema", channels=None) -> Path:
    """Write EDM's network pickle at `path` as a scoresde run in `workdir` (its 'ema' network; weights='model' is
    not available: EDM pickles keep only the EMA network). Returns the workdir."""
    if weights != "ema":
        raise ValueError("an EDM network pickle holds only its EMA network: --weights must be 'ema'")
    data = read_pickle(path)
    net = data.get("ema") if isinstance(data, dict) else data
    if not isinstance(net, Record):
        raise ValueError(f"{path} is not an EDM network pickle: it has no 'ema' network")
    network = network_config(net, path)
    config = validate(config if config is not None else run_config(network))
    family = families.get_family(config)
    kwargs = network["kwargs"]
    shape = (int(kwargs["img_channels"]), int(kwargs["img_resolution"]), int(kwargs["img_resolution"]))
    model = family.model(config, shape)
    tensors = {"precond." + k: v for k, v in state_dict(net).items()}
    ours = model.state_dict()
    for key in tensors:
        if key not in ours:
            raise ValueError(f"{path}: tensor {key[len('precond.'):]} is not in scoresde's {network['precond']}")
        if tuple(tensors[key].shape) != tuple(ours[key].shape):
            raise ValueError(f"{path}: tensor {key[len('precond.'):]} has shape {list(tensors[key].shape)}, scoresde's "
                             f"{network['precond']} expects {list(ours[key].shape)}")
    missing = [k for k in ours if k not in tensors]
    if missing:
        raise ValueError(f"{path}: the pickle lacks {missing[0][len('precond.'):]} of {network['precond']}")
    model.load_state_dict(tensors)
    return write_run(workdir, config, model.state_dict(), shape=shape, source="edm", file=path)
