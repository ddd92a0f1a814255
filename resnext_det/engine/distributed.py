"""Multi-process training on CPU: Detectron2's ``launch`` starts the processes and uses gloo when
CUDA is not available; two things around it need CPU-specific care, handled here.

* ``nn.SyncBatchNorm`` (what Detectron2's ``"SyncBN"`` builds) refuses CPU tensors once a process
  group exists. :func:`cpu_sync_batchnorm` swaps it for Detectron2's ``NaiveSyncBatchNorm``, which
  averages per-process statistics with ``all_reduce`` and so works with gloo.
* ``DistributedDataParallel`` must get ``device_ids=None`` for a CPU module
  (:func:`ddp_device_ids`).
"""
import logging
import os

import torch
from detectron2.layers import NaiveSyncBatchNorm
from detectron2.utils import comm
from torch import nn

__all__ = ["cpu_sync_batchnorm", "ddp_device_ids", "cpu_threads_per_process"]

logger = logging.getLogger(__name__)


def cpu_sync_batchnorm(model: nn.Module) -> nn.Module:
    """Replace every ``nn.SyncBatchNorm`` in ``model`` (in place) with ``NaiveSyncBatchNorm``,
    keeping its parameters and running statistics. Returns ``model``.

    ``stats_mode="N"``: each process's mean and mean of squares are weighted by its number of
    images (``nn.SyncBatchNorm`` weights by images x pixels: the same when all processes' images
    have one size, as with fixed-size inputs), and a process with no images is allowed.
    """
    count = 0

    def convert(module):
        nonlocal count
        for name, child in module.named_children():
            if isinstance(child, nn.SyncBatchNorm):
                tensors = list(child.parameters()) + list(child.buffers())
                new = NaiveSyncBatchNorm(child.num_features, eps=child.eps, momentum=child.momentum,
                                         affine=child.affine, track_running_stats=child.track_running_stats,
                                         stats_mode="N", device=tensors[0].device if tensors else None)
                new.load_state_dict(child.state_dict())
                new.train(child.training)
                for p, q in zip(child.parameters(), new.parameters()):
                    q.requires_grad_(p.requires_grad)
                setattr(module, name, new)
                count += 1
            else:
                convert(child)

    convert(model)
    if count:
        logger.info("SyncBN on CPU: %d nn.SyncBatchNorm layers (CUDA only) replaced by Detectron2's "
                    "NaiveSyncBatchNorm (all_reduce of per-process statistics; works with gloo)", count)
    return model


def ddp_device_ids(device: str):
    """``device_ids`` for ``DistributedDataParallel``: this process's GPU, or None on CPU."""
    return None if torch.device(device).type == "cpu" else [comm.get_local_rank()]


def cpu_threads_per_process(device: str) -> None:
    """With several training processes on one machine's CPU, give each an equal share of the cores
    (each would otherwise start one thread per core). Does nothing when OMP_NUM_THREADS is set."""
    if torch.device(device).type != "cpu" or comm.get_world_size() == 1 or "OMP_NUM_THREADS" in os.environ:
        return
    local = comm.get_local_size()
    threads = max(1, (os.cpu_count() or 1) // local)
    torch.set_num_threads(threads)
    logger.info("%d processes on this machine's CPU: %d torch threads each", local, threads)
