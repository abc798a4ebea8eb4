"""Class-conditional runs and noise-aware classifiers through the config, trainer, checkpoints, Run and CLI."""
import json

import numpy as np
import pytest
import torch

import scoresde
from scoresde.training import Trainer
from test_cli import assert_one_line_error, cli
from test_training import ROOT, TINY, _assert_equal_states, _state, apply_overrides, load_config

pytestmark = pytest.mark.slow  # trains runs and starts the CLI: left out of the quick loop (-m "not slow")

COND = ["--config.data.dataset=eight_gaussians", "--config.model.num_classes=8"]
CLASSIFIER = COND + ["--config.family=classifier", "--config.model.ch=8", "--config.model.num_res_blocks=1"]


def config(extra, **training):
    c = apply_overrides(load_config(str(ROOT / "configs/vp/toy.py")), TINY + extra)
    c.training.update(**{"device": "cpu", **training})
    return c


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    root = tmp_path_factory.mktemp("conditional")
    Trainer(config(COND), root / "cond", progress_bar=False).train()
    Trainer(config(CLASSIFIER), root / "clf", progress_bar=False).train()
    return root / "cond", root / "clf"


def test_conditional_resume_is_bit_exact(tmp_path):
    """Label dropout draws from the step's own stream, so 10 + 10 steps equal 20 straight steps."""
    straight = Trainer(config(COND, n_iters=20), tmp_path / "a", progress_bar=False)
    straight.train()
    Trainer(config(COND, n_iters=10), tmp_path / "b", progress_bar=False).train()
    resumed = Trainer(config(COND, n_iters=20), tmp_path / "b", progress_bar=False)
    resumed.train()
    _assert_equal_states(_state(straight), _state(resumed))


def test_conditional_run_samples_classes_and_guides(runs):
    cond, clf = runs
    run = scoresde.load_run(cond)
    assert run.num_classes == 8 and run.score_fn.num_classes == 8
    x0, nfe = run.sample(32, "ddim", steps=5, labels=3, seed=1)
    x2, nfe2 = run.sample(32, "ddim", steps=5, labels=3, guidance=2.0, seed=1)
    assert nfe == nfe2 and x0.shape == (32, 2) and not torch.allclose(x0, x2)
    xu, _ = run.sample(32, "ddim", steps=5, labels=3, guidance=-1.0, seed=1)  # w = -1: the unconditional model
    xn, _ = run.sample(32, "ddim", steps=5, seed=1)
    torch.testing.assert_close(xu, xn)
    per_sample = torch.arange(32) % 8
    xb, _ = run.sample(32, "ddim", steps=5, labels=per_sample, seed=1, batch_size=8)
    assert xb.shape == (32, 2)
    classifier = scoresde.load_run(clf)
    assert classifier.family.name == "classifier" and classifier.family.guides and not classifier.can_sample
    xc, _ = run.sample(16, "ddim", steps=5, labels=3, classifier=classifier, classifier_scale=2.0, seed=1)
    assert xc.shape == (16, 2) and torch.isfinite(xc).all()
    with pytest.raises(ValueError, match=r"is a classifier run \(a noise-aware classifier .*\): it has no samples; use it to guide one"):
        classifier.sample(4)
    with pytest.raises(ValueError, match="labels must be one class or one per sample \\(32\\), got 5 labels"):
        run.sample(32, "ddim", steps=5, labels=[1, 2, 3, 4, 5])
    log = [json.loads(line) for line in (clf / "log.jsonl").read_text().splitlines()]
    assert any("eval_accuracy" in row for row in log)


def test_cli_sample_labels_guidance_grid_and_classifier(runs, capsys):
    cond, clf = runs
    out = cli(capsys, "sample", "--workdir", cond, "--labels", "2", "--guidance", "1.5", "--n", "50", "--sampler",
              "ddim", "--steps", "5")
    assert out.returncode == 0, out.stderr
    assert "5 NFE per batch (each call on a doubled batch: classifier-free guidance)" in out.stdout
    assert np.load(cond / "samples" / "ddim_y2_w1.5_5.npz")["samples"].shape == (50, 2)
    out = cli(capsys, "sample", "--workdir", cond, "--labels", "all", "--guidance", "0,3", "--n", "20", "--sampler",
              "ddim", "--steps", "5")
    assert out.returncode == 0, out.stderr
    grid = np.load(cond / "samples" / "ddim_5_grid.npz")
    assert grid["samples"].shape == (8, 2, 20, 2) and grid["guidance"].tolist() == [0, 3]
    assert (cond / "samples" / "ddim_5_grid.png").exists()
    out = cli(capsys, "sample", "--workdir", cond, "--labels", "4", "--classifier", clf, "--n", "20", "--sampler",
              "ddim", "--steps", "5")
    assert out.returncode == 0 and "plus one classifier gradient per call" in out.stdout, out.stderr


@pytest.mark.parametrize("args, fragments", [
    (["--labels", "8"], ["--labels must be classes in 0..7, got 8"]),
    (["--labels", "a,b"], ["--labels must be 'all' or comma-separated classes"]),
    (["--guidance", "2"], ["--guidance and --classifier need --labels"]),
    (["--labels", "1", "--guidance", "x"], ["--guidance must be comma-separated numbers, got 'x'"]),
])
def test_cli_guidance_errors_are_one_line(runs, capsys, args, fragments):
    assert_one_line_error(cli(capsys, "sample", "--workdir", runs[0], "--n", "4", *args), *fragments)


def test_cli_classifier_run_refuses_to_sample_and_unconditional_refuses_labels(runs, capsys, tmp_path):
    assert_one_line_error(cli(capsys, "sample", "--workdir", runs[1], "--n", "4"), "is a noise-aware classifier")
    out = cli(capsys, "eval", "--workdir", runs[1])
    assert out.returncode == 0 and "accuracy" in out.stdout, out.stderr
    plain = tmp_path / "plain"
    Trainer(config([], n_iters=5), plain, progress_bar=False).train()
    assert_one_line_error(cli(capsys, "sample", "--workdir", plain, "--labels", "1"), "the run is unconditional")
    out = cli(capsys, "sample", "--workdir", plain, "--labels", "1,5", "--classifier", runs[1], "--n", "10",
              "--sampler", "ddim", "--steps", "3")  # classifier guidance of an unconditional model: its classes
    assert out.returncode == 0 and "plus one classifier gradient per call" in out.stdout, out.stderr
    assert np.load(plain / "samples" / "ddim_3_grid.npz")["samples"].shape == (2, 1, 10, 2)
    assert_one_line_error(cli(capsys, "sample", "--workdir", plain, "--labels", "8", "--classifier", runs[1]),
                          "--labels must be classes in 0..7, got 8")
    assert_one_line_error(cli(capsys, "compare", "--workdir", plain, "--guidance", "1", "--n", "10"),
                          "--guidance needs a class-conditional run")


def test_compare_guidance_rows(runs, capsys, tmp_path):
    cond, _ = runs
    out = cli(capsys, "compare", "--workdir", cond, "--samplers", "ddim", "--steps", "4", "--n", "200",
              "--batch-size", "200", "--guidance", "0,2", "--out", tmp_path / "cmp")
    assert out.returncode == 0, out.stderr
    rows = json.loads((tmp_path / "cmp" / "results.json").read_text())["rows"]
    assert [r["guidance"] for r in rows] == [0, 2] and [r["batch_factor"] for r in rows] == [1, 2]
    table = (tmp_path / "cmp" / "results.md").read_text()
    assert "| w |" in table and "4 (2B)" in table
    again = cli(capsys, "compare", "--workdir", cond, "--samplers", "ddim", "--steps", "4", "--n", "200",
                "--batch-size", "200", "--guidance", "0,2,4", "--out", tmp_path / "cmp")
    assert "2 already done" in again.stdout
