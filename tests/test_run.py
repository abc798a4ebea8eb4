"""Loading a trained run in Python: `scoresde.load_run`, weights-only checkpoints, fallback, lock, EMA and warm-up."""
import pytest
import torch

import scoresde
from scoresde import checkpoint as ckpt
from scoresde.sampling import get_sampler
from scoresde.training import EMA, Trainer
from test_training import tiny_config
from tolerance import ulps

pytestmark = pytest.mark.slow  # trains runs and starts the CLI: left out of the quick loop (-m "not slow")


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """A 30-step toy run (snapshots at 20 and 30) and the Trainer that made it."""
    workdir = tmp_path_factory.mktemp("run")
    trainer = Trainer(tiny_config(), workdir, progress_bar=False)
    trainer.train()
    return workdir, trainer


def test_load_run_has_the_documented_attributes_and_no_training_state(trained):
    workdir, trainer = trained
    run = scoresde.load_run(workdir, device="cpu")
    assert run.step == 30 and run.shape == (2,) and not run.is_image
    assert run.config.training.n_iters == 30 and isinstance(run.sde, scoresde.VPSDE)
    assert run.checkpoint_path == workdir / "checkpoints" / "latest.pt"
    for name, value in trainer.ema.state_dict().items():
        assert torch.equal(run.model.state_dict()[name], value)
    assert not any(hasattr(run, a) for a in ("optimizer", "train_model", "dist", "loss_fn"))
    assert "data" not in run.__dict__  # held-out data is loaded only when asked for


def test_run_samples_equal_the_trainers_with_any_sampler(trained):
    workdir, trainer = trained
    run = scoresde.load_run(workdir, device="cpu")
    for name, steps in (("pc", 5), ("ode:heun", 4)):
        x, nfe = run.sample(50, name, steps=steps, seed=3)
        y, nfe_y = trainer.sample(50, get_sampler(name, steps=steps, progress=False), seed=3)
        assert torch.equal(x, y) and nfe == nfe_y
    # Batches are seeded seed + offset: 50 in one call equals 30 + 20 in batches only through the seeds.
    x, _ = run.sample(50, "ddim", steps=5, seed=3, batch_size=30)
    head, _ = run.sample(30, "ddim", steps=5, seed=3)
    tail, _ = run.sample(20, "ddim", steps=5, seed=33)
    assert torch.equal(x, torch.cat([head, tail]))


def test_checkpoints_load_weights_only_and_select_a_snapshot(trained):
    workdir, _ = trained
    state = torch.load(workdir / "checkpoints" / "ckpt_20.pt", weights_only=True)
    assert state["step"] == 20 and state["data"] == {"shape": [2], "is_image": False, "centered": True}
    run20 = scoresde.load_run(workdir, device="cpu", checkpoint=20)
    assert run20.step == 20 and run20.checkpoint_path.name == "ckpt_20.pt"
    with pytest.raises(FileNotFoundError, match="ckpt_7.pt does not exist"):
        scoresde.load_run(workdir, checkpoint=7)
    with pytest.raises(TypeError, match="checkpoint must be None, a step"):
        scoresde.load_run(workdir, checkpoint=2.5)
    with pytest.raises(ValueError, match="device must name a torch device"):
        scoresde.load_run(workdir, device="nope")


@pytest.mark.parametrize("damage", ["truncate", "zeros", "garbage"])
def test_a_damaged_latest_falls_back_to_the_newest_intact_snapshot(tmp_path, damage):
    Trainer(tiny_config(), tmp_path, progress_bar=False).train()
    latest = tmp_path / "checkpoints" / "latest.pt"
    data = latest.read_bytes()
    latest.write_bytes({"truncate": data[:len(data) // 2], "zeros": bytes(len(data)), "garbage": b"not a checkpoint"}[damage])
    with pytest.warns(ckpt.CheckpointWarning, match=r"cannot load checkpoint .*latest.pt.*using .*ckpt_30.pt \(step 30\)"):
        run = scoresde.load_run(tmp_path, device="cpu")
    assert run.step == 30
    (tmp_path / "checkpoints" / "ckpt_30.pt").write_bytes(b"")
    with pytest.warns(ckpt.CheckpointWarning, match=r"ckpt_30.pt.*using .*ckpt_20.pt \(step 20\)"):
        resumed = Trainer(tiny_config(n_iters=25), tmp_path, progress_bar=False)  # training falls back too
    assert resumed.step == 20
    resumed.train()
    assert resumed.step == 25 and torch.load(latest, weights_only=True)["step"] == 25


def test_all_checkpoints_damaged_is_a_clear_error_naming_the_files(tmp_path):
    Trainer(tiny_config(n_iters=10), tmp_path, progress_bar=False).train()
    for p in (tmp_path / "checkpoints").glob("*.pt"):
        p.write_bytes(b"\0" * 10)
    with pytest.raises(ValueError, match=r"no checkpoint in .* could be loaded: cannot load checkpoint .*latest.pt"):
        scoresde.load_run(tmp_path)


def test_stale_temporaries_are_removed_when_training_starts(tmp_path):
    Trainer(tiny_config(n_iters=10), tmp_path, progress_bar=False).train()
    stale = [tmp_path / "checkpoints" / ".latest.pt.x1y2.tmp", tmp_path / ".config.json.tmp"]
    for p in stale:
        p.write_bytes(b"half a file")
    Trainer(tiny_config(n_iters=10), tmp_path, progress_bar=False).close()
    assert not any(p.exists() for p in stale)


def test_one_writer_per_run_while_readers_still_work(tmp_path):
    first = Trainer(tiny_config(n_iters=10), tmp_path, progress_bar=False)
    first.save()
    with pytest.raises(ValueError, match=r"is being trained by process \d+ on .*one run has one writer"):
        Trainer(tiny_config(n_iters=10), tmp_path, progress_bar=False)
    assert scoresde.load_run(tmp_path, device="cpu").step == 0  # sampling and eval read without the lock
    first.train()  # releases the lock when it ends
    Trainer(tiny_config(n_iters=10), tmp_path, progress_bar=False).close()


def _scalar_model(value):
    model = torch.nn.Linear(1, 1, bias=False)
    with torch.no_grad():
        model.weight.fill_(value)
    return model


def test_ema_warmup_uses_the_documented_rates_exactly():
    """Update n uses r_n = min(rate, (1 + n)/(10 + n)): ema ← r_n ema + (1 − r_n) θ_n, checked in float64."""
    model = _scalar_model(0.0).double()
    ema = EMA(model, rate=0.5, warmup=True)
    assert not any(p.requires_grad for p in ema.model.parameters())  # the average is never trained itself
    expected, values = 0.0, [1.0, -2.0, 4.0, 3.0, 0.5, 8.0, -1.0, 2.0, 7.0, 5.0, 6.0]
    for n, v in enumerate(values):
        with torch.no_grad():
            model.weight.fill_(v)
        r = min(0.5, (1 + n) / (10 + n))
        assert ema.current_rate() == pytest.approx(r, rel=0, abs=1e-15)
        ema.update(model)
        expected = r * expected + (1 - r) * v
        # 3 roundings per update on numbers up to max |v| = 8, accumulated over the updates so far
        assert ema.model.weight.item() == pytest.approx(expected, rel=0, abs=ulps(3 * (n + 1), 8))
    assert ema.num_updates == len(values) and ema.current_rate() == 0.5  # (1 + n)/(10 + n) > 0.5 from n = 8 on


def test_ema_without_warmup_uses_the_rate_from_the_first_update():
    model = _scalar_model(0.0).double()
    ema = EMA(model, rate=0.9, warmup=False)
    with torch.no_grad():
        model.weight.fill_(1.0)
    ema.update(model)
    ema.update(model)
    assert ema.model.weight.item() == pytest.approx(1 - 0.9**2, rel=1e-14)


def test_learning_rate_warmup_is_linear_from_the_first_step(tmp_path):
    """Step k (0-based) uses lr·min(1, (k + 1)/warmup); Adam's first move is lr·sign(g) per weight."""
    config = tiny_config(n_iters=6)
    config.optim.update(warmup=4, grad_clip=0.0)
    trainer = Trainer(config, tmp_path, progress_bar=False)
    before = [p.detach().clone() for p in trainer.model.parameters()]
    lrs = []
    for k in range(6):
        trainer.train_step()
        lrs.append(trainer.optimizer.param_groups[0]["lr"])
        if k == 0:
            moves = torch.cat([(p.detach() - b).abs().flatten() for p, b in zip(trainer.model.parameters(), before)])
            assert moves.max().item() == pytest.approx(config.optim.lr / 4, rel=1e-4)
    assert lrs == pytest.approx([config.optim.lr * f for f in (0.25, 0.5, 0.75, 1, 1, 1)], rel=1e-12)
    trainer.close()


def test_cosine_learning_rate_takes_the_documented_values_exactly(tmp_path):
    """optim.schedule="cosine": step k uses lr·min(1, (k + 1)/warmup)·½(1 + cos(πk/n_iters)), 0 at n_iters."""
    import math

    config = tiny_config(n_iters=8)
    config.optim.update(warmup=2, schedule="cosine")
    trainer = Trainer(config, tmp_path, progress_bar=False)
    lrs = [trainer.learning_rate(k) for k in range(9)]
    want = [config.optim.lr * min(1, (k + 1) / 2) * 0.5 * (1 + math.cos(math.pi * k / 8)) for k in range(9)]
    assert lrs == pytest.approx(want, rel=1e-14, abs=1e-20)
    assert lrs[4] == pytest.approx(config.optim.lr / 2, rel=1e-14) and lrs[8] == pytest.approx(0.0, abs=1e-20)
    trainer.train_step()
    assert trainer.optimizer.param_groups[0]["lr"] == lrs[0]  # the optimiser uses it
    trainer.close()


def test_image_grid_tiles_and_enlarges_small_images_exactly():
    from scoresde.plots import image_grid

    x = torch.arange(3 * 4, dtype=torch.float32).reshape(3, 1, 2, 2) / 12  # 3 images of 2×2 → a 2×2 grid
    flush = image_grid(x, min_size=0, gap=0)
    assert flush.shape == (4, 4)
    assert torch.equal(flush[:2, :2], x[0, 0]) and torch.equal(flush[:2, 2:], x[1, 0]) and torch.equal(flush[2:, :2], x[2, 0])
    assert torch.equal(flush[2:, 2:], torch.ones(2, 2))  # padding is white
    grid = image_grid(x, min_size=0)  # by default one white pixel between tiles, none around the picture
    assert grid.shape == (5, 5) and torch.equal(grid[2], torch.ones(5)) and torch.equal(grid[:, 2], torch.ones(5))
    assert torch.equal(grid[:2, :2], x[0, 0]) and torch.equal(grid[:2, 3:], x[1, 0]) and torch.equal(grid[3:, :2], x[2, 0])
    big = image_grid(x, min_size=10)  # 5 px → ×2 (nearest neighbour) = 10 px ≥ 10
    assert big.shape == (10, 10) and torch.equal(big[::2, ::2], grid)


def test_image_strip_puts_white_columns_between_images():
    from scoresde.plots import image_strip

    x = torch.rand(3, 1, 2, 2)
    strip = image_strip(x)
    assert strip.shape == (1, 2, 8) and torch.equal(strip[..., 2], torch.ones(1, 2)) and torch.equal(strip[..., 5], torch.ones(1, 2))
    assert torch.equal(strip[..., :2], x[0]) and torch.equal(strip[..., 3:5], x[1]) and torch.equal(strip[..., 6:], x[2])
    assert torch.equal(image_strip(x, gap=0), torch.cat(list(x), dim=-1))


def test_training_saves_enlarged_sample_grids_of_the_ema_model(tmp_path):
    pytest.importorskip("sklearn")
    import matplotlib.image

    from test_training import ROOT
    from scoresde.config import load_config

    config = load_config(str(ROOT / "configs/vp/digits.py"))
    config.training.update(n_iters=2, batch_size=16, device="cpu", sample_every=2, eval_every=2, log_every=1)
    config.sampling.update(name="ddim", steps=3, n=4)
    config.data.n_eval = 16
    trainer = Trainer(config, tmp_path, progress_bar=False)
    assert trainer.run.model is trainer.ema.model  # samples during training come from the EMA weights
    trainer.train()
    png = matplotlib.image.imread(tmp_path / "samples" / "step_2.png")
    assert png.shape[:2] == (323, 323)  # 2×2 digits of 8×8 and a 1-px gap = 17 px, enlarged ×19
    x, _ = trainer.sample()
    expected = image_grid_of(trainer.run.to_display(x))
    assert abs(png[..., 0] - expected).max() < 1 / 255 + 1e-6  # the PNG is exactly these samples, in grey levels


def image_grid_of(x):
    from scoresde.plots import image_grid
    return image_grid(x).numpy()


def test_a_pickled_checkpoint_is_refused_with_the_reason(tmp_path):
    import numpy as np

    path = tmp_path / "old.pt"
    torch.save({"model": {}, "ema": {}, "step": 1, "config": "{}", "rng": {"numpy": np.random.get_state()}}, path)
    with pytest.raises(ValueError, match=r"cannot load checkpoint .*old.pt.*pickled objects.*scoresde 0.1"):
        ckpt.load(path)
