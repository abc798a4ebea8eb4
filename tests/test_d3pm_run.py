"""D3PM through the shared machinery: config, Trainer, checkpoints, `scoresde train/sample/eval` and `Run`."""
import json

import ml_collections
import numpy as np
import pytest
import torch

import scoresde
from scoresde import builders, families
from scoresde.cli import main
from scoresde.config import apply_overrides, load_config, validate
from scoresde.discrete import D3PM, CategoricalUNet
from scoresde.training import Trainer
from test_cli import assert_one_line_error, cli
from test_training import ROOT

pytestmark = pytest.mark.slow  # trains runs and starts the CLI: left out of the quick loop (-m "not slow")

pytest.importorskip("sklearn")
TINY = ["--config.training.n_iters=20", "--config.training.batch_size=32", "--config.training.log_every=10",
        "--config.training.eval_every=10", "--config.training.sample_every=20", "--config.training.save_every=10",
        "--config.training.snapshot_every=20", "--config.sde.N=40", "--config.sampling.steps=40",
        "--config.sampling.n=16", "--config.data.n_eval=24", "--config.eval.n_bpd=24", "--config.eval.batch_size=12",
        "--config.model.ch=16"]


@pytest.fixture(scope="module")
def workdir(tmp_path_factory):
    work = tmp_path_factory.mktemp("d3pm") / "run"
    main(["train", "--config", "configs/d3pm/digits.py", "--workdir", str(work), "--no-progress", *TINY])
    return work


def test_cli_trains_samples_and_evaluates_d3pm_on_digits(workdir, capsys):
    for name in ("config.json", "log.jsonl", "checkpoints/latest.pt", "checkpoints/ckpt_20.pt", "samples/step_20.png"):
        assert (workdir / name).exists(), name
    log = [json.loads(line) for line in (workdir / "log.jsonl").read_text().splitlines()]
    assert [r["step"] for r in log if "eval_loss" in r] == [10, 20] and all(np.isfinite(r.get("loss", 0)) for r in log)
    out = cli(capsys, "sample", "--workdir", workdir, "--steps", "5", "--n", "10", "--batch-size", "4")
    assert out.returncode == 0, out.stderr
    data = np.load(workdir / "samples" / "ancestral_5.npz")
    x = data["samples"]
    assert x.shape == (10, 1, 8, 8) and x.dtype == np.int64 and x.min() >= 0 and x.max() <= 16 and int(data["nfe"]) == 5
    out = cli(capsys, "eval", "--workdir", workdir)
    assert out.returncode == 0, out.stderr
    result = json.loads((workdir / "eval.json").read_text())
    assert result["n"] == 24 and result["nfe"] == 2 * 40 and np.isfinite(result["bits_per_dim"]) and result["bits_per_dim"] > 0, result
    assert "bits/dim (T-step variational bound) on 24 held-out samples" in out.stdout


def test_run_loads_d3pm_and_its_samples_are_states(workdir):
    run = scoresde.load_run(workdir, device="cpu")
    assert isinstance(run.sde, D3PM) and isinstance(run.model, CategoricalUNet) and run.sde.T == 40
    x, nfe = run.sample(6, steps=8, seed=1)
    y, _ = run.sample(6, steps=8, seed=1)
    assert torch.equal(x, y) and nfe == 8 and x.shape == (6, 1, 8, 8) and x.dtype == torch.long
    pictures = run.to_display(x)
    assert pictures.min() >= 0 and pictures.max() <= 1 and torch.allclose(pictures * 16, x.float())
    held_out = run.data.eval_data
    assert held_out.dtype == torch.long and held_out.max() == 16 and held_out.min() == 0
    # digits' 17 grey levels come back exactly from the uint8 images
    from sklearn.datasets import load_digits
    assert torch.equal(held_out[:, 0], torch.from_numpy(load_digits().images[1500:1524]).long())
    assert np.isfinite(run.eval_loss())


def test_d3pm_steps_beyond_T_and_unknown_samplers_fail_in_one_line(workdir, capsys):
    assert_one_line_error(cli(capsys, "sample", "--workdir", workdir, "--steps", "41"), "must be <= T", "41")
    assert_one_line_error(cli(capsys, "sample", "--workdir", workdir, "--sampler", "pc"),
                          "D3PM sampler name must be one of ['ancestral']", "'pc'")


@pytest.mark.parametrize("overrides, fragments", [
    (["--config.d3pm.transition=mask"], ["config.d3pm.transition must be one of", "'mask'"]),
    (["--config.d3pm.schedule=mutual_information"], ["mutual_information", "absorbing", "'gaussian'"]),
    (["--config.d3pm.num_states=1"], ["config.d3pm.num_states must be >= 2, got 1"]),
    (["--config.sampling.steps=2000"], ["config.sampling", "<= T", "2000"]),
    (["--config.data.dataset=moons"], ["categorical images", "'moons'"]),
    (["--config.model.name=mlp"], ["needs config.model.name='unet'"]),
])
def test_bad_d3pm_configs_fail_before_training(overrides, fragments, tmp_path):
    config = apply_overrides(load_config(str(ROOT / "configs/d3pm/digits.py")), overrides)
    with pytest.raises(ValueError) as info:
        Trainer(config, tmp_path / "run", progress_bar=False)
    for fragment in fragments:
        assert fragment in str(info.value), (fragment, str(info.value))


def test_families_are_chosen_by_config_family_and_the_gaussian_one_uses_the_shared_builders():
    """config.family picks the family: gaussian by default, built by the shared builders; d3pm from its config;
    an unknown name fails, listing the valid ones."""
    vp = validate(load_config(str(ROOT / "configs/vp/digits.py")))
    family = families.get_family(vp)
    assert family is families.GAUSSIAN and family.loss_fn is builders.build_loss_fn
    assert family.sampler is builders.build_sampler and family.data is builders.build_data_from_config
    assert families.get_family(validate(load_config(str(ROOT / "configs/d3pm/digits.py")))) is families.D3PM
    with pytest.raises(ValueError, match=r"config.family must be one of \['classifier', 'd3pm', 'gaussian', 'sr3'\], got 'nope'"):
        families.get_family(ml_collections.ConfigDict({"family": "nope"}))
