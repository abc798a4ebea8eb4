"""`scoresde import score_sde`: checkpoints in score_sde's layout, built here, become runs that sample; bad files
and mismatched configs are named; a pickle that would run code is refused and runs nothing."""
from pathlib import Path

import pytest
import torch

import scoresde
from scoresde import families
from scoresde.cli import main
from scoresde.config import apply_overrides, load_config
from fake_cifar import write_cifar10

ROOT = Path(__file__).resolve().parents[1]
CONFIG = str(ROOT / "configs/ve/ncsnpp_cifar10_continuous.py")
TINY = ["--config.model.ch=8", "--config.model.ch_mult=(1, 2)", "--config.model.num_res_blocks=1",
        "--config.model.attn_resolutions=(4,)", "--config.data.image_size=8", "--config.training.device=cpu"]


def tiny_model(overrides=()):
    config = apply_overrides(load_config(CONFIG), TINY + list(overrides))
    size = config.data.image_size
    return families.get_family(config).model(config, (3, size, size)).eval()


def score_sde_checkpoint(path, model, ema_shift=0.5, with_ema=True):
    """What score_sde's save_checkpoint writes for this network: 'module.'-prefixed weights with the sigmas buffer,
    the EMA's shadow list in parameter order (no entry for the untrained Fourier features), optimiser and step."""
    theirs = {k: model.state_dict()["net." + v] for k, v in model.net.score_sde_key_map().items()}
    state = {"module.sigmas": torch.linspace(50, 0.01, 10), **{f"module.{k}": v for k, v in theirs.items()}}
    shadow = [v + ema_shift for k, v in theirs.items() if k != "all_modules.0.W"]
    saved = {"model": state, "optimizer": {"state": {}, "param_groups": []}, "step": 1234}
    if with_ema:
        saved["ema"] = {"decay": 0.999, "num_updates": 1234, "shadow_params": shadow}
    torch.save(saved, path)
    return theirs


def cli_import(checkpoint, *args):
    main(["import", "score_sde", str(checkpoint), "--config", CONFIG, *TINY, *map(str, args)])


@pytest.mark.slow  # the likelihood of the imported run: 20 s
def test_a_score_sde_checkpoint_imports_as_a_run_that_samples(tmp_path, capsys):
    torch.manual_seed(0)
    model = tiny_model()
    theirs = score_sde_checkpoint(tmp_path / "checkpoint_26.pth", model)
    cli_import(tmp_path / "checkpoint_26.pth", "--workdir", tmp_path / "run")
    assert "imported" in capsys.readouterr().out
    run = scoresde.load_run(tmp_path / "run", device="cpu")
    assert run.step == 1234 and run.family.name == "gaussian" and run.shape == (3, 8, 8)
    ours = run.model.state_dict()
    for key, mine in run.model.net.score_sde_key_map().items():  # the EMA weights, by position
        expected = theirs[key] if key == "all_modules.0.W" else theirs[key] + 0.5
        assert torch.equal(ours["net." + mine], expected), key
    x, nfe = run.sample(2, "ddim", steps=3, seed=0)
    assert x.shape == (2, 3, 8, 8) and nfe == 3 and torch.isfinite(x).all()
    from scoresde.likelihood import likelihood
    bpd = likelihood(run.score_fn, run.sde, x.clamp(0, 1), eps=0.5, rtol=1e-3, atol=1e-3,  # random weights are
                     generator=torch.Generator().manual_seed(0)).bpd  # stiff near t = 0: start the ODE at 0.5
    assert bpd.shape == (2,) and torch.isfinite(bpd).all()
    mask = torch.zeros(2, 3, 8, 8)
    mask[..., :4] = 1
    painted, _ = run.inpaint(x, mask, "ddim", steps=3)
    torch.testing.assert_close(painted * mask, x * mask)  # the known half is kept
    cli_import(tmp_path / "checkpoint_26.pth", "--workdir", tmp_path / "raw", "--weights", "model")
    raw = scoresde.load_run(tmp_path / "raw", device="cpu")
    assert all(torch.equal(raw.model.state_dict()["net." + v], theirs[k]) for k, v in raw.model.net.score_sde_key_map().items())


@pytest.mark.slow
def test_an_imported_run_fine_tunes_with_a_fresh_optimiser(tmp_path, capsys):
    write_cifar10(tmp_path / "cifar", per_file=4)
    at_32 = ["--config.data.image_size=32", f"--config.data.root={tmp_path / 'cifar'}", "--config.data.n_eval=4",
             "--config.training.batch_size=2"]
    torch.manual_seed(0)
    score_sde_checkpoint(tmp_path / "c.pth", tiny_model(at_32))
    cli_import(tmp_path / "c.pth", "--workdir", tmp_path / "run", *at_32)
    main(["train", "--config", CONFIG, "--workdir", str(tmp_path / "run"), *TINY, *at_32, "--no-progress",
          "--config.training.n_iters=1236", "--config.sampling.steps=2",
          "--config.sampling.n=2"])
    out = capsys.readouterr().out
    assert "fine-tuning the weights imported from" in out and "trained 2 steps (1234 -> 1236)" in out
    assert scoresde.load_run(tmp_path / "run", device="cpu").step == 1236


def test_a_checkpoint_for_another_config_names_the_first_mismatching_key_and_both_shapes(tmp_path):
    torch.manual_seed(0)
    score_sde_checkpoint(tmp_path / "c.pth", tiny_model(["--config.model.ch=16"]))
    with pytest.raises(SystemExit):
        cli_import(tmp_path / "c.pth", "--workdir", tmp_path / "run")
    from scoresde.importers import import_score_sde
    config = apply_overrides(load_config(CONFIG), TINY)
    with pytest.raises(ValueError, match=r"checkpoint key all_modules\.\d+\.\w+ has shape \[\d+(, \d+)*\], the config's "
                                         r"network expects \[\d+(, \d+)*\] \(net\.[\w.]+\)"):
        import_score_sde(tmp_path / "c.pth", tmp_path / "run", config=config)


@pytest.mark.parametrize("damage", ["truncated", "zeros", "empty"])
def test_a_damaged_file_is_named(tmp_path, damage):
    from scoresde.importers import import_score_sde
    torch.manual_seed(0)
    score_sde_checkpoint(tmp_path / "c.pth", tiny_model())
    data = (tmp_path / "c.pth").read_bytes()
    (tmp_path / "c.pth").write_bytes({"truncated": data[:len(data) // 2], "zeros": bytes(len(data)), "empty": b""}[damage])
    with pytest.raises(ValueError, match=rf"cannot read checkpoint {tmp_path / 'c.pth'}"):
        import_score_sde(tmp_path / "c.pth", tmp_path / "run", config=apply_overrides(load_config(CONFIG), TINY))


def test_a_checkpoint_without_ema_says_so_and_imports_its_model_weights_when_asked(tmp_path):
    from scoresde.importers import import_score_sde
    torch.manual_seed(0)
    score_sde_checkpoint(tmp_path / "c.pth", tiny_model(), with_ema=False)
    config = apply_overrides(load_config(CONFIG), TINY)
    with pytest.raises(ValueError, match=r"has no EMA weights .* with --weights model"):
        import_score_sde(tmp_path / "c.pth", tmp_path / "run", config=config)
    import_score_sde(tmp_path / "c.pth", tmp_path / "run", config=config, weights="model")
    assert scoresde.load_run(tmp_path / "run", device="cpu").step == 1234


class RunsCode:
    """An object whose unpickling would call exec: what a malicious checkpoint does."""

    def __init__(self, flag):
        self.flag = flag

    def __reduce__(self):
        return exec, (f"open({str(self.flag)!r}, 'w').write('ran')",)


def test_a_checkpoint_that_would_run_code_is_refused_and_runs_nothing(tmp_path):
    from scoresde.importers import import_score_sde
    flag = tmp_path / "it_ran"
    torch.save({"model": {}, "payload": RunsCode(flag)}, tmp_path / "evil.pth")
    with pytest.raises(ValueError, match=rf"cannot read checkpoint {tmp_path / 'evil.pth'}"):
        import_score_sde(tmp_path / "evil.pth", tmp_path / "run", config=apply_overrides(load_config(CONFIG), TINY))
    assert not flag.exists()


def test_import_needs_a_config_of_an_ncsnpp_model(tmp_path, capsys):
    torch.manual_seed(0)
    score_sde_checkpoint(tmp_path / "c.pth", tiny_model())
    with pytest.raises(SystemExit) as e:
        main(["import", "score_sde", str(tmp_path / "c.pth"), "--workdir", str(tmp_path / "run")])
    assert e.value.code == 2 and "needs its config (--config FILE)" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        main(["import", "score_sde", str(tmp_path / "c.pth"), "--workdir", str(tmp_path / "run"), "--config",
              "vp/toy"])
    assert "needs model.name='ncsnpp', got 'mlp'" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        main(["import", "nope", str(tmp_path / "c.pth"), "--workdir", str(tmp_path / "run")])
    assert "source must be one of ['diffusers', 'edm', 'score_sde']" in capsys.readouterr().err
    with pytest.raises(SystemExit):  # a torch.save file given as an EDM pickle says what it is
        main(["import", "edm", str(tmp_path / "c.pth"), "--workdir", str(tmp_path / "run")])
    assert "written by torch.save, not pickle.dump: is it a score_sde checkpoint" in capsys.readouterr().err


@pytest.mark.slow
def test_compare_runs_on_an_imported_run(tmp_path, capsys):
    """compare reads the imported run's held-out data from local files (here a small CIFAR-10 stand-in)."""
    write_cifar10(tmp_path / "cifar")
    at_32 = ["--config.data.image_size=32", f"--config.data.root={tmp_path / 'cifar'}", "--config.data.n_eval=8"]
    torch.manual_seed(0)
    score_sde_checkpoint(tmp_path / "c.pth", tiny_model(at_32))
    cli_import(tmp_path / "c.pth", "--workdir", tmp_path / "run", *at_32)
    main(["compare", "--workdir", str(tmp_path / "run"), "--samplers", "ddim,pc", "--steps", "2", "--n", "8",
          "--batch-size", "8", "--classifier-steps", "5", "--device", "cpu"])
    out = capsys.readouterr().out
    assert "| ddim |" in out and "| pc |" in out and (tmp_path / "run" / "compare" / "results.md").is_file()
