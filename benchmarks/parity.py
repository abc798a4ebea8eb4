"""Parity of scoresde's networks with the originals: identical weights, the same input, the same output.

    python benchmarks/parity.py --score-sde PATH     # PATH: a checkout of yang-song/score_sde_pytorch

For each variant of NCSN++ / DDPM++ the benchmark builds score_sde's own `ncsnpp` model from a score_sde config,
copies its random weights into scoresde's NCSNpp through `score_sde_key_map()`, runs both on the same batch and
prints the relative error ‖ours − theirs‖ / ‖theirs‖ and both parameter counts. score_sde's `op/` CUDA extension
is not built: the benchmark gives it score_sde's own pure-PyTorch `upfirdn2d_native`, read from op/upfirdn2d.py,
and reads the mode score_sde passes to F.interpolate positionally as the mode. Where score_sde's own forward
fails under PyTorch (the FIR-fused up-sampling convolution slices with a negative step), the row says so.
Nothing of score_sde is copied into scoresde; it runs from PATH.
"""
from __future__ import annotations

import argparse
import ast
import json
import sys
import time
import types
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from scoresde.models.ncsnpp import NCSNpp, score_sde_kwargs  # noqa: E402

# name -> (score_sde config changes, image size, runs forward): score_sde's CIFAR-10 networks (its sub-VP configs use
# the VP ones), its 256-pixel CelebA-HQ / FFHQ network, and small networks for every other option
VARIANTS = {
    "ve/cifar10_ncsnpp_continuous": (dict(), 32, True),
    "ve/cifar10_ncsnpp_deep_continuous": (dict(num_res_blocks=8), 32, True),
    "vp/cifar10_ddpmpp_continuous": (dict(fir=False, progressive_input="none", embedding_type="positional",
                                          scale_by_sigma=False), 32, True),
    "vp/cifar10_ddpmpp_deep_continuous": (dict(fir=False, progressive_input="none", embedding_type="positional",
                                               scale_by_sigma=False, num_res_blocks=8), 32, True),
    "vp/cifar10_ncsnpp_continuous": (dict(embedding_type="positional", scale_by_sigma=False), 32, True),
    "vp/cifar10_ncsnpp_deep_continuous": (dict(embedding_type="positional", scale_by_sigma=False,
                                               num_res_blocks=8), 32, True),
    "ve/celebahq_256_ncsnpp_continuous": (dict(nf=128, ch_mult=(1, 1, 2, 2, 2, 2, 2), num_res_blocks=2,
                                               progressive="output_skip", progressive_input="input_skip",
                                               progressive_combine="sum", fourier_scale=16), 256, True),
    # small networks for the options the CIFAR-10 configs leave out
    "small: output_skip + input_skip, sum": (dict(progressive="output_skip", progressive_input="input_skip"), 16, True),
    "small: input_skip, cat": (dict(progressive_input="input_skip", progressive_combine="cat"), 16, True),
    "small: residual output pyramid, no FIR": (dict(progressive="residual", fir=False), 16, True),
    "small: DDPM blocks, no FIR": (dict(resblock_type="ddpm", fir=False), 16, True),
    "small: DDPM blocks, FIR": (dict(resblock_type="ddpm", fir=True), 16, True),
    "small: unconditional": (dict(conditional=False, scale_by_sigma=False), 16, True),
    "small: not centered, elu": (dict(centered=False, nonlinearity="elu"), 16, True),
}
SMALL = dict(nf=16, ch_mult=(1, 2, 2), num_res_blocks=1, attn_resolutions=(8,))


def stub_op(peer: Path) -> None:
    """score_sde's `op` package with only its pure-PyTorch upfirdn2d_native (no CUDA extension)."""
    source = (peer / "op" / "upfirdn2d.py").read_text()
    tree = ast.parse(source)
    native = next(n for n in tree.body if isinstance(n, ast.FunctionDef) and n.name == "upfirdn2d_native")
    namespace = {"torch": torch, "F": torch.nn.functional}
    exec(compile(ast.Module(body=[native], type_ignores=[]), str(peer / "op" / "upfirdn2d.py"), "exec"), namespace)
    op = types.ModuleType("op")
    op.upfirdn2d = lambda x, k, up=1, down=1, pad=(0, 0): namespace["upfirdn2d_native"](
        x, k, up, up, down, down, pad[0], pad[1], pad[0], pad[1])
    sys.modules["op"] = op


def shim_interpolate() -> None:
    """score_sde calls F.interpolate(x, size, 'nearest'), the mode in scale_factor's place, which PyTorch >= 1.x
    refuses; read a string there as the mode (this changes no result)."""
    interpolate = torch.nn.functional.interpolate

    def compatible(input, size=None, scale_factor=None, mode="nearest", *args, **kwargs):
        if isinstance(scale_factor, str):
            mode, scale_factor = scale_factor, None
        return interpolate(input, size, scale_factor, mode, *args, **kwargs)
    torch.nn.functional.interpolate = compatible


def score_sde_config(changes: dict, size: int, small: bool):
    import ml_collections
    c = ml_collections.ConfigDict()
    c.training = dict(continuous=True, sde="vesde")
    c.data = dict(image_size=size, num_channels=3, centered=True)
    c.model = dict(name="ncsnpp", sigma_min=0.01, sigma_max=50.0, num_scales=1000, beta_min=0.1, beta_max=20.0,
                   dropout=0.1, embedding_type="fourier", scale_by_sigma=True, normalization="GroupNorm",
                   nonlinearity="swish", nf=128, ch_mult=(1, 2, 2, 2), num_res_blocks=4, attn_resolutions=(16,),
                   resamp_with_conv=True, conditional=True, fir=True, fir_kernel=[1, 3, 3, 1], skip_rescale=True,
                   resblock_type="biggan", progressive="none", progressive_input="residual",
                   progressive_combine="sum", attention_type="ddpm", init_scale=0.0, fourier_scale=16, conv_size=3)
    if small:
        c.model.update(SMALL)
    for key, value in changes.items():
        (c.data if key == "centered" else c.model)[key] = value
    return c


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--score-sde", required=True, type=Path, help="a checkout of score_sde_pytorch")
    parser.add_argument("--batch", type=int, default=2)
    parser.add_argument("--json", type=Path, default=None, help="also write the rows here")
    args = parser.parse_args()
    torch.set_grad_enabled(False)
    stub_op(args.score_sde)
    shim_interpolate()
    sys.path.insert(0, str(args.score_sde))
    import models.ncsnpp  # noqa: F401  (registers the model with score_sde)
    from models import utils as their_utils

    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads, float32, CPU, batch {args.batch}")
    print("| variant | parameters (score_sde) | parameters (scoresde) | relative error | seconds |")
    print("|---|---|---|---|---|")
    rows = []
    for name, (changes, size, forward) in VARIANTS.items():
        config = score_sde_config(changes, size, small=name.startswith("small"))
        torch.manual_seed(0)
        start = time.perf_counter()
        try:
            their_net = their_utils.get_model("ncsnpp")(config).eval()
        except Exception as e:  # noqa: BLE001 - reported, not hidden
            print(f"| {name} | score_sde fails to build: {type(e).__name__}: {e} | | | |")
            continue
        ours = NCSNpp(**score_sde_kwargs(config)).eval()
        mapping = ours.score_sde_key_map()
        state = their_net.state_dict()
        unmapped = sorted(set(state) - set(mapping) - {"sigmas"})
        if unmapped:
            raise SystemExit(f"{name}: score_sde keys with no scoresde name: {unmapped[:5]}")
        ours.load_state_dict({mine: state[key] for key, mine in mapping.items()}, strict=True)
        n_theirs = sum(p.numel() for p in their_net.parameters())
        n_ours = sum(p.numel() for p in ours.parameters())
        error = "not run (256 px)"
        if forward:
            g = torch.Generator().manual_seed(1)
            x = torch.randn(args.batch, 3, size, size, generator=g)
            if config.model.embedding_type == "fourier":
                cond = torch.exp(torch.rand(args.batch, generator=g) * 8 - 4)  # σ from e⁻⁴ to e⁴
            else:
                cond = torch.rand(args.batch, generator=g) * 999  # score_sde's 999 t
            try:
                a = their_net(x, cond)
            except Exception as e:  # noqa: BLE001
                error = f"score_sde's forward fails: {type(e).__name__}: {e}"
            else:
                b = ours(x, cond)
                error = f"{((a - b).norm() / a.norm()).item():.1e}"
        seconds = time.perf_counter() - start
        rows.append({"variant": name, "params_score_sde": n_theirs, "params_scoresde": n_ours, "relative_error": error,
                     "seconds": seconds})
        print(f"| {name} | {n_theirs:,} | {n_ours:,} | {error} | {seconds:.1f} |", flush=True)
    if args.json:
        args.json.write_text(json.dumps(rows, indent=2))


if __name__ == "__main__":
    main()
