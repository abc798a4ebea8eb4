import os

import numpy as np
import pytest
import torch

_DEVICES = ["cpu", pytest.param("cuda", marks=pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA device"))]


@pytest.fixture(autouse=True)
def _fixed_global_seed():
    """Every test starts from the same global RNG state: what it draws without a generator is the same alone, in any
    order and on any machine, so a failure reproduces."""
    torch.manual_seed(0)
    np.random.seed(0)


@pytest.fixture(params=_DEVICES)
def device(request):
    """Every device-aware test runs on CPU, and on CUDA wherever a GPU exists."""
    return torch.device(request.param)


if os.environ.get("SCORESDE_FLUSH_DENORMAL"):  # by hand: the suite must not depend on how subnormals are treated
    torch.set_flush_denormal(True)

if os.environ.get("SCORESDE_TOLERANCE_AUDIT"):  # by hand only: how much of each tight tolerance is used
    import _tolerance_audit
    _tolerance_audit.install()

    def pytest_sessionfinish(session, exitstatus):
        _tolerance_audit.write(os.environ["SCORESDE_TOLERANCE_AUDIT"])
