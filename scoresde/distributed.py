"""torch.distributed under torchrun, or one process: rank, world size, the device of each rank, and the few
collectives that training, sharded sampling and FID statistics need.

scoresde starts no processes and builds no process group of its own design: `torchrun` sets RANK, WORLD_SIZE and
LOCAL_RANK (on one node or many), and `Distributed` joins the default group with NCCL on CUDA and gloo on CPU.
Without torchrun every call here is the one-process case.
"""
from __future__ import annotations

import os

import torch
import torch.distributed as dist


class Distributed:
    """Rank, world size and device under torchrun (RANK/WORLD_SIZE/LOCAL_RANK), or a single process."""

    def __init__(self, device: torch.device):
        self.world = int(os.environ.get("WORLD_SIZE", "1"))
        self.rank = int(os.environ.get("RANK", "0"))
        self.device = device
        self.owner = False  # True when this object initialised the process group (and so destroys it)
        if self.world > 1:
            if device.type == "cuda":
                self.device = torch.device("cuda", int(os.environ.get("LOCAL_RANK", "0")))
                torch.cuda.set_device(self.device)
            if not dist.is_initialized():
                dist.init_process_group("nccl" if self.device.type == "cuda" else "gloo")
                self.owner = True

    @property
    def main(self) -> bool:
        return self.rank == 0

    def barrier(self) -> None:
        if self.world > 1:
            dist.barrier()

    def all_ok(self, ok: bool) -> bool:
        """True when `ok` holds on every rank: ranks that check their inputs independently agree before any of
        them writes, so that one rank's error never leaves the others waiting in a collective."""
        if self.world == 1:
            return ok
        flag = torch.tensor([1 if ok else 0], device=self.device)
        dist.all_reduce(flag, op=dist.ReduceOp.MIN)
        return bool(flag.item())

    def all_max(self, value: int) -> int:
        """The largest of an integer over the ranks."""
        if self.world == 1:
            return value
        t = torch.tensor([value], dtype=torch.int64, device=self.device)
        dist.all_reduce(t, op=dist.ReduceOp.MAX)
        return int(t.item())

    def all_sum(self, *tensors: torch.Tensor) -> list[torch.Tensor]:
        """The sums over ranks of each tensor (in its own dtype, e.g. float64 statistics), on every rank."""
        if self.world == 1:
            return list(tensors)
        out = []
        for t in tensors:
            t = t.to(self.device).clone()
            dist.all_reduce(t, op=dist.ReduceOp.SUM)
            out.append(t)
        return out

    def broadcast(self, t: torch.Tensor) -> torch.Tensor:
        """Rank 0's tensor on every rank (same shape and dtype everywhere)."""
        if self.world == 1:
            return t
        t = t.to(self.device).clone()
        dist.broadcast(t, src=0)
        return t

    def close(self):
        if self.owner:
            dist.destroy_process_group()
            self.owner = False
