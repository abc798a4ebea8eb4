"""SR3 through the shared machinery: config, Trainer, checkpoints, `scoresde train/sample/eval` and `Run`."""
import numpy as np
import pytest
import torch

import scoresde
from scoresde import VPSDE, builders, families
from scoresde.cli import main
from scoresde.config import apply_overrides, load_config, validate
from scoresde.resize import downsample, upsample
from scoresde.training import Trainer
from test_cli import assert_one_line_error, cli
from test_training import ROOT, _assert_equal_states, _state

pytestmark = pytest.mark.slow  # trains runs and starts the CLI: left out of the quick loop (-m "not slow")

pytest.importorskip("sklearn")
TINY = ["--config.training.n_iters=20", "--config.training.batch_size=32", "--config.training.log_every=10",
        "--config.training.eval_every=10", "--config.training.sample_every=20", "--config.training.save_every=10",
        "--config.training.snapshot_every=20", "--config.sampling.steps=10", "--config.sampling.n=8",
        "--config.data.n_eval=24", "--config.eval.n_bpd=8", "--config.eval.batch_size=8", "--config.model.ch=16",
        "--config.training.device=cpu"]


def config(extra=(), **training):
    c = apply_overrides(load_config(str(ROOT / "configs/vp/digits_sr3.py")), TINY + list(extra))
    c.training.update(**training)
    return c


@pytest.fixture(scope="module")
def workdir(tmp_path_factory):
    work = tmp_path_factory.mktemp("sr3") / "run"
    main(["train", "--config", "configs/vp/digits_sr3.py", "--workdir", str(work), "--no-progress", *TINY])
    return work


def test_cli_trains_samples_and_evaluates_sr3(workdir, capsys):
    assert (workdir / "samples" / "step_20.png").exists()  # training's samples super-resolve held-out digits
    out = cli(capsys, "sample", "--workdir", workdir, "--n", 6, "--steps", 5, "--device", "cpu")
    assert out.returncode == 0, out.stderr
    assert "6 super-resolved held-out images" in out.stdout and "consistency MSE" in out.stdout
    saved = np.load(workdir / "samples" / "sr3_ancestral_5.npz")
    assert saved["samples"].shape == (6, 1, 8, 8) and saved["low_res"].shape == (6, 1, 4, 4)
    assert (workdir / "samples" / "sr3_ancestral_5.png").exists()
    out = cli(capsys, "eval", "--workdir", workdir, "--n", 8, "--device", "cpu")
    assert out.returncode == 0 and "given the low-resolution image" in out.stdout, out.stderr
    out = cli(capsys, "sample", "--workdir", workdir, "--labels", "3", "--device", "cpu")
    assert_one_line_error(out, "--labels, --guidance and --classifier are for class-conditional runs")


def test_run_super_resolves_under_any_schedule(workdir):
    run = scoresde.load_run(workdir, device="cpu")
    assert run.config.sr3.factor == 2 and run.score_fn.noise_level and run.family is families.SR3
    truth = run.data.eval_data[:4]
    low = downsample(truth, 2)
    x, nfe = run.super_resolve(low, "ddim", steps=5, seed=3)
    same, _ = run.sample(4, "ddim", steps=5, seed=3, condition=upsample(low, 2))
    assert x.shape == (4, 1, 8, 8) and nfe == 5 and torch.equal(x, same)
    other = run.with_sde(VPSDE(schedule="cosine", N=50))  # an inference schedule training never used
    y, _ = other.super_resolve(low, "ancestral", steps=50, variance="beta", seed=3)
    assert torch.isfinite(y).all() and other.model is run.model and run.sde.N == 1000
    with pytest.raises(ValueError, match=r"this sr3 run needs condition=: one conditioning image per sample \[4, 1, 8, 8\] \(or use run.super_resolve"):
        run.sample(4, "ddim", steps=5)
    with pytest.raises(TypeError, match=r"low_res must be images \[n, 1, 4, 4\]"):
        run.super_resolve(truth)


def test_sr3_resume_is_bit_exact(tmp_path):
    """γ and the noise come from the step's own stream, so 10 + 10 steps equal 20 straight steps."""
    straight = Trainer(config(n_iters=20), tmp_path / "a", progress_bar=False)
    straight.train()
    Trainer(config(n_iters=10), tmp_path / "b", progress_bar=False).train()
    resumed = Trainer(config(n_iters=20), tmp_path / "b", progress_bar=False)
    resumed.train()
    _assert_equal_states(_state(straight), _state(resumed))


def test_time_conditioned_runs_keep_their_schedule(tmp_path):
    run = scoresde.load_run(_toy_run(tmp_path), device="cpu")
    with pytest.raises(AttributeError, match="'with_sde': it is a method of sr3 runs, and this is a gaussian run"):
        run.with_sde(VPSDE(schedule="cosine"))  # a time-conditioned model only knows its training schedule
    with pytest.raises(ValueError, match="condition is for runs of a family conditioned on images; this gaussian"):
        run.sample(2, "ddim", steps=2, condition=torch.zeros(2, 2))


def _toy_run(tmp_path):
    main(["train", "--config", "configs/vp/toy.py", "--workdir", str(tmp_path / "toy"), "--no-progress",
          "--config.training.n_iters=2", "--config.training.device=cpu", "--config.model.hidden=16",
          "--config.data.n_eval=16", "--config.training.sample_every=100"])
    return tmp_path / "toy"


@pytest.mark.parametrize("overrides, fragments", [
    (["--config.sde.type=ve"], ["config.family='sr3' needs", "config.sde.type='ve'"]),
    (["--config.model.num_classes=10"], ["config.model.num_classes=10"]),
    (["--config.sr3.factor=3"], ["config.sr3.factor=3 must divide the image size 8x8", "valid factors: [2, 4, 8]"]),
    (["--config.sr3.norm=3"], ["config.sr3.norm must be 1 or 2, got 3"]),
    (["--config.data.dataset=moons"], ["needs images", "'moons'"]),
])
def test_bad_sr3_configs_fail_before_training(overrides, fragments, tmp_path):
    with pytest.raises(ValueError) as info:
        Trainer(config(overrides), tmp_path / "run", progress_bar=False)
    for fragment in fragments:
        assert fragment in str(info.value), (fragment, str(info.value))


def test_unet_reads_the_condition_image():
    from scoresde.models import UNet
    net = UNet(in_channels=1, resolution=8, ch=8, ch_mult=(1, 2), num_res_blocks=1, attn_resolutions=(),
               dropout=0.0, cond_channels=1)
    x, t = torch.randn(2, 1, 8, 8), torch.full((2,), 0.5)
    a, b = net(x, t, torch.zeros(2, 1, 8, 8)), net(x, t, torch.ones(2, 1, 8, 8))
    assert a.shape == x.shape and (a - b).abs().max() > 1e-3
    with pytest.raises(ValueError, match=r"y must be images \[B, 1, 8, 8\]"):
        net(x, t)
    with pytest.raises(ValueError, match="not both"):
        UNet(in_channels=1, resolution=8, num_classes=3, cond_channels=1)


def test_compare_points_sr3_runs_to_their_example(workdir, capsys):
    out = cli(capsys, "compare", "--workdir", workdir, "--samplers", "ddim", "--steps", 5, "--n", 8, "--device", "cpu")
    assert_one_line_error(out, "is an SR3 run", "examples/super_resolution_mnist.py")
