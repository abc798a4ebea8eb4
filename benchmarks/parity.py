"""Parity of scoresde's networks with the originals: identical weights, the same input, the same output.

    python benchmarks/parity.py --score-sde PATH     # PATH: a checkout of yang-song/score_sde_pytorch
    python benchmarks/parity.py --edm PATH           # PATH: a checkout of NVlabs/edm
    python benchmarks/parity.py --diffusers          # diffusers from the package index

It then writes a checkpoint with score_sde's own utils.save_checkpoint (its ExponentialMovingAverage, an Adam
optimiser and the DataParallel-wrapped model, as its training loop holds them; a stand-in `tensorflow` module lets
utils.py import, and save_checkpoint itself uses only torch), imports it with `scoresde import score_sde` and
compares the imported run's network with score_sde's network carrying its EMA weights.

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
    parser.add_argument("--score-sde", type=Path, default=None, help="a checkout of score_sde_pytorch")
    parser.add_argument("--edm", type=Path, default=None, help="a checkout of NVlabs/edm")
    parser.add_argument("--diffusers", action="store_true", help="a ScoreSdeVePipeline that diffusers saves")
    parser.add_argument("--batch", type=int, default=2)
    parser.add_argument("--json", type=Path, default=None, help="also write the rows here")
    args = parser.parse_args()
    torch.set_grad_enabled(False)
    if args.score_sde is None and args.edm is None and not args.diffusers:
        parser.error("give --score-sde PATH, --edm PATH and/or --diffusers")
    rows = edm_parity(args.edm, args.batch) if args.edm else []
    if args.diffusers:
        rows.append(diffusers_check(args.batch))
    if args.score_sde is not None:
        rows += score_sde_parity(args)
    if args.json:
        args.json.write_text(json.dumps(rows, indent=2))


# EDM's networks: (preconditioner, its keyword arguments) per variant, at 16 or 32 pixels
EDM_VARIANTS = {
    "VPPrecond + SongUNet (DDPM++, EDM config A/B)": ("VPPrecond", dict(model_type="SongUNet", embedding_type="positional",
                                                     encoder_type="standard", decoder_type="standard",
                                                     channel_mult_noise=1, resample_filter=[1, 1], model_channels=32,
                                                     channel_mult=[1, 2], num_blocks=1, attn_resolutions=[8])),
    "VEPrecond + SongUNet (NCSN++)": ("VEPrecond", dict(model_type="SongUNet", embedding_type="fourier",
                                     encoder_type="residual", decoder_type="standard", channel_mult_noise=2,
                                     resample_filter=[1, 3, 3, 1], model_channels=32, channel_mult=[1, 2],
                                     num_blocks=1, attn_resolutions=[8])),
    "EDMPrecond + SongUNet, skip encoder and decoder, 10 classes": (
        "EDMPrecond", dict(model_type="SongUNet", embedding_type="fourier", encoder_type="skip", decoder_type="skip",
                           channel_mult_noise=2, resample_filter=[1, 3, 3, 1], model_channels=32, channel_mult=[1, 2, 2],
                           num_blocks=1, attn_resolutions=[8], label_dim=10)),
    "EDMPrecond + DhariwalUNet (ADM), 10 classes": ("EDMPrecond", dict(model_type="DhariwalUNet", model_channels=64,
                                                   channel_mult=[1, 2], num_blocks=1, attn_resolutions=[8],
                                                   label_dim=10)),
    "iDDPMPrecond + DhariwalUNet": ("iDDPMPrecond", dict(model_type="DhariwalUNet", model_channels=64,
                                   channel_mult=[1, 2], num_blocks=1, attn_resolutions=[8])),
    "EDMPrecond + SongUNet, CIFAR-10 size (EDM config F)": (
        "EDMPrecond", dict(model_type="SongUNet", embedding_type="positional", encoder_type="standard",
                           decoder_type="standard", channel_mult_noise=1, resample_filter=[1, 1], model_channels=128,
                           channel_mult=[2, 2, 2], num_blocks=4, attn_resolutions=[16], dropout=0.13)),
}


def edm_parity(peer: Path, batch: int) -> list[dict]:
    """Each EDM preconditioned network against scoresde's, on EDM's weights."""
    sys.path.insert(0, str(peer))
    from training import networks as theirs

    from scoresde.models import edm as ours

    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads, float32, CPU, batch {batch}; EDM: {peer}")
    print("| EDM network | parameters (EDM) | parameters (scoresde) | relative error | seconds |")
    print("|---|---|---|---|---|")
    rows = []
    for name, (precond, kwargs) in EDM_VARIANTS.items():
        size = 32 if "CIFAR" in name else 16
        start = time.perf_counter()
        torch.manual_seed(0)
        net = getattr(theirs, precond)(img_resolution=size, img_channels=3, **kwargs).eval()
        mine = ours.PRECONDITIONERS[precond](img_resolution=size, img_channels=3, **kwargs).eval()
        mine.load_state_dict(net.state_dict(), strict=True)  # the same names: the state dict loads as it is
        g = torch.Generator().manual_seed(1)
        x = torch.randn(batch, 3, size, size, generator=g)
        sigma = torch.exp(torch.rand(batch, generator=g) * 8 - 4)
        labels = torch.eye(10)[torch.randint(10, (batch,), generator=g)] if kwargs.get("label_dim") else None
        a, b = net(x, sigma, labels), mine(x, sigma, labels)
        error = ((a - b).norm() / a.norm()).item()
        n_theirs, n_ours = (sum(p.numel() for p in m.parameters()) for m in (net, mine))
        seconds = time.perf_counter() - start
        rows.append({"variant": name, "params_edm": n_theirs, "params_scoresde": n_ours, "relative_error": error,
                     "seconds": seconds})
        print(f"| {name} | {n_theirs:,} | {n_ours:,} | {error:.1e} | {seconds:.1f} |", flush=True)
    rows.append(edm_import_check(theirs, batch))
    return rows


def edm_import_check(theirs, batch: int) -> dict:
    """A network snapshot pickled as EDM's training loop pickles it (its EMA network, EDMLoss, AugmentPipe and the
    dataset arguments), imported through the CLI, against EDM's network."""
    import pickle
    import tempfile

    import dnnlib
    from training.augment import AugmentPipe
    from training.loss import EDMLoss

    import scoresde
    from scoresde.cli import main as scoresde_main

    kwargs = dict(img_resolution=32, img_channels=3, label_dim=10, model_type="SongUNet", embedding_type="positional",
                  encoder_type="standard", decoder_type="standard", channel_mult_noise=1, resample_filter=[1, 1],
                  model_channels=128, channel_mult=[2, 2, 2], num_blocks=4, attn_resolutions=[16], dropout=0.13,
                  augment_dim=9, use_fp16=False)  # EDM's cond. CIFAR-10 configuration F
    torch.manual_seed(0)
    net = theirs.EDMPrecond(**kwargs).eval().requires_grad_(False)
    data = dict(ema=net, loss_fn=EDMLoss(), augment_pipe=AugmentPipe(p=0.12, xflip=1e8, yflip=1, scale=1, rotate_frac=1,
                                                                       aniso=1, translate_frac=1),
                dataset_kwargs=dnnlib.EasyDict(path="datasets/cifar10-32x32.zip", use_labels=True, xflip=False))
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "network-snapshot-000000.pkl"
        with open(path, "wb") as f:
            pickle.dump(data, f)
        start = time.perf_counter()
        scoresde_main(["import", "edm", str(path), "--workdir", str(Path(folder) / "run")])
        run = scoresde.load_run(Path(folder) / "run", device="cpu")
        seconds = time.perf_counter() - start
    g = torch.Generator().manual_seed(2)
    x, sigma = torch.randn(batch, 3, 32, 32, generator=g), torch.exp(torch.rand(batch, generator=g) * 8 - 4)
    labels = torch.eye(10)[torch.randint(10, (batch,), generator=g)]
    a, b = net(x, sigma, labels), run.model.precond(x, sigma, labels)
    error = ((a - b).norm() / a.norm()).item()
    print(f"import: EDM network pickle (EDMPrecond + SongUNet, 10 classes) -> scoresde run in {seconds:.1f} s; "
          f"relative error of the imported denoiser against EDM's: {error:.1e}")
    return {"variant": "import edm EDMPrecond", "relative_error": error, "seconds": seconds}


def diffusers_check(batch: int) -> dict:
    """A ScoreSdeVePipeline saved by diffusers (google/ncsnpp-*'s layout, small), imported through the CLI: the run's
    score against the pipeline's UNet at σ(t)."""
    import tempfile

    import diffusers

    import scoresde
    from scoresde.cli import main as scoresde_main

    torch.manual_seed(0)
    unet = diffusers.UNet2DModel(sample_size=32, in_channels=3, out_channels=3, layers_per_block=2,
                                 block_out_channels=(64, 128, 128), time_embedding_type="fourier",
                                 down_block_types=("SkipDownBlock2D", "AttnSkipDownBlock2D", "SkipDownBlock2D"),
                                 up_block_types=("SkipUpBlock2D", "AttnSkipUpBlock2D", "SkipUpBlock2D"),
                                 norm_num_groups=32).eval()
    scheduler = diffusers.ScoreSdeVeScheduler(sigma_min=0.01, sigma_max=50.0, num_train_timesteps=2000)
    with tempfile.TemporaryDirectory() as folder:
        diffusers.ScoreSdeVePipeline(unet=unet, scheduler=scheduler).save_pretrained(folder + "/pipe")
        start = time.perf_counter()
        scoresde_main(["import", "diffusers", folder + "/pipe", "--workdir", folder + "/run"])
        run = scoresde.load_run(folder + "/run", device="cpu")
        seconds = time.perf_counter() - start
    g = torch.Generator().manual_seed(2)
    x, t = torch.randn(batch, 3, 32, 32, generator=g), torch.rand(batch, generator=g)
    a, b = unet(x, 0.01 * (50.0 / 0.01) ** t).sample, run.score_fn(x, t)
    error = ((a - b).norm() / a.norm()).item()
    print(f"import: diffusers ScoreSdeVePipeline (UNet2DModel with skip blocks, Fourier embedding) -> scoresde run in "
          f"{seconds:.1f} s; relative error of the run's score against the pipeline's UNet: {error:.1e}")
    return {"variant": "import diffusers ScoreSdeVePipeline", "relative_error": error, "seconds": seconds}


def score_sde_parity(args) -> list[dict]:
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
    rows.append(import_check(args.batch))
    return rows


def import_check(batch: int) -> dict:
    """A checkpoint in score_sde's training layout, imported through the CLI, against score_sde's EMA network."""
    import tempfile

    from models import utils as their_utils
    from models.ema import ExponentialMovingAverage

    import scoresde
    from scoresde.cli import main as scoresde_main

    config = score_sde_config({"centered": False}, 32, small=False)  # ve/cifar10_ncsnpp_continuous: data in [0, 1]
    torch.manual_seed(0)
    net = their_utils.get_model("ncsnpp")(config)
    model = torch.nn.DataParallel(net)  # as score_sde trains: its keys start with "module."
    ema = ExponentialMovingAverage(model.parameters(), decay=0.999)
    optimizer = torch.optim.Adam(model.parameters(), lr=2e-4)
    with torch.no_grad():
        for p in model.parameters():  # a step away from the EMA, so that the two weight sets differ
            p.add_(0.01 * torch.randn_like(p))
    ema.update(model.parameters())
    sys.modules.setdefault("tensorflow", types.ModuleType("tensorflow"))  # utils.py imports it; save_checkpoint
    import utils as their_training_utils                                  # itself is torch.save of four keys
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "checkpoints-meta" / "checkpoint.pth"  # the preemption layout; checkpoint_N.pth is alike
        path.parent.mkdir()
        their_training_utils.save_checkpoint(str(path), dict(optimizer=optimizer, model=model, ema=ema, step=7))
        start = time.perf_counter()
        scoresde_main(["import", "score_sde", str(path), "--config", "ve/ncsnpp_cifar10_continuous",
                       "--workdir", str(Path(folder) / "run")])
        run = scoresde.load_run(Path(folder) / "run", device="cpu")
        seconds = time.perf_counter() - start
    ema.copy_to(model.parameters())
    net.eval()
    g = torch.Generator().manual_seed(2)
    x, sigma = torch.randn(batch, 3, 32, 32, generator=g), torch.exp(torch.rand(batch, generator=g) * 8 - 4)
    a, b = net(x, sigma), run.model.net(x, sigma)
    error = ((a - b).norm() / a.norm()).item()
    print(f"import: score_sde checkpoint (EMA weights, step {run.step}) -> scoresde run in {seconds:.1f} s; relative "
          f"error of the imported network against score_sde's EMA network: {error:.1e}")
    return {"variant": "import ve/cifar10_ncsnpp_continuous", "relative_error": error, "seconds": seconds}


if __name__ == "__main__":
    main()
