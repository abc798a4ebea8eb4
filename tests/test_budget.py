"""Budget-aware defaults (scoresde.sampling.budget): the rule fills in only what the user left unset."""
import math

import pytest
import torch

import scoresde
from scoresde.sampling import get_sampler
from scoresde.sampling.budget import RULES, budget_defaults, end_time, reference_sigma, rule_table

F64 = torch.float64


@pytest.mark.parametrize("name", list(RULES))
def test_rule_rows_cover_every_budget(name):
    rows = RULES[name]
    assert [m for m, _ in rows] == sorted(m for m, _ in rows) and rows[-1][0] == math.inf
    for steps in range(1, 60):
        expected = next(o for m, o in rows if steps <= m)
        s = get_sampler(name, steps=steps)
        assert (s.order, s.grid) == (expected["order"], expected["grid"])
        assert s.end_time(scoresde.VPSDE()) == expected["eps"]  # on the benchmark's SDE: the rule's eps itself
        if "variant" in expected:
            assert s.variant == expected["variant"]


def test_explicit_options_win():
    s = get_sampler("unipc", steps=4, order=3, variant="bh2", grid="karras", eps=2e-3)
    assert (s.order, s.variant, s.grid, s.end_time(scoresde.VPSDE())) == (3, "bh2", "karras", 2e-3)
    s = get_sampler("dpm_solver", steps=5, ts=None, grid="logsnr")  # grid given: order and eps still from the rule
    assert (s.order, s.grid, s.end_time(scoresde.VPSDE())) == (3, "logsnr", 0.03)
    user = torch.tensor([1.0, 0.5, 0.2], dtype=F64)
    s = get_sampler("ipndm", ts=user)
    assert torch.equal(s.time_grid(scoresde.VPSDE()), user) and s.order == 3


@pytest.mark.parametrize("sde", [scoresde.VESDE(), scoresde.subVPSDE(), scoresde.VPSDE(schedule="cosine")],
                         ids=["ve", "subvp", "cosine"])
def test_other_sdes_stop_at_the_same_noise_level(sde):
    """The rule's eps is a noise level σ_t/α_t; the high-budget row keeps each SDE's own sampling_eps."""
    t = get_sampler("unipc", steps=5).end_time(sde)
    alpha, sigma = sde.marginal_coeffs(torch.tensor([t], dtype=F64))
    assert (sigma / alpha).item() == pytest.approx(reference_sigma(0.03), rel=1e-9)
    assert get_sampler("unipc", steps=50).end_time(sde) == sde.sampling_eps
    assert end_time(sde, 1e-3) == sde.sampling_eps


def test_an_sde_with_its_own_grid_keeps_it():
    """EDM's σ-time keeps Karras's grid and σ_min whatever the budget."""
    sde = scoresde.sde.EDMSDE()
    s = get_sampler("unipc", steps=4)
    ts = s.time_grid(sde)
    assert ts[-1].item() == sde.sampling_eps
    assert torch.equal(ts, get_sampler("unipc", steps=4, grid="karras", eps=sde.sampling_eps).time_grid(sde))


def test_reference_sigma_is_the_vp_sdes():
    """σ/α at t on VP with β from 0.1 to 20: √(exp(β_0 t + ½(β_1 − β_0) t²) − 1), written out."""
    for t in (1e-3, 0.03, 0.1):
        assert reference_sigma(t) == pytest.approx(math.sqrt(math.expm1(0.1 * t + 0.5 * 19.9 * t**2)), rel=1e-12)


def test_no_rule_for_other_samplers():
    assert budget_defaults("pc", 5) == {} and get_sampler("ddim", steps=5).end_time(scoresde.VPSDE()) == 1e-3


def test_docs_show_the_rule():
    from pathlib import Path
    text = (Path(__file__).resolve().parents[1] / "docs" / "low-nfe.md").read_text()
    assert rule_table() in text, "docs/low-nfe.md must show budget.rule_table() as it is"
