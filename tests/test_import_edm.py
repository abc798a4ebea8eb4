"""`scoresde import edm`: EDM-style pickles, written here, become runs; the code a pickle carries never runs."""
import json
import os
import pickle

import pytest
import torch

import scoresde
from scoresde.cli import main
from scoresde.importers.edm import import_edm
from scoresde.models.edm import PRECONDITIONERS
from edm_pickles import write_edm_pickle

SMALL = {
    "EDMPrecond": dict(img_resolution=16, img_channels=3, label_dim=0, model_type="SongUNet", model_channels=16,
                       channel_mult=[1, 2], num_blocks=1, attn_resolutions=[8], embedding_type="fourier",
                       encoder_type="residual", channel_mult_noise=2, resample_filter=[1, 3, 3, 1], use_fp16=False),
    "VPPrecond": dict(img_resolution=16, img_channels=3, model_type="SongUNet", model_channels=16, channel_mult=[1, 2],
                      num_blocks=1, attn_resolutions=[8]),
    "iDDPMPrecond": dict(img_resolution=16, img_channels=3, model_type="DhariwalUNet", model_channels=64,
                         channel_mult=[1, 2], num_blocks=1, attn_resolutions=[8], M=50),
    "VEPrecond": dict(img_resolution=16, img_channels=3, label_dim=10, model_type="DhariwalUNet", model_channels=64,
                      channel_mult=[1, 2], num_blocks=1, attn_resolutions=[8]),
}


@pytest.mark.parametrize("name", sorted(SMALL))
def test_an_edm_pickle_imports_as_a_run_with_the_same_denoiser(name, tmp_path, capsys):
    torch.manual_seed(0)
    net = PRECONDITIONERS[name](**SMALL[name]).eval()
    flag = tmp_path / "it_ran"
    write_edm_pickle(tmp_path / "network-snapshot.pkl", net, SMALL[name], flag=flag)
    main(["import", "edm", str(tmp_path / "network-snapshot.pkl"), "--workdir", str(tmp_path / "run")])
    assert "imported" in capsys.readouterr().out and not flag.exists()  # the embedded source never ran
    run = scoresde.load_run(tmp_path / "run", device="cpu")
    config = json.loads((tmp_path / "run" / "config.json").read_text())
    assert config["model"]["name"] == "edm" and config["model"]["edm"]["precond"] == name
    g = torch.Generator().manual_seed(1)
    x, sigma = torch.randn(2, 3, 16, 16, generator=g), torch.tensor([0.05, 3.0])
    labels = torch.eye(10)[[3, 7]] if SMALL[name].get("label_dim") else None
    assert torch.equal(run.model.precond(x, sigma, labels), net(x, sigma, labels))
    steps = 3
    samples, nfe = run.sample(2, "edm", steps=steps, seed=0, **({"labels": 3} if labels is not None else {}))
    assert samples.shape == (2, 3, 16, 16) and torch.isfinite(samples).all()


def test_the_denoiser_is_the_x0_prediction_of_the_sdes_score():
    """score = (α D(x/α; σ/α) − x)/σ² on the SDE of the preconditioner: checked on a VP model at one t."""
    from scoresde.config import validate
    from scoresde.importers.edm import network_config, run_config
    torch.manual_seed(0)
    kwargs = SMALL["VPPrecond"]
    config = validate(run_config({"precond": "VPPrecond", "kwargs": kwargs}))
    run_model = scoresde.families.get_family(config).model(config, (3, 16, 16)).eval()
    score = scoresde.families.get_family(config).score_fn(run_model, scoresde.builders.build_sde(config.sde), config)
    sde = scoresde.builders.build_sde(config.sde)
    x, t = torch.randn(2, 3, 16, 16, dtype=torch.float64), torch.tensor([0.3, 0.7], dtype=torch.float64)
    alpha, sigma = sde.marginal_coeffs(t)
    a, s = alpha[:, None, None, None], sigma[:, None, None, None]
    d = run_model.precond(x / a, sigma / alpha).double()
    torch.testing.assert_close(score(x, t), (a * d - x) / s**2)
    assert network_config  # the importer's pieces are importable by name


def test_a_pickle_that_asks_for_code_is_refused_by_name_and_runs_nothing(tmp_path):
    flag = tmp_path / "it_ran"

    class Evil:
        def __reduce__(self):
            return os.system, (f"touch {flag}",)
    with open(tmp_path / "evil.pkl", "wb") as f:
        pickle.dump({"ema": Evil()}, f)
    with pytest.raises(ValueError, match=r"cannot read EDM pickle .*evil.pkl: the pickle asks for (posix|os|nt)\.system, "
                                         r"which a network snapshot does not need; refusing it"):
        import_edm(tmp_path / "evil.pkl", tmp_path / "run")
    assert not flag.exists()


def test_an_unknown_network_class_is_named(tmp_path):
    torch.manual_seed(0)
    net = PRECONDITIONERS["EDMPrecond"](**SMALL["EDMPrecond"])
    write_edm_pickle(tmp_path / "n.pkl", net, SMALL["EDMPrecond"])
    data = open(tmp_path / "n.pkl", "rb").read().replace(b"EDMPrecond", b"EDM2Precon")  # same length: still a pickle
    (tmp_path / "n.pkl").write_bytes(data)
    with pytest.raises(ValueError, match=r"the network is an EDM EDM2Precon, which scoresde does not know; known: "):
        import_edm(tmp_path / "n.pkl", tmp_path / "run")


@pytest.mark.parametrize("damage", ["truncated", "zeros"])
def test_a_damaged_pickle_is_named(tmp_path, damage):
    torch.manual_seed(0)
    write_edm_pickle(tmp_path / "n.pkl", PRECONDITIONERS["VPPrecond"](**SMALL["VPPrecond"]), SMALL["VPPrecond"])
    data = (tmp_path / "n.pkl").read_bytes()
    (tmp_path / "n.pkl").write_bytes(data[:len(data) // 2] if damage == "truncated" else bytes(len(data)))
    with pytest.raises(ValueError, match=rf"cannot read EDM pickle {tmp_path / 'n.pkl'}"):
        import_edm(tmp_path / "n.pkl", tmp_path / "run")
