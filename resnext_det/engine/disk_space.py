"""Room for the checkpoints before training starts, rather than a failed write hours later.

A checkpoint holds the model's tensors and the optimizer's state (SGD's momentum: one tensor per
trained parameter; AdamW: two). Before the first step: less free space than one checkpoint stops the
run with one line; less than all the checkpoints the run will write (every SOLVER.CHECKPOINT_PERIOD
and the final one; Detectron2 keeps them all) is a warning.
"""
import logging

import torch
from detectron2.engine import HookBase
from detectron2.utils import comm

from ..paths import check_free_space, free_bytes, human_bytes
from .stop_together import agree

__all__ = ["checkpoint_bytes", "DiskSpaceCheck"]

logger = logging.getLogger(__name__)


def checkpoint_bytes(model: torch.nn.Module, optimizer_name: str = "SGD") -> int:
    """About the size of one checkpoint of ``model`` (the pickle's overhead is small)."""
    model = getattr(model, "module", model)
    tensors = sum(t.numel() * t.element_size() for t in model.state_dict().values())
    trained = sum(p.numel() * p.element_size() for p in model.parameters() if p.requires_grad)
    return tensors + trained * (2 if optimizer_name == "AdamW" else 1)


class DiskSpaceCheck(HookBase):
    """Checks OUTPUT_DIR's free space before training (in every process, which agree)."""

    def before_train(self):
        failure = None
        cfg = self.trainer.cfg
        if comm.is_main_process():
            size = checkpoint_bytes(self.trainer.model, cfg.SOLVER.get("OPTIMIZER", "SGD"))
            try:
                check_free_space(cfg.OUTPUT_DIR, size, "OUTPUT_DIR", "one checkpoint of this model")
            except Exception as e:  # PathError, or OSError from the file system
                failure = e
            else:
                remaining = max(0, cfg.SOLVER.MAX_ITER - self.trainer.start_iter)
                count = remaining // max(1, cfg.SOLVER.CHECKPOINT_PERIOD) + 1
                free = free_bytes(cfg.OUTPUT_DIR)
                if free < count * size:
                    logger.warning("OUTPUT_DIR=%r has %s free: room for %d of the %d checkpoints of %s this run will "
                                   "write (every SOLVER.CHECKPOINT_PERIOD=%d iterations, and the final one); free "
                                   "space or delete old checkpoints as it runs", cfg.OUTPUT_DIR, human_bytes(free),
                                   free // size, count, human_bytes(size), cfg.SOLVER.CHECKPOINT_PERIOD)
        agree(failure)
