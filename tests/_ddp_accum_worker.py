"""Run by test_two_ddp_ranks_with_accumulation_... under torchrun: 5 steps with 2 micro-batches per rank, then
save this rank's parameters."""
import os
import sys

import torch

sys.path.insert(0, os.path.dirname(__file__))
from test_training import tiny_config  # noqa: E402

from scoresde.training import Trainer  # noqa: E402

workdir = sys.argv[1]
trainer = Trainer(tiny_config(n_iters=5, batch_per_device=16, log_every=5, eval_every=100, sample_every=100), workdir,
                  progress_bar=False)
model = trainer.model
calls = [0]  # micro-batches run under no_sync (their gradients are not all-reduced): all but the last of each step
no_sync = trainer.ddp.no_sync


def counting_no_sync():
    calls[0] += 1
    return no_sync()


trainer.ddp.no_sync = counting_no_sync
trainer.train()
state = {k: v.clone() for k, v in model.state_dict().items()}
torch.save({**state, "no_sync_calls": torch.tensor(calls[0])}, os.path.join(workdir, f"rank{os.environ['RANK']}.pt"))
