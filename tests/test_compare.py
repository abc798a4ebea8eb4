"""`scoresde compare` on tiny runs: every output, resumption, image features, and bad input."""
import argparse
import json
import re

import pytest
import torch

import scoresde
from scoresde import cli_compare, compare
from scoresde.config import apply_overrides, load_config
from scoresde.training import Trainer
from test_training import ROOT, TINY, run_cli

pytestmark = pytest.mark.slow  # trains runs and starts the CLI: left out of the quick loop (-m "not slow")


def args_for(workdir, **kw):
    base = dict(workdir=str(workdir), samplers="ancestral,ode:heun,ode", steps="3,5", n=300, batch_size=150, seed=0,
                device="cpu", out=None, features="classifier", inception_path=None, classifier_steps=30, bpd_n=0, bpd_raw=False,
                option=[], guidance=None, classifier=None, classifier_scale=1.0)
    return argparse.Namespace(**{**base, **kw})


@pytest.fixture(scope="module")
def toy_run(tmp_path_factory):
    workdir = tmp_path_factory.mktemp("toy")
    config = apply_overrides(load_config(str(ROOT / "configs/vp/toy.py")), TINY)
    config.training.device = "cpu"
    Trainer(config, workdir, progress_bar=False).train()
    return workdir


def test_compare_writes_every_report_and_resumes(toy_run, capsys):
    cli_compare.run(args_for(toy_run, bpd_n=20))
    out = toy_run / "compare"
    for name in ("results.jsonl", "results.csv", "results.json", "results.md", "quality_vs_nfe.png"):
        assert (out / name).exists(), name
    result = json.loads((out / "results.json").read_text())
    rows = result["rows"]
    # this 30-step model's samples mostly leave the data's range; best_samples.png shows the rows that did not
    assert (out / "best_samples.png").exists() == (not all(r["diverged"] for r in rows))
    assert [(r["sampler"], r["steps"], r["nfe"]) for r in rows] == [
        ("ancestral", 3, 3), ("ancestral", 5, 5), ("ode:heun", 3, 5), ("ode:heun", 5, 9),
        ("ode", "adaptive", rows[4]["nfe"])]
    assert all(r["sliced_wasserstein_se"] > 0 and r["mmd_se"] > 0 and r["kind"] in ("discrete", "ODE") for r in rows)
    floor = result["noise_floor"]
    assert floor["n_floor"] == 300 and 0 < floor["sliced_wasserstein"] < min(r["sliced_wasserstein"] for r in rows)
    assert "bits_per_dim" in result and result["step"] == 30
    md = (out / "results.md").read_text()
    assert re.search(r"\| ode:heun \| ODE(, \*\*diverged\*\*)? \| 3 \| 5 \|", md)
    assert re.search(r"\| ode \| ODE(, \*\*diverged\*\*)? \| adaptive \|", md) and "noise floor: 300 real samples" in md
    assert ",adaptive," in (out / "results.csv").read_text()
    capsys.readouterr()
    cli_compare.run(args_for(toy_run, samplers="ancestral,ddim", steps="3"))  # ancestral 3 is reused, ddim is new
    text = capsys.readouterr().out
    assert "1 already done" in text
    assert len((out / "results.jsonl").read_text().splitlines()) == 1 + 5 + 1  # floor, 5 rows, ddim


@pytest.mark.parametrize("change", [dict(seed=1), dict(n=200), dict(batch_size=100), dict(option=["eta=0.5"])])
def test_a_stored_row_is_not_reused_when_what_determines_it_changed(toy_run, tmp_path, capsys, change, monkeypatch):
    monkeypatch.setattr(compare, "_plots", lambda *args: [])  # plots are tested above; this is about the rows
    out = tmp_path / "cmp"
    cli_compare.run(args_for(toy_run, samplers="ddim", steps="3", out=str(out)))
    first = json.loads((out / "results.json").read_text())["rows"][0]
    capsys.readouterr()
    cli_compare.run(args_for(toy_run, samplers="ddim", steps="3", out=str(out), **change))
    assert "0 already done" in capsys.readouterr().out
    second = json.loads((out / "results.json").read_text())["rows"][0]
    assert second["sliced_wasserstein"] != first["sliced_wasserstein"]


def test_a_stored_row_is_not_reused_after_more_training(tmp_path, capsys, monkeypatch):
    monkeypatch.setattr(compare, "_plots", lambda *args: [])
    config = apply_overrides(load_config(str(ROOT / "configs/vp/toy.py")), TINY)
    config.training.update(device="cpu", n_iters=10)
    Trainer(config, tmp_path, progress_bar=False).train()
    cli_compare.run(args_for(tmp_path, samplers="ddim", steps="3"))
    config.training.n_iters = 12
    Trainer(config, tmp_path, progress_bar=False).train()
    capsys.readouterr()
    cli_compare.run(args_for(tmp_path, samplers="ddim", steps="3"))
    assert "0 already done" in capsys.readouterr().out
    assert json.loads((tmp_path / "compare" / "results.json").read_text())["step"] == 12


def test_every_registered_sampler_runs_under_compare(toy_run, tmp_path):
    from scoresde.sampling import SAMPLERS

    cli_compare.run(args_for(toy_run, samplers=",".join(SAMPLERS), steps="3", n=64, batch_size=64, out=str(tmp_path)))
    rows = json.loads((tmp_path / "results.json").read_text())["rows"]
    assert [r["sampler"] for r in rows] == list(SAMPLERS)
    assert all(r["kind"] in ("discrete", "SDE", "SDE + corrector", "ODE") for r in rows)


def test_best_budget_prefers_the_most_converged_of_the_statistically_tied_rows():
    rows = [{"sampler": "a", "nfe": 10, "m": 0.30, "m_se": 0.01}, {"sampler": "a", "nfe": 20, "m": 0.20, "m_se": 0.01},
            {"sampler": "a", "nfe": 50, "m": 0.21, "m_se": 0.01}, {"sampler": "a", "nfe": 100, "m": 0.225, "m_se": 0.01},
            {"sampler": "a", "nfe": 1000, "m": 0.26, "m_se": 0.01}]
    # 0.21 and 0.225 lie within 2·√2·0.01 = 0.028 of 0.20; 0.26 does not: the best is the 100-NFE row.
    assert compare.best_rows(rows, "m")["a"]["nfe"] == 100


def test_compare_cli_rejects_unknown_sampler(toy_run):
    out = run_cli("compare", "--workdir", str(toy_run), "--samplers", "ancestral,euler", "--n", "10")
    assert out.returncode == 2 and "sampler name must be one of" in out.stderr


def test_compare_on_images_uses_classifier_features(tmp_path):
    pytest.importorskip("sklearn")
    config = load_config(str(ROOT / "configs/vp/digits.py"))
    config.training.update(n_iters=2, batch_size=16, device="cpu", sample_every=100, eval_every=100)
    config.data.n_eval = 64
    Trainer(config, tmp_path, progress_bar=False).train()
    cli_compare.run(args_for(tmp_path, samplers="ddim", steps="2", n=64, batch_size=64))
    result = json.loads((tmp_path / "compare" / "results.json").read_text())
    row = result["rows"][0]
    assert row["frechet_distance"] > result["noise_floor"]["frechet_distance"] > 0
    assert row["frechet_distance_se"] > 0 and "kid" in row and "kid_se" in row
    assert (tmp_path / "feature_classifier.pt").exists()


def test_inception_features_need_a_local_file(toy_run, tmp_path):
    with pytest.raises(FileNotFoundError, match="downloads nothing"):
        from scoresde.features import inception_features
        inception_features(str(tmp_path / "missing.pt"), None, "cpu")


def test_fid_inception_matches_torchvision_structure():
    """Same parameters as torchvision's Inception3 (27,161,264 with its auxiliary head) minus that head."""
    from scoresde.inception import FIDInceptionV3

    net = FIDInceptionV3(num_classes=1000)
    aux_head = (768 * 128 + 2 * 128) + (128 * 768 * 25 + 2 * 768) + (768 * 1000 + 1000)
    assert sum(p.numel() for p in net.parameters()) == 27_161_264 - aux_head
    keys = FIDInceptionV3().state_dict()
    assert keys["fc.weight"].shape == (1008, 2048) and "Mixed_7c.branch3x3dbl_3b.bn.running_var" in keys


def test_pt_inception_state_dict_loads_and_gives_2048_features(tmp_path):
    """A state dict in pt_inception's format (random weights here: the real file cannot be downloaded)."""
    from scoresde.data import ImageData
    from scoresde.features import inception_features
    from scoresde.inception import FIDInceptionV3

    torch.save(FIDInceptionV3().state_dict(), tmp_path / "pt_inception.pth")
    data = ImageData(torch.zeros(4, 1, 8, 8, dtype=torch.uint8), torch.zeros(2, 1, 8, 8, dtype=torch.uint8))
    feats = inception_features(str(tmp_path / "pt_inception.pth"), data, "cpu")(torch.rand(2, 1, 8, 8) * 2 - 1)
    assert feats.shape == (2, 2048) and torch.isfinite(feats).all()
    (tmp_path / "junk.pth").write_bytes(b"not a model")
    with pytest.raises(ValueError, match="neither TorchScript nor a pt_inception state dict"):
        inception_features(str(tmp_path / "junk.pth"), data, "cpu")


def test_diverged_rows_are_flagged_and_kept_off_the_axes(toy_run):
    """Samples far outside the data, or non-finite ones, mark the row diverged (no metric fails on them), the table
    says so, and the plot's quality axis fits only the other rows and the floor."""
    run_ = scoresde.load_run(toy_run, device="cpu")
    quality = compare.Quality(run_, seed=0, classifier_steps=30)
    ref = run_.data.eval_data[:300]
    assert not quality(ref)["diverged"]
    blown = quality(ref * 1e4)
    assert blown["diverged"] and blown["sliced_wasserstein"] > 1e3
    nan = quality(torch.full_like(ref, float("nan")))
    assert nan["diverged"] and nan["sliced_wasserstein"] == float("inf")
    assert not quality(torch.cat([ref[:298], ref[:2] * 1e4]))["diverged"]  # two outliers in 300 are not a divergence
    floor = {"sliced_wasserstein": 0.04, "sliced_wasserstein_se": 0.01}
    rows = [{"sliced_wasserstein": v, "sliced_wasserstein_se": 0.01, "diverged": d} for v, d in
            ((0.2, False), (0.06, False), (2.3e4, True))]
    low, top = compare.plot_range(rows, "sliced_wasserstein", floor)
    assert low == pytest.approx(0.03) and top == pytest.approx(0.21 * 1.5)


def test_compare_reports_a_diverged_row_and_the_time_split(toy_run, tmp_path, capsys):
    """Euler–Maruyama at one step on the VP-SDE (h = 1, β up to 20) leaves the data's range: the row is marked in
    results.md, the plots are still written (with no best sample to show), and the log splits sampling from metric
    time."""
    out = tmp_path / "cmp"
    cli_compare.run(args_for(toy_run, samplers="euler_maruyama", steps="1", out=str(out)))
    table = (out / "results.md").read_text()
    rows = [json.loads(line) for line in (out / "results.jsonl").read_text().splitlines()]
    em1 = next(r for r in rows if r["sampler"] == "euler_maruyama" and r["steps"] == 1)
    assert em1["diverged"] and "| euler_maruyama | SDE, **diverged** | 1 |" in table and "**diverged**:" in table
    assert (out / "quality_vs_nfe.png").stat().st_size > 0
    assert re.search(r"time: sampling [\d.]+ s, metrics [\d.]+ s over 1 new rows", capsys.readouterr().out)
