"""Training runs: CLI end to end, exact resume, atomic checkpoints, bad configs, DDP on CPU, model size."""
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

from scoresde import builders
from scoresde.config import apply_overrides, load_config, validate
from scoresde.training import Trainer
from scoresde.training import checkpoint as ckpt_module

ROOT = Path(__file__).resolve().parents[1]
TINY = ["--config.training.n_iters=30", "--config.training.batch_size=64", "--config.training.log_every=10",
        "--config.training.eval_every=15", "--config.training.sample_every=30", "--config.training.save_every=10",
        "--config.training.snapshot_every=20", "--config.sampling.steps=20", "--config.sampling.n=200",
        "--config.data.n_eval=200", "--config.eval.n_bpd=50", "--config.model.hidden=32"]


def tiny_config(**training):
    config = apply_overrides(load_config(str(ROOT / "configs/vp/toy.py")), TINY)
    config.training.update(**{"device": "cpu", **training})
    return config


def run_cli(*args, timeout=300):
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    return subprocess.run([sys.executable, "-m", "scoresde", *args], cwd=ROOT, capture_output=True, text=True,
                          timeout=timeout, env=env)


def test_cli_train_sample_eval_end_to_end(tmp_path):
    work = tmp_path / "run"
    out = run_cli("train", "--config", "configs/vp/toy.py", "--workdir", str(work), "--no-progress", *TINY)
    assert out.returncode == 0, out.stderr
    assert f"results in {work}" in out.stdout
    for name in ("config.json", "log.jsonl", "checkpoints/latest.pt", "checkpoints/ckpt_20.pt", "samples/step_30.png"):
        assert (work / name).exists(), name
    out = run_cli("sample", "--workdir", str(work), "--sampler", "ode:heun", "--steps", "10", "--n", "300")
    assert out.returncode == 0, out.stderr
    data = __import__("numpy").load(work / "samples" / "ode-heun_10.npz")
    assert data["samples"].shape == (300, 2) and int(data["nfe"]) == 19
    assert "wrote" in out.stdout and (work / "samples" / "ode-heun_10.png").exists()
    out = run_cli("eval", "--workdir", str(work), "--n", "20")
    assert out.returncode == 0, out.stderr
    assert "bits/dim" in out.stdout and (work / "eval.json").exists()


def _state(trainer):
    return {"model": trainer.model.state_dict(), "ema": trainer.ema.state_dict(), "opt": trainer.optimizer.state_dict()}


def _assert_equal_states(a, b):
    for key in ("model", "ema"):
        for name in a[key]:
            assert torch.equal(a[key][name], b[key][name]), (key, name)
    for pid, state in a["opt"]["state"].items():
        for k, v in state.items():
            assert torch.equal(v, b["opt"]["state"][pid][k]), ("optimizer", pid, k)


def test_resume_is_bit_exact_on_cpu(tmp_path):
    """20 steps + resume for 20 more ends with exactly the weights, EMA and Adam state of 40 straight steps."""
    straight = Trainer(tiny_config(n_iters=40), tmp_path / "a", progress_bar=False)
    straight.train()
    Trainer(tiny_config(n_iters=20), tmp_path / "b", progress_bar=False).train()
    resumed = Trainer(tiny_config(n_iters=40), tmp_path / "b", progress_bar=False)
    assert resumed.step == 20
    resumed.train()
    _assert_equal_states(_state(straight), _state(resumed))


def test_failed_save_keeps_previous_checkpoint(tmp_path, monkeypatch):
    """A crash in the middle of writing leaves the previous latest.pt intact, and the run resumes from it."""
    trainer = Trainer(tiny_config(n_iters=10), tmp_path, progress_bar=False)
    trainer.train()
    before = (tmp_path / "checkpoints" / "latest.pt").read_bytes()
    real_save = torch.save

    def crashing_save(obj, f):
        real_save(obj, f)
        f.truncate(100)  # half-written file ...
        raise KeyboardInterrupt  # ... and the process is stopped

    monkeypatch.setattr(ckpt_module.torch, "save", crashing_save)
    with pytest.raises(KeyboardInterrupt):
        Trainer(tiny_config(n_iters=20), tmp_path, progress_bar=False).train()
    monkeypatch.setattr(ckpt_module.torch, "save", real_save)
    assert (tmp_path / "checkpoints" / "latest.pt").read_bytes() == before
    assert not list((tmp_path / "checkpoints").glob("*.tmp"))
    resumed = Trainer(tiny_config(n_iters=20), tmp_path, progress_bar=False)
    assert resumed.step == 10
    resumed.train()
    assert resumed.step == 20


def test_sigkill_during_training_then_resume(tmp_path):
    """kill -9 a run that saves every step; latest.pt always loads and the run finishes on resume."""
    args = ["train", "--config", "configs/vp/toy.py", "--workdir", str(tmp_path), "--no-progress", *TINY,
            "--config.training.n_iters=100000", "--config.training.save_every=1", "--config.training.sample_every=100000",
            "--config.training.eval_every=100000"]
    proc = subprocess.Popen([sys.executable, "-m", "scoresde", *args], cwd=ROOT, stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL)
    latest = tmp_path / "checkpoints" / "latest.pt"
    deadline = time.time() + 120
    while not latest.exists() and time.time() < deadline:
        time.sleep(0.2)
    time.sleep(1.0)  # let it write a few dozen more checkpoints
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    step = ckpt_module.load(latest, "cpu")["step"]
    assert step >= 1
    config = tiny_config(n_iters=step + 5, save_every=1, sample_every=100000, eval_every=100000)
    resumed = Trainer(config, tmp_path, progress_bar=False)
    assert resumed.step == step
    resumed.train()
    assert resumed.step == step + 5


@pytest.mark.parametrize("overrides, match", [
    (["--config.training.n_iter=5"], r"unknown config key 'training.n_iter'"),
    (["--config.sde.type=vq"], r"config.sde.type must be one of \['vp', 'subvp', 've'\], got 'vq'"),
    (["--config.training.batch_size=abc"], r"config.training.batch_size must be a int, got 'abc'"),
    (["--config.training.batch_size=0"], r"config.training.batch_size must be > 0"),
    (["--config.model.name=ncsnpp"], "NCSN\\+\\+ architecture is not implemented"),
    (["--config.loss.continuous=False", "--config.sde.type=ve"], "needs config.sde.type='vp'"),
    (["training.n_iters=5"], "overrides look like --config.training.n_iters=2000"),
    (["--config.model.num_classes=10"], "class-conditional training is not wired"),
])
def test_bad_configs_fail_at_start(overrides, match):
    with pytest.raises(ValueError, match=match):
        validate(apply_overrides(load_config(str(ROOT / "configs/vp/toy.py")), overrides))


def test_misspelt_key_in_config_file_fails(tmp_path):
    path = tmp_path / "typo.py"
    path.write_text("from scoresde.config import default_config\n\ndef get_config():\n"
                    "    c = default_config()\n    c.training.n_iter = 5\n    return c\n")
    with pytest.raises(ValueError, match=r"unknown config key\(s\) \['training.n_iter'\]"):
        validate(load_config(str(path)))


def test_cli_reports_bad_config_and_missing_data(tmp_path):
    out = run_cli("train", "--config", "configs/vp/toy.py", "--workdir", str(tmp_path), "--config.sde.typ=ve")
    assert out.returncode == 2 and "unknown config key 'sde.typ'" in out.stderr
    out = run_cli("train", "--config", "configs/vp/mnist.py", "--workdir", str(tmp_path / "m"),
                  f"--config.data.root={tmp_path / 'nowhere'}")
    assert out.returncode == 2 and "MNIST not found" in out.stderr and "downloads nothing" in out.stderr
    out = run_cli("train", "--config", "configs/ve/ncsnpp_cifar10_continuous.py", "--workdir", str(tmp_path / "n"))
    assert out.returncode == 2 and "not implemented" in out.stderr


def test_resuming_with_a_different_config_is_refused(tmp_path):
    Trainer(tiny_config(n_iters=5), tmp_path, progress_bar=False).train()
    other = tiny_config(n_iters=10)
    other.sde.beta_max = 10.0
    with pytest.raises(ValueError, match=r"different config \(sde.beta_max: 20.0 -> 10.0\)"):
        Trainer(other, tmp_path, progress_bar=False)
    moved = tiny_config(n_iters=10, device="auto", log_every=5)  # another device and interval are fine
    assert Trainer(moved, tmp_path, progress_bar=False).step == 5


def test_ddp_gloo_two_processes(tmp_path):
    """torchrun --nproc_per_node=2 on CPU: gloo, rank 0 writes, the run completes."""
    cmd = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node=2", "--master_port=29533", "-m", "scoresde",
           "train", "--config", "configs/vp/toy.py", "--workdir", str(tmp_path), "--no-progress", *TINY,
           "--config.training.device=cpu"]
    out = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr[-3000:]
    state = ckpt_module.load(tmp_path / "checkpoints" / "latest.pt", "cpu")
    assert state["step"] == 30
    assert out.stdout.count("results in") == 1  # only rank 0 reports
    lines = (tmp_path / "log.jsonl").read_text().splitlines()
    assert len([line for line in lines if '"loss"' in line]) == 3  # rank 0 logs once per log_every


def test_ddpm_cifar10_model_has_published_size():
    config = load_config(str(ROOT / "configs/vp/ddpm_cifar10.py"))
    model = builders.build_model(config.model, (3, 32, 32))
    assert sum(p.numel() for p in model.parameters()) == 35_746_307  # Ho et al. 2020: 35.7M


def test_every_config_file_loads_and_validates():
    for path in sorted((ROOT / "configs").rglob("*.py")):
        config = load_config(str(path))
        if config.model.name == "ncsnpp":
            with pytest.raises(ValueError, match="not implemented"):
                validate(config)
        else:
            validate(config)


def test_digits_config_trains_a_few_steps(tmp_path):
    pytest.importorskip("sklearn")
    config = load_config(str(ROOT / "configs/vp/digits.py"))
    config.training.update(n_iters=3, batch_size=16, device="cpu", sample_every=3, eval_every=3, log_every=1)
    config.sampling.update(steps=3, n=4)
    config.data.n_eval = 16
    Trainer(config, tmp_path, progress_bar=False).train()
    assert (tmp_path / "samples" / "step_3.png").exists()
