"""Several processes through ``torchrun`` (docs/training.md#several-processes-torchrun).

``torchrun --nproc-per-node N -m mmml_core [options]`` (or ``mmml-bench --nproc N ...``,
which calls it) starts N copies of ``mmml-bench``; each finds its rank in the environment
``torchrun`` sets (``RANK``, ``WORLD_SIZE``, ``LOCAL_RANK``) and joins one process group
(NCCL on CUDA, gloo on CPU). The engine then trains one DistributedDataParallel replica per
process:

- every rank builds the same global batches (the same sampler, seed and epoch as one process)
  and trains on its share of each: items ``rank, rank + N, ...`` of the batch. Its loss is
  scaled by ``N * n_rank / n_batch`` so that DDP's gradient average is the mean over the whole
  global batch, whatever the share sizes; a rank whose share is empty (a last batch smaller
  than N) runs the batch's first item with weight 0, so every rank takes part in every step;
- evaluation is sharded the same way and the predictions are gathered, in item order, on
  every rank: all ranks compute the same metrics and take the same decisions (checkpoints,
  early stopping, divergence);
- rank 0 alone writes: the run folder, its log, checkpoints, the resumable state (with every
  rank's random generator) and the tables. A resumed run reads that state on every rank.

One process (no ``torchrun``) is the special case ``world == 1``: nothing here changes it.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Any

import torch

__all__ = ["Dist", "current", "init_from_env", "shutdown"]


@dataclass(frozen=True)
class Dist:
    """This process's place in the run: ``rank`` of ``world`` processes, ``local_rank`` on
    its machine (the CUDA device it uses)."""

    rank: int = 0
    world: int = 1
    local_rank: int = 0

    @property
    def enabled(self) -> bool:
        return self.world > 1

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    def barrier(self) -> None:
        if self.enabled:
            torch.distributed.barrier()

    def all_sum(self, value: torch.Tensor) -> torch.Tensor:
        """The sum of ``value`` over the ranks (a new tensor; ``value`` itself if one)."""
        if not self.enabled:
            return value
        out = value.clone()
        torch.distributed.all_reduce(out)
        return out

    def gather(self, obj: Any) -> list[Any]:
        """Every rank's ``obj``, in rank order, on every rank."""
        if not self.enabled:
            return [obj]
        out: list[Any] = [None] * self.world
        torch.distributed.all_gather_object(out, obj)
        return out

    def broadcast(self, obj: Any) -> Any:
        """Rank 0's ``obj`` on every rank."""
        if not self.enabled:
            return obj
        box = [obj]
        torch.distributed.broadcast_object_list(box, src=0)
        return box[0]


_CURRENT = Dist()


def current() -> Dist:
    """The process group this process belongs to (``Dist()`` when not under torchrun)."""
    return _CURRENT


def launched() -> bool:
    """Whether torchrun started this process with more than one process in the run."""
    return int(os.environ.get("WORLD_SIZE", "1")) > 1


def init_from_env(device: str = "auto") -> Dist:
    """Join torchrun's process group when this process is one of several (a no-op
    otherwise): NCCL when the run uses CUDA, else gloo. ``device`` is ``train.device``."""
    global _CURRENT
    if not launched() or _CURRENT.enabled:
        return _CURRENT
    rank, world = int(os.environ["RANK"]), int(os.environ["WORLD_SIZE"])
    local = int(os.environ.get("LOCAL_RANK", rank))
    cuda = device.startswith("cuda") or (device == "auto" and torch.cuda.is_available())
    if cuda:
        torch.cuda.set_device(local)
    torch.distributed.init_process_group("nccl" if cuda else "gloo")
    _CURRENT = Dist(rank, world, local)
    return _CURRENT


def shutdown() -> None:
    global _CURRENT
    if _CURRENT.enabled and torch.distributed.is_initialized():
        torch.distributed.destroy_process_group()
    _CURRENT = Dist()
