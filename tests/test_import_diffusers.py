"""`scoresde import diffusers`: pipeline folders that diffusers itself saves become runs with the same score."""
import pytest
import torch

import scoresde
from scoresde.cli import main

diffusers = pytest.importorskip("diffusers")

SMALL = dict(sample_size=16, in_channels=3, out_channels=3, layers_per_block=1, block_out_channels=(16, 32),
             down_block_types=("DownBlock2D", "AttnDownBlock2D"), up_block_types=("AttnUpBlock2D", "UpBlock2D"),
             norm_num_groups=8)


def save_pipeline(folder, kind):
    torch.manual_seed(0)
    if kind == "ve":
        unet = diffusers.UNet2DModel(**SMALL, time_embedding_type="fourier")
        scheduler = diffusers.ScoreSdeVeScheduler(num_train_timesteps=100, sigma_min=0.01, sigma_max=50.0)
        diffusers.ScoreSdeVePipeline(unet=unet, scheduler=scheduler).save_pretrained(folder)
    else:
        unet = diffusers.UNet2DModel(**SMALL)
        scheduler = diffusers.DDPMScheduler(num_train_timesteps=100, beta_start=1e-3, beta_end=0.05)
        diffusers.DDPMPipeline(unet=unet, scheduler=scheduler).save_pretrained(folder)
    return unet.eval()


def test_a_score_sde_ve_pipeline_imports_with_the_unets_score(tmp_path, capsys):
    unet = save_pipeline(tmp_path / "pipe", "ve")
    main(["import", "diffusers", str(tmp_path / "pipe"), "--workdir", str(tmp_path / "run")])
    assert "imported" in capsys.readouterr().out
    run = scoresde.load_run(tmp_path / "run", device="cpu")
    assert run.score_fn.parameterization == "score" and run.config.sde.sigma_max == 50.0
    x, t = torch.randn(2, 3, 16, 16), torch.tensor([0.2, 0.9])
    sigma = 0.01 * (50.0 / 0.01) ** t  # ScoreSdeVeScheduler's σ(t): the unet's input, its output the score
    with torch.no_grad():
        torch.testing.assert_close(run.score_fn(x, t), unet(x, sigma).sample)  # float32: a few ulps
    samples, _ = run.sample(2, "pc", steps=3, seed=0)
    assert samples.shape == (2, 3, 16, 16) and torch.isfinite(samples).all()


def test_a_ddpm_pipeline_imports_as_a_discrete_model(tmp_path):
    unet = save_pipeline(tmp_path / "pipe", "ddpm")
    main(["import", "diffusers", str(tmp_path / "pipe"), "--workdir", str(tmp_path / "run")])
    run = scoresde.load_run(tmp_path / "run", device="cpu")
    assert not run.score_fn.continuous and run.config.sde.N == 100
    sde = run.sde
    x, t = torch.randn(2, 3, 16, 16), torch.tensor([0.5, 1.0])
    index = sde.timestep(t)
    abar = sde.alphas_cumprod[index].float()
    with torch.no_grad():
        eps = unet(x, index).sample
        torch.testing.assert_close(run.score_fn(x, t), -eps / (1 - abar).sqrt()[:, None, None, None])


def test_a_folder_that_is_not_a_pipeline_is_named(tmp_path, capsys):
    (tmp_path / "pipe" / "unet").mkdir(parents=True)
    with pytest.raises(SystemExit):
        main(["import", "diffusers", str(tmp_path / "pipe"), "--workdir", str(tmp_path / "run")])
    assert "unet/config.json does not exist: a diffusers pipeline folder has unet/config.json" in capsys.readouterr().err
