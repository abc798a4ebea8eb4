"""EDM-style network pickles for the tests, written without EDM's code: each module becomes a record of
`torch_utils.persistence._reconstruct_persistent_obj(meta)`, as EDM's persistence writes it, with a `module_src`
that would leave a file behind if anything ran it."""
import pickle
import sys
import types
from collections import OrderedDict
from contextlib import contextmanager

import torch


@contextmanager
def fake_persistence():
    """A stand-in torch_utils.persistence module, present only while pickling."""
    package, module = types.ModuleType("torch_utils"), types.ModuleType("torch_utils.persistence")

    def _reconstruct_persistent_obj(meta):  # never called by scoresde's reader
        raise AssertionError("EDM's reconstruction ran")
    _reconstruct_persistent_obj.__module__ = "torch_utils.persistence"
    _reconstruct_persistent_obj.__qualname__ = "_reconstruct_persistent_obj"
    module._reconstruct_persistent_obj = _reconstruct_persistent_obj
    package.persistence = module
    saved = {k: sys.modules.get(k) for k in ("torch_utils", "torch_utils.persistence")}
    sys.modules.update({"torch_utils": package, "torch_utils.persistence": module})
    try:
        yield module
    finally:
        for k, v in saved.items():
            if v is None:
                sys.modules.pop(k, None)
            else:
                sys.modules[k] = v


class Persistent:
    def __init__(self, reconstruct, meta):
        self.reconstruct, self.meta = reconstruct, meta

    def __reduce__(self):
        return self.reconstruct, (self.meta,)


def record(module, reconstruct, source, init_kwargs=None):
    """The persistence record of a scoresde EDM module, its children recorded too (containers stay torch's)."""
    if isinstance(module, (torch.nn.ModuleDict, torch.nn.ModuleList)):
        copy = type(module)()
        copy._modules = OrderedDict((k, record(v, reconstruct, source)) for k, v in module._modules.items())
        return copy
    state = dict(module.__dict__)
    state["_modules"] = OrderedDict((k, record(v, reconstruct, source)) for k, v in module._modules.items())
    state["_init_args"], state["_init_kwargs"] = (), dict(init_kwargs or {})
    meta = dict(type="class", version=6, module_src=source, class_name=type(module).__name__, state=state)
    return Persistent(reconstruct, meta)


def write_edm_pickle(path, precond, init_kwargs, flag=None, extra=None):
    """A network-snapshot pickle {'ema': the network, ...} of a scoresde EDM preconditioner."""
    source = f"open({str(flag)!r}, 'w').write('ran')" if flag is not None else "raise SystemExit"
    with fake_persistence() as persistence:
        data = {"ema": record(precond, persistence._reconstruct_persistent_obj, source, init_kwargs),
                "dataset_kwargs": {"path": "datasets/cifar10-32x32.zip", "use_labels": False}, **(extra or {})}
        with open(path, "wb") as f:
            pickle.dump(data, f)
