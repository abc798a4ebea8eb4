import pytest
import torch

_DEVICES = ["cpu", pytest.param("cuda", marks=pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA device"))]


@pytest.fixture(params=_DEVICES)
def device(request):
    """Every device-aware test runs on CPU, and on CUDA wherever a GPU exists."""
    return torch.device(request.param)
