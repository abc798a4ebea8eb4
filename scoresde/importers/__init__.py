"""Published checkpoints as scoresde runs: the weights are read, never any code (`scoresde import SOURCE FILE`).

    score_sde   score_sde_pytorch's checkpoints (checkpoints/checkpoint_N.pth, checkpoints-meta/checkpoint.pth)
                of its NCSN++ / DDPM++ models, with the matching scoresde config
    edm         EDM's network pickles (network-snapshot-*.pkl), read without running the code they embed
    diffusers   diffusers pipeline folders: ScoreSdeVePipeline (google/ncsnpp-*) and DDPMPipeline (linear betas)

An import writes a weights-only run (config.json, checkpoints/latest.pt) that `load_run`, every sampler, `eval`
and `compare` use like a trained one; training in the workdir fine-tunes it with a fresh optimiser.
"""
from __future__ import annotations

from .._utils import check_choice
from .diffusers import import_diffusers
from .edm import import_edm
from .score_sde import import_score_sde

IMPORTERS = {"score_sde": import_score_sde, "edm": import_edm, "diffusers": import_diffusers}


def import_run(source: str, path, workdir, **options):
    """Import the checkpoint at `path` from `source` (a name in IMPORTERS) into the run folder `workdir`."""
    return IMPORTERS[check_choice(source, "source", IMPORTERS)](path, workdir, **options)


__all__ = ["IMPORTERS", "import_run", "import_score_sde", "import_edm", "import_diffusers"]
