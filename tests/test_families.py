"""Families: a new one is its module plus one registry line, and every family's run-defining keys are protected.

The plug-in family is defined here, in the test file: its own data (a ring of radius config.ring.radius), its own
config section and its own evaluation. It trains, samples and evaluates through the CLI with no change to library code.
"""
import dataclasses
import json
import math

import pytest
import torch

from scoresde import families
from scoresde.cli import main
from scoresde.config import _get, _keys, default_config, to_json, validate
from scoresde.data import stream_generator
from scoresde.training.loop import _check_workdir_config


class Ring:
    """Points on a circle of radius `radius`, at uniform angles: the data protocol of scoresde.data."""

    shape, is_image, num_classes, eval_labels, eval_uint8 = (2,), False, 0, None, None

    def __init__(self, radius: float, n_eval: int):
        self.radius = radius
        self.eval_data = self._draw(n_eval, stream_generator(0, 1 << 20))

    def _draw(self, n, generator):
        angle = 2 * math.pi * torch.rand(n, generator=generator)
        return self.radius * torch.stack([angle.cos(), angle.sin()], 1)

    def train_batch(self, step: int, batch_size: int, seed: int):
        return self._draw(batch_size, stream_generator(seed, step)), None


def evaluate(run, n=None, seed=0, dequantize=True, log=None):
    x, nfe = run.sample(n or 64, "ddim", steps=10, seed=seed)
    return {"step": run.step, "mean_radius": x.norm(dim=1).mean().item(), "nfe": nfe}


def check(config):
    if config.ring.radius > 10:
        raise ValueError(f"config.ring.radius must be at most 10, got {config.ring.radius}")


RING = dataclasses.replace(
    families.GAUSSIAN, name="ring", description="a score model of points on a ring",
    data=lambda config: Ring(config.ring.radius, config.data.n_eval), evaluate=evaluate,
    report=lambda r: [f"step {r['step']}: samples at mean radius {r['mean_radius']:.3f} ({r['nfe']} NFE)"],
    config={"ring": {"radius": 2.0}}, rules={"ring.radius": (lambda v: v > 0, "> 0")}, check=check,
    held_out_condition=lambda run, n: None, sample_inputs=lambda run, n: {})


@pytest.fixture
def ring(monkeypatch):
    monkeypatch.setattr(families, "FAMILIES", dict(families.FAMILIES))
    return families.register(RING)


TINY = ["--config.training.n_iters=30", "--config.training.batch_size=64", "--config.model.hidden=32",
        "--config.training.device=cpu", "--config.data.n_eval=64", "--config.sampling.steps=10",
        "--config.sampling.n=16", "--config.eval.n_bpd=16", "--no-progress"]


@pytest.mark.slow
def test_a_family_defined_here_trains_samples_and_evaluates_through_the_cli(ring, tmp_path, capsys):
    config_file = tmp_path / "ring.py"
    config_file.write_text("from scoresde.config import default_config\n\n\ndef get_config():\n"
                           "    c = default_config()\n    c.family = 'ring'\n    c.ring.radius = 3.0\n"
                           "    c.sampling.name = 'ddim'\n    return c\n")
    workdir = str(tmp_path / "run")
    main(["train", "--config", str(config_file), "--workdir", workdir, *TINY])
    assert json.loads((tmp_path / "run" / "config.json").read_text())["ring"] == {"radius": 3.0}
    main(["sample", "--workdir", workdir, "--n", "8", "--device", "cpu"])
    assert "8 samples from step 30" in capsys.readouterr().out
    main(["eval", "--workdir", workdir, "--device", "cpu"])
    out = capsys.readouterr().out
    result = json.loads((tmp_path / "run" / "eval.json").read_text())
    assert set(result) == {"step", "mean_radius", "nfe"} and f"mean radius {result['mean_radius']:.3f}" in out
    with pytest.raises(SystemExit) as exit_:  # its own key defines the run: a resume that changes it is refused
        main(["train", "--config", str(config_file), "--workdir", workdir, *TINY, "--config.ring.radius=1.0"])
    assert exit_.value.code == 2 and "ring.radius: 3.0 -> 1.0" in capsys.readouterr().err
    with pytest.raises(SystemExit):  # its own config checks run before training
        main(["train", "--config", str(config_file), "--workdir", str(tmp_path / "other"), *TINY,
              "--config.ring.radius=11.0"])
    assert "config.ring.radius must be at most 10, got 11.0" in capsys.readouterr().err


def test_a_registered_family_adds_its_section_and_its_rules(ring):
    c = default_config()
    assert c.ring.radius == 2.0
    c.family, c.ring.radius = "ring", -1.0
    with pytest.raises(ValueError, match=r"config.ring.radius must be > 0, got -1.0"):
        validate(c)
    with pytest.raises(ValueError, match="adds config section"):
        families.register(dataclasses.replace(RING, name="ring2"))  # "ring" is taken by the ring family


def test_a_family_validates_only_its_own_sections():
    c = default_config()
    c.d3pm.num_states = 1  # D3PM's key, out of range, is not used by a gaussian run
    validate(c)
    c = default_config()
    c.family, c.d3pm.num_states = "d3pm", 1
    c.data.dataset, c.model.name = "digits", "unet"
    with pytest.raises(ValueError, match=r"config.d3pm.num_states must be >= 2, got 1"):
        validate(c)


def _changed(value):
    """Another value of the same type."""
    if isinstance(value, bool):
        return not value
    if isinstance(value, (int, float)):
        return value * 2 + 1
    if isinstance(value, str):
        return value + "_other"
    return tuple(value) + (1,)


def _set(config, key, value):
    *parents, leaf = key.split(".")
    node = _get(config, ".".join(parents)) if parents else config
    node[leaf] = value


@pytest.mark.parametrize("name", sorted(families.FAMILIES))
def test_every_run_defining_key_of_every_family_is_refused_on_resume(name, tmp_path):
    """For a run of each family, changing any key is refused by name, except those that may change on resume
    (training length, device, intervals, sampling, eval) and the sections of other families."""
    base = default_config()
    base.family = name
    (tmp_path / "config.json").write_text(to_json(base))
    own = set(families.FAMILIES[name].config)
    others = {s for f in families.FAMILIES.values() for s in f.config} - own
    refused = 0
    for key in _keys(base.to_dict()):
        other = default_config()
        other.family = name
        _set(other, key, next(f for f in families.FAMILIES if f != name) if key == "family" else _changed(_get(base, key)))
        section = key.split(".")[0]
        may_change = section in others or any(key == k or key.startswith(k + ".") for k in families.MAY_CHANGE_ON_RESUME)
        if may_change:
            _check_workdir_config(tmp_path, other)
        else:
            with pytest.raises(ValueError, match=rf"different config \({key}: "):
                _check_workdir_config(tmp_path, other)
            refused += 1
    assert refused > 50 and all(any(k.startswith(s + ".") for k in _keys(base.to_dict())) for s in own)


def test_resuming_an_sr3_run_with_another_factor_or_norm_is_refused(tmp_path):
    saved, other = default_config(), default_config()
    saved.family = other.family = "sr3"
    saved.sr3.factor, other.sr3.factor = 2, 4
    (tmp_path / "config.json").write_text(to_json(saved))
    with pytest.raises(ValueError, match=r"different config \(sr3.factor: 2 -> 4\)"):
        _check_workdir_config(tmp_path, other)
    other.sr3.factor, other.sr3.norm = 2, 1
    with pytest.raises(ValueError, match=r"different config \(sr3.norm: 2 -> 1\)"):
        _check_workdir_config(tmp_path, other)


def test_a_config_saved_before_config_family_gets_the_family_its_keys_chose():
    from scoresde.config import from_json
    for saved, family in [({"sr3": {"factor": 2}}, "sr3"), ({"sde": {"type": "d3pm"}}, "d3pm"),
                          ({"model": {"name": "classifier"}}, "classifier"), ({"sde": {"type": "ve"}}, "gaussian")]:
        assert from_json(json.dumps(saved)).family == family


def test_family_methods_are_the_runs_and_others_say_whose_they_are():
    import scoresde
    from scoresde.models import MLP
    run = scoresde.Run(default_config(), MLP(dim=2, hidden=8, layers=1, emb_dim=8), shape=(2,), is_image=False,
                       device="cpu")
    with pytest.raises(AttributeError, match="super_resolve.*is a method of sr3 runs, and this is a gaussian run"):
        run.super_resolve
    with pytest.raises(AttributeError, match="'Run' object has no attribute 'nope'$"):
        run.nope
