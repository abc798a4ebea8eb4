"""Training features for big models: gradient accumulation (exact in float64, and across 2 DDP ranks), activation
checkpointing (the same gradients), mixed-precision settings, channels-last, compile, skipped non-finite steps,
never-saved non-finite weights, and SIGTERM at random times resumed bit-exactly."""
import copy
import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

sys.path.insert(0, os.path.dirname(__file__))
from test_training import TINY, _assert_equal_states, _state, tiny_config  # noqa: E402

from scoresde import checkpoint as ckpt_module  # noqa: E402
from scoresde.config import apply_overrides, from_json, load_config, to_json, validate  # noqa: E402
from scoresde.models import MLP, UNet, activation_checkpointing  # noqa: E402
from scoresde.models.edm import DhariwalUNet, SongUNet  # noqa: E402
from scoresde.models.ncsnpp import NCSNpp  # noqa: E402
from scoresde.training import NonFiniteTraining, Trainer  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
EPS64 = torch.finfo(torch.float64).eps


# --- gradient accumulation -----------------------------------------------------------------------------------

def deterministic_loss(model, x0, generator, y=None):
    """A denoising loss whose t and noise are functions of x0 alone, in float64: the gradient of a batch is then
    a fixed function of its samples, whatever the micro-batches."""
    x0 = x0.double()
    t = 0.1 + 0.8 * torch.sigmoid(x0.sum(1))
    z = torch.sin(100 * x0)
    xt = (1 - t)[:, None] * x0 + t[:, None] * z
    return ((model(xt, t) - z) ** 2).mean()


def gradient_after_one_step(tmp_path, **training):
    config = tiny_config(n_iters=1, **training)
    config.optim.grad_clip = 0.0  # clipping would rescale, and hide a wrong scale
    trainer = Trainer(config, tmp_path, progress_bar=False)
    trainer.model.double()
    trainer.loss_fn = deterministic_loss
    trainer.optimizer.step = lambda: None  # keep the gradient as it is, and the weights
    trainer.ema.update = lambda model: None
    loss, _ = trainer.train_step()
    grads = [p.grad.clone() for p in trainer.model.parameters()]
    trainer.close()
    return loss, grads


def test_accumulated_gradient_equals_the_full_batch_gradient_in_float64(tmp_path):
    """64 samples at once against 4 micro-batches of 16: the mean over the batch is the mean of the micro-batch
    means, so the gradients agree to float64 round-off (a few hundred ulps of the gradient's scale)."""
    loss_full, full = gradient_after_one_step(tmp_path / "full")
    loss_acc, accumulated = gradient_after_one_step(tmp_path / "acc", batch_per_device=16)
    scale = max(float(g.abs().max()) for g in full)
    assert scale > 0
    for a, b in zip(full, accumulated):
        assert float((a - b).abs().max()) <= 300 * EPS64 * scale
    assert abs(loss_full - loss_acc) <= 300 * EPS64 * abs(loss_full)


def test_accumulation_must_divide_the_batch(tmp_path):
    with pytest.raises(ValueError, match="batch_per_device=24 must divide the batch .* = 64"):
        Trainer(tiny_config(batch_per_device=24), tmp_path, progress_bar=False)


@pytest.mark.slow
def test_two_ddp_ranks_with_accumulation_stay_identical_and_match_one_process(tmp_path):
    """2 gloo ranks × 2 micro-batches of 16 against 1 process × 4 micro-batches of 16: the same samples and noise
    (one noise stream per global micro-batch). The ranks hold bit-identical weights; the one-process run differs
    only by the order of the sums (float32 round-off, ~1e-7 relative per step, through 5 Adam steps of size ≤ lr)."""
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2",
           str(ROOT / "tests" / "_ddp_accum_worker.py"), str(tmp_path / "ddp")]
    out = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=600,
                         env={**os.environ, "OMP_NUM_THREADS": "1"})
    assert out.returncode == 0, out.stderr[-3000:]
    rank0, rank1 = (torch.load(tmp_path / "ddp" / f"rank{r}.pt", weights_only=True) for r in (0, 1))
    assert int(rank0.pop("no_sync_calls")) == int(rank1.pop("no_sync_calls")) == 5  # 1 of the 2 micro-batches, 5 steps
    assert all(torch.equal(rank0[k], rank1[k]) for k in rank0)
    single = Trainer(tiny_config(n_iters=5, batch_per_device=16, log_every=5, eval_every=100, sample_every=100),
                     tmp_path / "one", progress_bar=False)
    initial = copy.deepcopy(single.model.state_dict())
    single.train()
    tolerance = 5 * single.config.optim.lr * 1e-3  # 5 steps, each of at most lr, agreeing to 0.1%
    moved = 0.0
    for k, v in single.model.state_dict().items():
        assert float((v - rank0[k]).abs().max()) <= tolerance, k
        moved = max(moved, float((v - initial[k]).abs().max()))
    assert moved > 10 * tolerance  # the weights did move, by far more than the tolerance


# --- activation checkpointing -----------------------------------------------------------------------------------

NETWORKS = {
    "unet": lambda: (UNet(in_channels=1, resolution=8, ch=8, ch_mult=(1, 2), num_res_blocks=1, attn_resolutions=(4,),
                          dropout=0.2), (torch.rand(3),)),
    "ncsnpp": lambda: (NCSNpp(in_channels=1, resolution=8, nf=8, ch_mult=(1, 2), num_res_blocks=1,
                              attn_resolutions=(4,), dropout=0.2, init_scale=0.1), (torch.rand(3) + 0.1,)),
    "song_unet": lambda: (SongUNet(img_resolution=8, in_channels=1, out_channels=1, model_channels=16,
                                   channel_mult=[1, 2], num_blocks=1, attn_resolutions=[4], dropout=0.2),
                          (torch.rand(3),)),
    "dhariwal_unet": lambda: (DhariwalUNet(img_resolution=8, in_channels=1, out_channels=1, model_channels=32,
                                           channel_mult=[1, 2], num_blocks=1, attn_resolutions=[4], dropout=0.2),
                              (torch.rand(3),)),
}


@pytest.mark.parametrize("name", sorted(NETWORKS))
def test_activation_checkpointing_gives_the_same_gradients(name):
    """With dropout on: the recomputation replays the RNG, so the masks and the gradients are the same."""
    torch.manual_seed(0)
    net, cond = NETWORKS[name]()
    for p in net.parameters():  # zero-initialised output layers would make many gradients zero
        p.data.add_(0.05 * torch.randn_like(p))
    twin = copy.deepcopy(net)
    assert activation_checkpointing.enable(twin) > 0
    x = torch.randn(3, 1, 8, 8)
    grads = []
    for model in (net, twin):
        model.train()
        torch.manual_seed(1)
        model(x, *cond).square().mean().backward()
        grads.append([p.grad for p in model.parameters()])
    scale = max(float(g.abs().max()) for g in grads[0] if g is not None)
    for a, b in zip(*grads):
        assert (a is None) == (b is None)
        if a is not None:
            assert float((a - b).abs().max()) <= 100 * torch.finfo(torch.float32).eps * scale


def test_activation_checkpointing_is_refused_by_a_network_without_blocks(tmp_path):
    with pytest.raises(ValueError, match="MLP declares no blocks to recompute; networks that do: UNet"):
        activation_checkpointing.enable(MLP(2))
    with pytest.raises(ValueError, match="checkpoint_activations=True"):
        Trainer(tiny_config(checkpoint_activations=True), tmp_path, progress_bar=False)


# --- settings ---------------------------------------------------------------------------------------------------

def test_mixed_precision_old_booleans_and_choices(tmp_path, capsys):
    config = tiny_config()
    saved = to_json(config).replace('"mixed_precision": "none"', '"mixed_precision": true')
    assert '"mixed_precision": true' in saved
    assert from_json(saved).training.mixed_precision == "bf16"  # a run saved by an older version
    assert apply_overrides(tiny_config(), ["--config.training.mixed_precision=True"]).training.mixed_precision == "bf16"
    assert apply_overrides(tiny_config(), ["--config.training.mixed_precision=False"]).training.mixed_precision == "none"
    bad = apply_overrides(tiny_config(), ["--config.training.mixed_precision=fp8"])
    with pytest.raises(ValueError, match=r"mixed_precision must be one of \['none', 'bf16', 'fp16'\], got 'fp8'"):
        validate(bad)
    trainer = Trainer(tiny_config(n_iters=2, mixed_precision="fp16"), tmp_path, progress_bar=False)
    assert "applies on CUDA; this run trains in float32 on cpu" in capsys.readouterr().out
    trainer.train()
    assert all(p.dtype == torch.float32 for p in trainer.model.parameters())


def test_fp16_loss_scaling_skips_overflows_without_stopping(tmp_path, capsys):
    """The fp16 path, run on the CPU with the scaler forced on: at a loss scale of 2^30 the scaled fp16 gradients
    overflow, so steps are skipped and the scale halves until it fits (~2^15); those skips are counted and logged
    but do not count towards max_nonfinite, then training proceeds in float32 master weights."""
    trainer = Trainer(tiny_config(n_iters=30, max_nonfinite=3, eval_every=100, sample_every=100), tmp_path,
                      progress_bar=False)
    trainer.precision, trainer.scaler = "fp16", torch.amp.GradScaler("cpu", init_scale=2.0**30)
    initial = copy.deepcopy(trainer.model.state_dict())
    trainer.train()
    assert 10 <= trainer.nonfinite < 30 and trainer.scaler.get_scale() < 2.0**20
    assert "not finite" not in capsys.readouterr().out  # calibration is logged, not printed
    assert all(p.dtype == torch.float32 for p in trainer.model.parameters())
    assert not torch.equal(initial["net.0.weight"], trainer.model.state_dict()["net.0.weight"])
    state = ckpt_module.load(tmp_path / "checkpoints" / "latest.pt", "cpu")
    assert state["grad_scaler"]["scale"] == trainer.scaler.get_scale() and state["nonfinite"] == trainer.nonfinite


def test_channels_last_is_for_images(tmp_path):
    with pytest.raises(ValueError, match="channels_last=True is a memory format for image batches"):
        Trainer(tiny_config(channels_last=True), tmp_path, progress_bar=False)


def test_channels_last_and_checkpointing_train_an_image_run(tmp_path):
    pytest.importorskip("sklearn")
    config = load_config(str(ROOT / "configs/vp/digits.py"))
    config.model.update(ch=8, attn_resolutions=(4,))
    config.training.update(device="cpu", batch_size=8, n_iters=2, sample_every=100, eval_every=100, log_every=1,
                           channels_last=True, checkpoint_activations=True, batch_per_device=4)
    config.data.n_eval = 16
    trainer = Trainer(config, tmp_path, progress_bar=False)
    trainer.train()
    state = ckpt_module.load(tmp_path / "checkpoints" / "latest.pt", "cpu")
    assert state["step"] == 2 and set(state["model"]) == set(UNet(1, 8, 8, (1, 2), 1, (4,)).state_dict())


@pytest.mark.slow
def test_compiled_training_saves_plain_weights(tmp_path):
    trainer = Trainer(tiny_config(n_iters=3, compile=True, log_every=1, eval_every=100, sample_every=100), tmp_path,
                      progress_bar=False)
    trainer.train()
    state = ckpt_module.load(tmp_path / "checkpoints" / "latest.pt", "cpu")
    assert state["step"] == 3 and not any(k.startswith("_orig_mod") for k in state["model"])
    plain = Trainer(tiny_config(n_iters=3), tmp_path / "plain", progress_bar=False)
    plain.train()
    for k, v in plain.model.state_dict().items():  # the same steps: inductor's kernels differ at round-off only
        assert float((v - state["model"][k]).abs().max()) <= 3 * plain.config.optim.lr * 1e-3


# --- non-finite gradients -------------------------------------------------------------------------------------

def nan_batches(trainer, steps):
    """Batches at these steps are 3e38 everywhere: finite data (NaN data is refused by the loss's own check), whose
    activations overflow, so that the loss and the gradient are not finite."""
    real = trainer.data.train_batch

    def batch(step, batch_size, seed):
        x, y = real(step, batch_size, seed)
        return (torch.full_like(x, 3e38) if step in steps else x), y
    trainer.data.train_batch = batch


def test_a_nan_batch_is_skipped_counted_and_logged(tmp_path, capsys):
    trainer = Trainer(tiny_config(n_iters=6, log_every=100, eval_every=100, sample_every=100), tmp_path,
                      progress_bar=False)
    nan_batches(trainer, {3})
    states = {}
    real_step = trainer.train_step

    def step():
        states[trainer.step] = copy.deepcopy(_state(trainer))
        return real_step()
    trainer.train_step = step
    trainer.train()
    assert trainer.nonfinite == 1 and trainer.step == 6
    _assert_equal_states(states[3], states[4])  # step 3 changed nothing: weights, EMA, Adam
    assert not torch.equal(states[4]["model"]["net.0.weight"], trainer.model.state_dict()["net.0.weight"])
    assert '"nonfinite": 1' in (tmp_path / "log.jsonl").read_text()
    assert "step 4: the gradient is not finite" in capsys.readouterr().out
    assert ckpt_module.load(tmp_path / "checkpoints" / "latest.pt", "cpu")["nonfinite"] == 1


def test_nan_batches_in_a_row_stop_the_run_with_finite_weights_saved(tmp_path):
    trainer = Trainer(tiny_config(n_iters=50, max_nonfinite=3), tmp_path, progress_bar=False)
    nan_batches(trainer, set(range(5, 50)))
    with pytest.raises(NonFiniteTraining, match="3 steps in a row .training.max_nonfinite=3.* the last at step 8"):
        trainer.train()
    state = ckpt_module.load(tmp_path / "checkpoints" / "latest.pt", "cpu")
    assert state["step"] == 8 and all(bool(torch.isfinite(v).all()) for v in state["model"].values())


def test_non_finite_weights_are_never_saved(tmp_path):
    trainer = Trainer(tiny_config(n_iters=2), tmp_path, progress_bar=False)
    trainer.train()
    before = (tmp_path / "checkpoints" / "latest.pt").read_bytes()
    with torch.no_grad():
        next(trainer.model.parameters()).view(-1)[0] = float("nan")
    with pytest.raises(NonFiniteTraining, match="refusing to save step 2: the model weights net.0.weight"):
        trainer.save()
    assert (tmp_path / "checkpoints" / "latest.pt").read_bytes() == before


def test_cli_stops_in_one_line_on_non_finite_training(tmp_path):
    args = ["train", "--config", "configs/vp/toy.py", "--workdir", str(tmp_path), "--no-progress", *TINY,
            "--config.optim.lr=1e30", "--config.optim.grad_clip=0", "--config.optim.warmup=0",
            "--config.training.max_nonfinite=2"]
    out = subprocess.run([sys.executable, "-m", "scoresde", *args], cwd=ROOT, capture_output=True, text=True,
                         timeout=600)
    assert out.returncode == 1, out.stderr[-2000:]
    assert out.stderr.startswith("scoresde train: error: 2 steps in a row") and "Traceback" not in out.stderr


# --- preemption -------------------------------------------------------------------------------------------------

@pytest.mark.slow
def test_sigterm_at_random_times_then_resume_is_bit_exact(tmp_path):
    """SIGTERM three times, each at a random moment once training has progressed; every time the run exits 143
    after saving, the same command resumes, and the end state equals an uninterrupted run's bit for bit."""
    n = 600
    args = ["train", "--config", "configs/vp/toy.py", "--workdir", str(tmp_path / "run"), "--no-progress", *TINY,
            f"--config.training.n_iters={n}", "--config.training.save_every=100000",
            "--config.training.snapshot_every=100000", "--config.training.sample_every=100000",
            "--config.training.eval_every=100000", "--config.training.log_every=5"]
    rng = random.Random(0)
    log = tmp_path / "run" / "log.jsonl"
    stops = []
    for _ in range(3):
        lines = len(log.read_text().splitlines()) if log.exists() else 0
        proc = subprocess.Popen([sys.executable, "-m", "scoresde", *args], cwd=ROOT, stdout=subprocess.PIPE,
                                stderr=subprocess.PIPE, text=True)
        deadline = time.monotonic() + 600
        while time.monotonic() < deadline and proc.poll() is None and \
                (not log.exists() or len(log.read_text().splitlines()) < lines + 2):
            time.sleep(0.02)  # wait until this process is training
        time.sleep(rng.uniform(0, 0.3))
        proc.send_signal(signal.SIGTERM)
        out, err = proc.communicate(timeout=600)
        if proc.returncode == 0:
            break  # it finished first
        assert proc.returncode == 143, err[-2000:]
        assert "preempted (SIGTERM) at step" in err and "to resume, rerun it: scoresde train" in err
        assert "Traceback" not in err
        stops.append(ckpt_module.load(tmp_path / "run" / "checkpoints" / "latest.pt", "cpu")["step"])
    assert stops and all(0 < s < n for s in stops), stops
    final = subprocess.run([sys.executable, "-m", "scoresde", *args], cwd=ROOT, capture_output=True, text=True,
                           timeout=900)
    assert final.returncode == 0, final.stderr[-2000:]
    straight = Trainer(tiny_config(n_iters=n, save_every=100000, snapshot_every=100000, sample_every=100000,
                                   eval_every=100000, log_every=5), tmp_path / "straight", progress_bar=False)
    straight.train()
    resumed = ckpt_module.load(tmp_path / "run" / "checkpoints" / "latest.pt", "cpu")
    assert resumed["step"] == n
    _assert_equal_states(_state(straight), {"model": resumed["model"], "ema": resumed["ema"],
                                            "opt": resumed["optimizer"]})
