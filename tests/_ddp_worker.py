"""Run by test_ddp_ranks_stay_identical under torchrun: train a tiny run, then save this rank's parameters."""
import os
import sys

import torch

sys.path.insert(0, os.path.dirname(__file__))
from test_training import tiny_config  # noqa: E402

from scoresde.training import Trainer  # noqa: E402

workdir = sys.argv[1]
trainer = Trainer(tiny_config(n_iters=10, log_every=5, eval_every=100, sample_every=100), workdir, progress_bar=False)
model = trainer.model
trainer.train()
torch.save({k: v.clone() for k, v in model.state_dict().items()}, os.path.join(workdir, f"rank{os.environ['RANK']}.pt"))
