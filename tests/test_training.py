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
from scoresde import checkpoint as ckpt_module

pytestmark = pytest.mark.slow  # trains runs and starts the CLI: left out of the quick loop (-m "not slow")

ROOT = Path(__file__).resolve().parents[1]
TINY = ["--config.training.n_iters=30", "--config.training.batch_size=64", "--config.training.log_every=10",
        "--config.training.eval_every=15", "--config.training.sample_every=30", "--config.training.save_every=10",
        "--config.training.snapshot_every=20", "--config.sampling.steps=20", "--config.sampling.n=200",
        "--config.data.n_eval=200", "--config.eval.n_bpd=50", "--config.model.hidden=32"]


def tiny_config(**training):
    config = apply_overrides(load_config(str(ROOT / "configs/vp/toy.py")), TINY)
    config.training.update(**{"device": "cpu", **training})
    return config


def run_cli(*args, timeout=900):  # generous: the suite must pass on a loaded machine
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


def test_ctrl_c_in_the_middle_of_a_save_waits_for_the_file(tmp_path, monkeypatch):
    """SIGINT arriving while torch.save writes: the new file is completed and only then KeyboardInterrupt is raised
    (uninterrupted, torch's zip writer fails on exit with a RuntimeError that hides the interrupt)."""
    if signal.getsignal(signal.SIGINT) is not signal.default_int_handler:
        pytest.skip("SIGINT is not Python's KeyboardInterrupt in this process")
    real_save = torch.save
    path = tmp_path / "latest.pt"
    ckpt_module.atomic_save({"step": 1}, path)

    def interrupted_save(obj, f):
        os.kill(os.getpid(), signal.SIGINT)  # delivered now, in the middle of the write
        time.sleep(0.01)
        real_save(obj, f)

    monkeypatch.setattr(ckpt_module.torch, "save", interrupted_save)
    with pytest.raises(KeyboardInterrupt):
        ckpt_module.atomic_save({"step": 2}, path)
    assert torch.load(path, weights_only=True)["step"] == 2 and not list(tmp_path.glob("*.tmp"))
    assert signal.getsignal(signal.SIGINT) is signal.default_int_handler  # the handler is restored


def _wait_for_step(latest, at_least, proc, deadline_s=600):
    """Poll latest.pt (always complete: it is replaced atomically) until it holds a step >= at_least."""
    deadline = time.monotonic() + deadline_s  # generous: a loaded machine may be slow, the test waits on progress
    while time.monotonic() < deadline and proc.poll() is None:
        if latest.exists() and ckpt_module.load(latest, "cpu")["step"] >= at_least:
            return
        time.sleep(0.2)
    raise AssertionError(f"training did not reach step {at_least} (exit code {proc.poll()})")


def test_sigkill_during_training_then_resume(tmp_path):
    """kill -9 a run that saves every step; the newest checkpoint loads, stale files go, and the run resumes."""
    args = ["train", "--config", "configs/vp/toy.py", "--workdir", str(tmp_path), "--no-progress", *TINY,
            "--config.training.n_iters=100000", "--config.training.save_every=1", "--config.training.sample_every=100000",
            "--config.training.eval_every=100000"]
    proc = subprocess.Popen([sys.executable, "-m", "scoresde", *args], cwd=ROOT, stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL)
    latest = tmp_path / "checkpoints" / "latest.pt"
    try:
        _wait_for_step(latest, 20, proc)
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait()
    step = ckpt_module.load(latest, "cpu")["step"]
    assert step >= 20
    config = tiny_config(n_iters=step + 5, save_every=1, sample_every=100000, eval_every=100000)
    resumed = Trainer(config, tmp_path, progress_bar=False)
    assert resumed.step == step
    resumed.train()
    assert resumed.step == step + 5
    assert not list(tmp_path.rglob("*.tmp"))


def test_ctrl_c_saves_and_prints_how_to_resume_without_a_traceback(tmp_path):
    args = ["train", "--config", "configs/vp/toy.py", "--workdir", str(tmp_path), "--no-progress", *TINY,
            "--config.training.n_iters=100000", "--config.training.save_every=1000", "--config.training.sample_every=100000",
            "--config.training.eval_every=100000", "--config.training.snapshot_every=5"]
    # A shell's background job inherits SIGINT as ignored, and Python then installs no KeyboardInterrupt
    # handler: restore the default in the child so Ctrl-C behaves as in a terminal wherever the suite runs.
    proc = subprocess.Popen([sys.executable, "-m", "scoresde", *args], cwd=ROOT, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True,
                            preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
    try:
        _wait_for_step(tmp_path / "checkpoints" / "latest.pt", 5, proc)
        proc.send_signal(signal.SIGINT)
        stdout, stderr = proc.communicate(timeout=600)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert proc.returncode == 130, stderr
    assert "Traceback" not in stderr and "run the same command to resume" in stderr
    step = int(stderr.split("interrupted at step ")[1].split(";")[0])
    assert ckpt_module.load(tmp_path / "checkpoints" / "latest.pt", "cpu")["step"] == step
    out = run_cli(*args[:-5], "--config.training.n_iters=" + str(step + 3))
    assert out.returncode == 0, out.stderr
    assert f"resuming from step {step}" in out.stdout and f"trained 3 steps ({step} -> {step + 3})" in out.stdout


@pytest.mark.parametrize("overrides, match", [
    (["--config.training.n_iter=5"], r"unknown config key 'training.n_iter'"),
    (["--config.sde.type=vq"], r"config.sde.type must be one of \['vp', 'subvp', 've', 'edm'\], got 'vq'"),
    (["--config.training.batch_size=abc"], r"config.training.batch_size must be a int, got 'abc'"),
    (["--config.training.batch_size=0"], r"config.training.batch_size must be > 0"),
    (["--config.model.name=ncsnpp", "--config.model.ncsnpp.scale_by_sigma=True"],
     "scale_by_sigma=True divides the output by σ"),
    (["--config.loss.continuous=False", "--config.sde.type=ve"], "needs config.sde.type='vp'"),
    (["training.n_iters=5"], "overrides look like --config.training.n_iters=2000"),
    (["--config.family=classifier"], r"config.family='classifier' needs config.model.num_classes > 0"),
    (["--config.family=sr4"], r"config.family must be one of \['gaussian', 'classifier', 'sr3', 'd3pm'\], got 'sr4' \(did you mean 'sr3'\?\)"),
    (["--config.loss.p_uncond=1.5"], r"config.loss.p_uncond must be in \[0, 1\], got 1.5"),
    (["--config.loss.continuous=False", "--config.loss.objective=vlb", "--config.model.num_classes=8"],
     r"the variational objectives do not take class labels yet"),
    (["--config.model.layers=0"], r"config.model.layers must be > 0, got 0"),
    (["--config.model.hidden=0"], r"config.model.hidden must be > 0, got 0"),
    (["--config.optim.warmup=-5"], r"config.optim.warmup must be >= 0, got -5"),
    (["--config.optim.schedule=step"], r"config.optim.schedule must be one of \['constant', 'cosine'\], got 'step'"),
    (["--config.training.ema_rate=1.0"], r"config.training.ema_rate must be in \[0, 1\), got 1.0"),
    (["--config.sde.beta_max=0.05"], r"config.sde.beta_max must be > config.sde.beta_min = 0.1, got 0.05"),
    (["--config.sde.beta_max=float('inf')"], r"config.sde.beta_max must be a float"),
    (["--config.model.ch_mult=(1,0)"], r"config.model.ch_mult must be a non-empty tuple of positive integers"),
    (["--config.loss.eps=0.0"], r"config.loss.eps must be in \(0, 1\), got 0.0"),
    (["--config.sampling.name=nope"], r"config.sampling: sampler name must be one of \[.*'pc'.*\], got 'nope'"),
    (["--config.sampling.name=ode:nope"], r"config.sampling: method must be one of"),
])
def test_bad_configs_fail_at_start(overrides, match):
    with pytest.raises(ValueError, match=match):
        validate(apply_overrides(load_config(str(ROOT / "configs/vp/toy.py")), overrides))


@pytest.mark.parametrize("dataset, classes, match", [
    ("checkerboard", 10, r"config.model.num_classes=10, but config.data.dataset='checkerboard' has 8 classes; "
                         r"set config.model.num_classes=8"),
    ("swiss_roll", 3, r"config.model.num_classes=3 needs labelled data, but config.data.dataset='swiss_roll' has no labels"),
])
def test_conditional_configs_need_matching_labels_before_training(tmp_path, dataset, classes, match):
    config = load_config(str(ROOT / "configs/vp/toy.py"))
    config.data.dataset, config.model.num_classes = dataset, classes
    with pytest.raises(ValueError, match=match):
        Trainer(config, str(tmp_path / "run"), progress_bar=False)
    assert not (tmp_path / "run" / "checkpoints").exists()


def test_wrong_types_in_a_config_file_fail_at_start(tmp_path):
    """ml_collections refuses the assignment inside get_config(); the error names the file, line and field."""
    (tmp_path / "typed.py").write_text("from scoresde.config import default_config\n\ndef get_config():\n"
                                       "    c = default_config()\n    c.optim.lr = '0.001'\n    return c\n")
    with pytest.raises(ValueError, match=r"typed.py:5: TypeError: Could not override field 'lr'"):
        load_config(str(tmp_path / "typed.py"))
    config = load_config(str(ROOT / "configs/vp/toy.py"))
    config.training.ema_rate = float("nan")  # a type ml_collections accepts, a value validate() must refuse
    with pytest.raises(ValueError, match=r"config.training.ema_rate must be a finite number, got nan"):
        validate(config)


@pytest.mark.parametrize("body, match", [
    ("def get_config(:\n    pass\n", r"bad.py:1: syntax error in config file"),
    ("def get_config():\n    return None\n", r"get_config\(\) must return an ml_collections.ConfigDict.*got NoneType"),
    ("x = 1\n", r"must define get_config\(\)"),
    ("def get_config():\n    c = {}\n    return c['missing']\n", r"bad.py:3: KeyError: 'missing'"),
])
def test_config_file_errors_name_the_file_and_line(tmp_path, body, match):
    (tmp_path / "bad.py").write_text(body)
    with pytest.raises(ValueError, match=match):
        load_config(str(tmp_path / "bad.py"))
    out = run_cli("train", "--config", str(tmp_path / "bad.py"), "--workdir", str(tmp_path / "w"))
    assert out.returncode == 2 and "Traceback" not in out.stderr and len(out.stderr.strip().splitlines()) == 1


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
    out = run_cli("train", "--config", "configs/ve/ncsnpp_cifar10_continuous.py", "--workdir", str(tmp_path / "n"),
                  f"--config.data.root={tmp_path / 'nowhere'}")
    assert out.returncode == 2 and "CIFAR-10 not found" in out.stderr


def test_resuming_with_a_different_config_is_refused(tmp_path):
    Trainer(tiny_config(n_iters=5), tmp_path, progress_bar=False).train()
    other = tiny_config(n_iters=10)
    other.sde.beta_max = 10.0
    with pytest.raises(ValueError, match=r"different config \(sde.beta_max: 20.0 -> 10.0\)"):
        Trainer(other, tmp_path, progress_bar=False)
    moved = tiny_config(n_iters=10, device="auto", log_every=5)  # another device and interval are fine
    assert Trainer(moved, tmp_path, progress_bar=False).step == 5


def test_extending_a_cosine_run_says_that_the_learning_rate_jumps(tmp_path, capsys):
    config = tiny_config(n_iters=5)
    config.optim.schedule = "cosine"
    Trainer(config, tmp_path, progress_bar=False).train()
    capsys.readouterr()
    longer = tiny_config(n_iters=10)
    longer.optim.schedule = "cosine"
    assert Trainer(longer, tmp_path, progress_bar=False).step == 5
    assert "n_iters, which changed from 5 to 10: the learning rate jumps on resume" in capsys.readouterr().out


def test_ddp_ranks_stay_identical(tmp_path):
    """torchrun --nproc_per_node=2 on CPU (gloo, a free port): after 10 steps both ranks hold exactly the same
    weights (DDP averages the gradients of their different half-batches), and rank 0 alone writes."""
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2",
           str(ROOT / "tests" / "_ddp_worker.py"), str(tmp_path)]
    out = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=600)
    assert out.returncode == 0, out.stderr[-3000:]
    rank0, rank1 = (torch.load(tmp_path / f"rank{r}.pt", weights_only=True) for r in (0, 1))
    assert all(torch.equal(rank0[k], rank1[k]) for k in rank0)
    initial = Trainer(tiny_config(n_iters=10), tmp_path / "single", progress_bar=False).model.state_dict()
    assert not torch.equal(rank0["net.0.weight"], initial["net.0.weight"])  # the ranks did train
    assert ckpt_module.load(tmp_path / "checkpoints" / "latest.pt", "cpu")["step"] == 10
    lines = (tmp_path / "log.jsonl").read_text().splitlines()
    assert len([line for line in lines if '"loss"' in line]) == 2  # rank 0 logs once per log_every


def test_ddpm_cifar10_model_has_published_size():
    config = load_config(str(ROOT / "configs/vp/ddpm_cifar10.py"))
    model = builders.build_model(config.model, (3, 32, 32))
    assert sum(p.numel() for p in model.parameters()) == 35_746_307  # Ho et al. 2020: 35.7M


def test_every_config_file_loads_and_validates():
    for path in sorted((ROOT / "configs").rglob("*.py")):
        validate(load_config(str(path)))


def test_digits_config_trains_a_few_steps(tmp_path):
    pytest.importorskip("sklearn")
    config = load_config(str(ROOT / "configs/vp/digits.py"))
    config.training.update(n_iters=3, batch_size=16, device="cpu", sample_every=3, eval_every=3, log_every=1)
    config.sampling.update(steps=3, n=4)
    config.data.n_eval = 16
    Trainer(config, tmp_path, progress_bar=False).train()
    assert (tmp_path / "samples" / "step_3.png").exists()
