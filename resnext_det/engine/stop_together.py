"""With several processes, bad input or a NaN loss found by any one of them stops all of them at the
same step, with the same error.

Without this, the process that found the problem exits and the others wait in their next collective
operation (gradient all-reduce, SyncBN): on one machine the launcher then kills them, on several
machines they hang until the process group times out (30 minutes by default). Detectron2 also checks
the loss only in the main process.

Two agreements per training step, where every process is sure to arrive (a one-element all-reduce
each, only with more than one process): after a process's batch is loaded (a DatasetError from its
data loader), and at the end of the step (the NaN check, which Detectron2 makes in the main process
after gathering every process's losses). If any process failed, all raise the error of the
lowest-ranked one that failed.
"""
from typing import Optional

import torch
import torch.distributed as dist
from detectron2.utils import comm

__all__ = ["AgreeingLoader", "agree"]


def agree(failure: Optional[BaseException]) -> None:
    """Every process calls this at the same point with its failure (or None); if any process failed,
    every process raises the failure of the lowest-ranked one that failed."""
    if comm.get_world_size() == 1:
        if failure is not None:
            raise failure
        return
    device = torch.device("cuda", torch.cuda.current_device()) if dist.get_backend() == "nccl" else torch.device("cpu")
    flag = torch.tensor([0 if failure is None else 1], device=device)
    dist.all_reduce(flag, op=dist.ReduceOp.MAX)
    if not flag.item():
        return
    failures = comm.all_gather(failure)  # exceptions pickle with their type and message
    rank = next(r for r, f in enumerate(failures) if f is not None)
    raise failure if rank == comm.get_rank() else failures[rank]  # (one's own keeps its traceback, for the log)


class AgreeingLoader:
    """A training data loader whose every batch is agreed on (:func:`agree`): an error of the plugin's
    types (``errors``) raised while loading a process's batch stops every process. Other attributes
    are the wrapped loader's."""

    def __init__(self, loader, errors: tuple):
        self.loader = loader
        self.errors = errors

    def __iter__(self):
        iterator = iter(self.loader)
        while True:
            failure, batch = None, None
            try:
                batch = next(iterator)
            except StopIteration:
                return
            except self.errors as e:
                failure = e
            agree(failure)
            yield batch

    def __len__(self):
        return len(self.loader)

    def __getattr__(self, name):
        return getattr(self.loader, name)
