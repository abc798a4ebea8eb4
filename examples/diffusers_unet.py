"""A diffusers UNet2DModel under scoresde samplers, checked against diffusers' own DDIM loop.

The UNet is randomly initialised (nothing is downloaded), so the samples are noise-shaped; the point is
that scoresde's DDIM on diffusers' timesteps reproduces diffusers' DDIMScheduler, and that any other
scoresde sampler runs on the same model.

    pip install -e ".[diffusers]" && python examples/diffusers_unet.py
"""
import time

import torch
from diffusers import DDIMScheduler, UNet2DModel

from scoresde.diffusers_interop import (
    diffusers_scheduler_config, score_fn_from_diffusers, sde_from_diffusers, ts_from_diffusers_timesteps)
from scoresde.sampling import get_sampler

torch.manual_seed(0)
unet = UNet2DModel(sample_size=16, in_channels=3, out_channels=3, block_out_channels=(16, 32), layers_per_block=1,
                   norm_num_groups=4, attention_head_dim=8, down_block_types=("DownBlock2D", "AttnDownBlock2D"),
                   up_block_types=("AttnUpBlock2D", "UpBlock2D")).eval()
scheduler = DDIMScheduler(beta_schedule="squaredcos_cap_v2", prediction_type="v_prediction",
                          timestep_spacing="trailing", clip_sample=False)  # set_alpha_to_one=True by default
scheduler.set_timesteps(20)
shape = (4, 3, 16, 16)

sde = sde_from_diffusers(scheduler.config)
score_fn = score_fn_from_diffusers(unet, scheduler.config)
print(f"VPSDE with N = {sde.N}, {type(sde.schedule).__name__}; diffusers timesteps {scheduler.timesteps.tolist()}")

# 1. scoresde's DDIM on exactly diffusers' grid, against diffusers' loop from the same x_T. In float32 they
# differ by about 1e-4 here: at τ = 999, ᾱ = 2.4e-9, and scoresde's x̂_0 = (x + σ² s)/α divides float32
# rounding by α = 4.9e-5, where diffusers forms x̂_0 = α x − σ v directly. In float64 what remains is
# diffusers' float32 ᾱ table (the tests give both loops one table and find 5e-15).
ts = ts_from_diffusers_timesteps(scheduler.timesteps, sde)
for dtype in (torch.float32, torch.float64):
    net = unet.double() if dtype == torch.float64 else unet  # the wrapper feeds x in the UNet's current dtype
    ddim = get_sampler("ddim", ts=ts, progress=False, return_trajectory=True)
    start = time.perf_counter()
    x, nfe, traj = ddim(score_fn, sde, shape, generator=torch.Generator().manual_seed(0), dtype=dtype)
    seconds = time.perf_counter() - start
    with torch.no_grad():
        ref = traj[0]
        for tau in scheduler.timesteps:
            ref = scheduler.step(net(ref, tau).sample, tau, ref).prev_sample
    print(f"ddim       NFE {nfe:3d}  {seconds:.2f} s  {str(dtype)[6:]}: max |scoresde - diffusers DDIM| = "
          f"{(x - ref).abs().max().item():.1e}, max |x| = {ref.abs().max().item():.2f}")
unet.float()

# 2. Any other scoresde sampler on the same score function: DPM-Solver++(2M) on its log-SNR grid.
start = time.perf_counter()
x, nfe = get_sampler("dpm_solver", steps=10, progress=False)(score_fn, sde, shape, generator=torch.Generator())
print(f"dpm_solver NFE {nfe:3d}  {time.perf_counter() - start:.2f} s  finite: {bool(torch.isfinite(x).all())}, "
      f"shape {tuple(x.shape)}")

# 3. And back: the scheduler config of a scoresde VPSDE.
config = diffusers_scheduler_config(sde_from_diffusers({"beta_schedule": "linear"}), prediction_type="epsilon")
print("exported config:", config)
