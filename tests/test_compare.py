"""`scoresde compare` on tiny runs: every output, resumption, image features, and bad input."""
import argparse
import json

import pytest
import torch

from scoresde import compare
from scoresde.config import apply_overrides, load_config
from scoresde.training import Trainer
from test_training import ROOT, TINY, run_cli


def args_for(workdir, **kw):
    base = dict(workdir=str(workdir), samplers="ancestral,ode:heun,ode", steps="3,5", n=300, batch_size=150, seed=0,
                device="cpu", out=None, features="classifier", inception_path=None, classifier_steps=30, bpd_n=0)
    return argparse.Namespace(**{**base, **kw})


@pytest.fixture(scope="module")
def toy_run(tmp_path_factory):
    workdir = tmp_path_factory.mktemp("toy")
    config = apply_overrides(load_config(str(ROOT / "configs/vp/toy.py")), TINY)
    config.training.device = "cpu"
    Trainer(config, workdir, progress_bar=False).train()
    return workdir


def test_compare_writes_every_report_and_resumes(toy_run, capsys):
    compare.run(args_for(toy_run, bpd_n=20))
    out = toy_run / "compare"
    for name in ("results.jsonl", "results.csv", "results.json", "results.md", "quality_vs_nfe.png", "best_samples.png"):
        assert (out / name).exists(), name
    rows = json.loads((out / "results.json").read_text())["rows"]
    assert [(r["sampler"], r["steps"], r["nfe"]) for r in rows] == [
        ("ancestral", 3, 3), ("ancestral", 5, 5), ("ode:heun", 3, 5), ("ode:heun", 5, 9), ("ode", 0, rows[4]["nfe"])]
    assert all(r["sliced_wasserstein"] > 0 and r["seconds"] > 0 and r["kind"] for r in rows)
    assert "bits_per_dim" in json.loads((out / "results.json").read_text())
    assert "| ode:heun | ODE | 3 | 5 |" in (out / "results.md").read_text()
    capsys.readouterr()
    compare.run(args_for(toy_run, samplers="ancestral,ddim", steps="3"))  # ancestral 3 is reused, ddim is new
    text = capsys.readouterr().out
    assert "1 already done" in text
    assert len((out / "results.jsonl").read_text().splitlines()) == 6


def test_compare_cli_rejects_unknown_sampler(toy_run):
    out = run_cli("compare", "--workdir", str(toy_run), "--samplers", "ancestral,euler", "--n", "10")
    assert out.returncode == 2 and "sampler name must be one of" in out.stderr


def test_compare_on_images_uses_classifier_features(tmp_path):
    pytest.importorskip("sklearn")
    config = load_config(str(ROOT / "configs/vp/digits.py"))
    config.training.update(n_iters=2, batch_size=16, device="cpu", sample_every=100, eval_every=100)
    config.data.n_eval = 64
    Trainer(config, tmp_path, progress_bar=False).train()
    compare.run(args_for(tmp_path, samplers="ddim", steps="2", n=64, batch_size=64))
    row = json.loads((tmp_path / "compare" / "results.json").read_text())["rows"][0]
    assert row["frechet_distance"] > 0 and "kid" in row
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
