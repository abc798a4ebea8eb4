"""Post-hoc EMA (EDM2): σ_rel ↔ γ, the power EMA's exact weights, the profiles' inner products, and a reconstruction
of a profile that was also tracked, through training, the `scoresde ema` command and load_run."""
import math

import numpy as np
import pytest
import torch
from scipy import integrate

from scoresde import checkpoint, posthoc_ema as P
from scoresde.config import validate
from scoresde.run import load_run
from scoresde.training import Trainer
from tolerance import ulps
from test_training import tiny_config


@pytest.mark.parametrize("sigma_rel", [1e-4, 0.01, 0.05, 0.07, 0.1, 0.2, 0.3, P.SIGMA_REL_MAX])
def test_sigma_rel_gamma_round_trip(sigma_rel):
    gamma = P.gamma_of_sigma_rel(sigma_rel)
    assert gamma >= P.GAMMA_PEAK
    # σ_rel(γ) takes ~10 roundings; bisection stops at the last bit of γ, where |dσ/dγ| ≤ σ/(γ+1) moves σ by < 1 ulp
    assert P.sigma_rel_of_gamma(gamma) == pytest.approx(sigma_rel, rel=0, abs=ulps(16, sigma_rel))
    assert P.gamma_of_sigma_rel(P.sigma_rel_of_gamma(gamma)) == pytest.approx(gamma, rel=0, abs=ulps(64, gamma + 2))


def test_edm2_values_and_the_widest_profile():
    """EDM2 (Sec. 3) quotes γ = 16.97 for σ_rel = 0.05 and γ = 6.94 for 0.10; no power function is wider than
    σ_rel(γ_peak), where d/dγ of (γ+1)/((γ+2)²(γ+3)) vanishes."""
    assert P.gamma_of_sigma_rel(0.05) == pytest.approx(16.97, abs=0.005)
    assert P.gamma_of_sigma_rel(0.10) == pytest.approx(6.94, abs=0.005)
    f = lambda g: (g + 1) / ((g + 2) ** 2 * (g + 3))  # noqa: E731
    h = 1e-5
    assert abs(f(P.GAMMA_PEAK + h) - f(P.GAMMA_PEAK - h)) < 1e-12
    assert f(P.GAMMA_PEAK) > max(f(P.GAMMA_PEAK + 1e-3), f(P.GAMMA_PEAK - 1e-3))
    assert P.SIGMA_REL_MAX == pytest.approx(0.300283, abs=1e-6)


@pytest.mark.parametrize("bad", [0, -0.1, 0.31, P.SIGMA_REL_MAX * (1 + 1e-9), True, "0.1", None])
def test_bad_sigma_rel_names_the_range(bad):
    with pytest.raises(ValueError, match=r"sigma_rel must be a number in \(0, 0.30028\]"):
        P.gamma_of_sigma_rel(bad)


def test_power_ema_weights_are_the_profile_integrated_over_each_update(device):
    """After t updates with β_k = (1 − 1/k)^(γ+1), the EMA is Σ_k w_k θ_k with w_k = ∫_{k−1}^{k} p(τ) dτ."""
    t, gamma = 37, P.gamma_of_sigma_rel(0.1)
    thetas = torch.randn(t, 5, dtype=torch.float64, generator=torch.Generator().manual_seed(0)).to(device)
    model = torch.nn.Linear(5, 1, bias=False).double().to(device)
    ema = P.PowerEMA(model, (0.1,))
    for k in range(t):
        with torch.no_grad():
            model.weight.copy_(thetas[k][None])
        ema.update(model)
    w = P.discrete_weights(t, gamma)
    assert w.sum() == pytest.approx(1, abs=ulps(t))
    for k in (1, 10, t):  # the closed form ∫ (γ+1) τ^γ / t^(γ+1) over (k−1, k]
        assert w[k - 1] == pytest.approx((k ** (gamma + 1) - (k - 1) ** (gamma + 1)) / t ** (gamma + 1), rel=1e-12)
    expected = torch.as_tensor(w, device=device) @ thetas
    # t lerps of O(1) values, each a few roundings
    torch.testing.assert_close(ema.models[0].weight[0], expected, rtol=0, atol=ulps(8 * t, thetas))
    assert ema.num_updates == t and P.update_factor(1, gamma) == 0


@pytest.mark.parametrize("ti,gi,tj,gj", [(1.0, 6.94, 1.0, 16.97), (0.4, 6.94, 1.0, 6.94), (1.0, 0.5, 0.3, 40.0)])
def test_profile_inner_products_equal_quadrature(ti, gi, tj, gj):
    p = lambda tau, t, g: (g + 1) * tau ** g / t ** (g + 1) if tau <= t else 0.0  # noqa: E731
    exact, _ = integrate.quad(lambda tau: p(tau, ti, gi) * p(tau, tj, gj), 0, min(ti, tj), epsabs=0, epsrel=1e-13)
    assert P.profile_inner(ti, gi, tj, gj) == pytest.approx(exact, rel=1e-10)
    assert P.profile_inner(ti, gi, tj, gj) == P.profile_inner(tj, gj, ti, gi)


def test_a_tracked_profile_is_rebuilt_from_its_own_snapshot():
    steps, gammas = [10, 20, 20], [6.94, 6.94, 16.97]
    c = P.solve_coefficients(steps, gammas, 20, 16.97)
    np.testing.assert_allclose(c, [0, 0, 1], atol=1e-9)
    assert P.profile_error(steps, gammas, c, 20, 16.97) < 1e-6


def _relative_error(a: dict, b: dict) -> float:
    num = sum(((a[k].double() - b[k].double()) ** 2).sum() for k in b if b[k].is_floating_point())
    den = sum((b[k].double() ** 2).sum() for k in b if b[k].is_floating_point())
    return math.sqrt(num / den)


@pytest.fixture(scope="module")
def posthoc_run(tmp_path_factory):
    """A small model trained 400 steps tracking σ_rel 0.05, 0.07 and 0.10, with a snapshot every 10 steps."""
    work = tmp_path_factory.mktemp("posthoc") / "run"
    config = tiny_config(n_iters=400, eval_every=1000, sample_every=1000, save_every=100, snapshot_every=200,
                         ema_sigma_rels=(0.05, 0.07, 0.1), ema_snapshot_every=10)
    Trainer(config, str(work), progress_bar=False).train()
    return work


def test_reconstruction_equals_the_directly_tracked_profile(posthoc_run):
    """σ_rel 0.07, rebuilt from the snapshots of 0.05 and 0.10 only, equals the EMA tracked at 0.07 to 1e-4."""
    state, info = P.reconstruct(posthoc_run, 0.07, using=(0.05, 0.1))
    tracked = [p for p in checkpoint.load_weights(posthoc_run / "ema" / "snapshot_400.pt")["profiles"]
               if p["sigma_rel"] == 0.07][0]["ema"]
    assert info["snapshots"] == 40 and info["profiles"] == [0.05, 0.1] and info["step"] == 400
    assert _relative_error(state, tracked) < 1e-4
    # the same at an earlier step, from the snapshots up to it
    state, info = P.reconstruct(posthoc_run, 0.07, step=200, using=(0.05, 0.1))
    tracked = [p for p in checkpoint.load_weights(posthoc_run / "ema" / "snapshot_200.pt")["profiles"]
               if p["sigma_rel"] == 0.07][0]["ema"]
    assert info["snapshots"] == 20 and _relative_error(state, tracked) < 1e-4
    # a wrong profile is far off: the test can tell widths apart
    state, _ = P.reconstruct(posthoc_run, 0.2, using=(0.05, 0.1))
    assert _relative_error(state, tracked) > 1e-3


def test_the_latest_checkpoint_holds_the_tracked_profiles(posthoc_run):
    state = checkpoint.load(posthoc_run / "checkpoints" / "latest.pt")
    snap = checkpoint.load_weights(posthoc_run / "ema" / "snapshot_400.pt")
    assert state["power_ema"]["num_updates"] == 400 and state["power_ema"]["sigma_rels"] == [0.05, 0.07, 0.1]
    for mine, theirs in zip(state["power_ema"]["ema"], snap["profiles"]):
        assert all(torch.equal(mine[k], theirs["ema"][k]) for k in mine)


def test_ema_command_writes_a_checkpoint_that_load_run_samples(posthoc_run, capsys):
    from test_cli import cli

    out = cli(capsys, "ema", "--workdir", posthoc_run, "--sigma-rel", "0.03,0.07")
    assert out.returncode == 0, out.stderr
    path = posthoc_run / "checkpoints" / "posthoc_ema_0.070_400.pt"
    assert path.exists() and "from 40 snapshots of σ_rel 0.05, 0.07, 0.1" in out.stdout and str(path) in out.stdout
    run = load_run(posthoc_run, "cpu", checkpoint=path)
    state, _ = P.reconstruct(posthoc_run, 0.07)
    assert all(torch.equal(run.model.state_dict()[k], state[k]) for k in state) and run.step == 400
    assert checkpoint.load_latest(posthoc_run / "checkpoints")[1].name == "latest.pt"  # never a resume candidate
    out = cli(capsys, "sample", "--workdir", posthoc_run, "--checkpoint", path, "--sampler", "ode", "--steps", "5",
              "--n", "10", "--out", posthoc_run / "s.npz")
    assert out.returncode == 0, out.stderr
    assert "samples from step 400" in out.stdout


def test_resume_continues_the_profiles_bit_exactly(posthoc_run, tmp_path):
    """Stopped at step 250 and resumed, the run writes the snapshots an uninterrupted run writes, bit for bit."""
    def config(n_iters):
        return tiny_config(n_iters=n_iters, eval_every=1000, sample_every=1000, save_every=100, snapshot_every=200,
                           ema_sigma_rels=(0.05, 0.07, 0.1), ema_snapshot_every=10)
    Trainer(config(250), str(tmp_path / "run"), progress_bar=False).train()
    Trainer(config(400), str(tmp_path / "run"), progress_bar=False).train()
    for step in (250, 300, 400):
        a = checkpoint.load_weights(tmp_path / "run" / "ema" / f"snapshot_{step}.pt")
        b = checkpoint.load_weights(posthoc_run / "ema" / f"snapshot_{step}.pt")
        for pa, pb in zip(a["profiles"], b["profiles"], strict=True):
            assert all(torch.equal(pa["ema"][k], pb["ema"][k]) for k in pb["ema"]), (step, pa["sigma_rel"])


def test_resume_refuses_to_start_tracking_midway(tmp_path):
    work = tmp_path / "run"
    Trainer(tiny_config(n_iters=5, eval_every=100, sample_every=100), str(work), progress_bar=False).train()
    with pytest.raises(ValueError, match="training.ema_sigma_rels"):
        Trainer(tiny_config(n_iters=10, eval_every=100, sample_every=100, ema_sigma_rels=(0.05,), ema_snapshot_every=5),
                str(work), progress_bar=False)


def test_no_snapshots_says_how_to_enable_them(tmp_path, capsys):
    from test_cli import cli

    work = tmp_path / "plain"
    Trainer(tiny_config(n_iters=5, eval_every=100, sample_every=100), str(work), progress_bar=False).train()
    out = cli(capsys, "ema", "--workdir", work, "--sigma-rel", "0.07")
    assert out.returncode == 2 and len(out.stderr.strip().splitlines()) == 1
    assert "training.ema_sigma_rels" in out.stderr and "training.ema_snapshot_every" in out.stderr
    out = cli(capsys, "ema", "--workdir", work, "--sigma-rel", "0.4")
    assert out.returncode == 2 and "0.30028" in out.stderr


@pytest.mark.parametrize("changes,key", [
    ({"ema_sigma_rels": (0.05, 0.35), "ema_snapshot_every": 10}, "training.ema_sigma_rels"),
    ({"ema_sigma_rels": (0.0,), "ema_snapshot_every": 10}, "training.ema_sigma_rels"),
    ({"ema_sigma_rels": (0.05, 0.1)}, "training.ema_snapshot_every"),
    ({"ema_snapshot_every": 10}, "training.ema_sigma_rels"),
    ({"ema_sigma_rels": (0.05, 0.05), "ema_snapshot_every": 10}, "must not repeat"),
])
def test_bad_posthoc_config_fails_before_training(changes, key):
    config = tiny_config(**changes)
    with pytest.raises(ValueError, match=key.replace(".", r"\.")):
        validate(config)
