"""Mixed-precision training (SOLVER.AMP): bf16 autocast on CPU, Detectron2's AMPTrainer on CUDA.

Detectron2's ``AMPTrainer`` needs CUDA and a GradScaler (fp16 gradients underflow). bf16 has fp32's
exponent range, so on CPU the forward pass simply runs under ``torch.autocast("cpu", bfloat16)``:
no scaler, and the backward pass and optimizer step stay outside autocast, in the weights' fp32.
"""
import logging

import torch
from detectron2.engine import AMPTrainer, SimpleTrainer

from ..errors import ConfigError
from ..precision import check_precision, precision_dtype, precision_name

__all__ = ["AutocastTrainer", "amp_dtype", "amp_step_trainer", "build_step_trainer"]

logger = logging.getLogger(__name__)


def amp_dtype(cfg) -> torch.dtype:
    """SOLVER.AMP.PRECISION as a dtype ("": bf16 on CPU, fp16 on CUDA as Detectron2); checked against
    MODEL.DEVICE."""
    device = torch.device(cfg.MODEL.DEVICE)
    name = cfg.SOLVER.AMP.PRECISION or ("fp16" if device.type == "cuda" else "bf16")
    try:
        dtype = precision_dtype(name)
    except ConfigError:
        raise ConfigError(f"SOLVER.AMP.PRECISION={name!r} is invalid: use '' (the device's default), "
                          "'bf16' or 'fp16'") from None
    if dtype == torch.float32:
        raise ConfigError("SOLVER.AMP.PRECISION='fp32' is no mixed precision: set SOLVER.AMP.ENABLED False instead")
    try:
        check_precision(dtype, device)
    except ConfigError as e:
        raise ConfigError(f"SOLVER.AMP.PRECISION={name!r} on {device.type}: {e}") from None
    return dtype


class _AutocastCall:
    """The model, called under autocast; SimpleTrainer.run_step reads only ``training`` and calls it."""

    def __init__(self, model, device_type, dtype):
        self.model, self.device_type, self.dtype = model, device_type, dtype

    @property
    def training(self):
        return self.model.training

    def __call__(self, *args, **kwargs):
        with torch.autocast(self.device_type, dtype=self.dtype):
            return self.model(*args, **kwargs)


class AutocastTrainer(SimpleTrainer):
    """Detectron2's ``SimpleTrainer`` with the forward pass (model and losses) under
    ``torch.autocast(device_type, dtype)``; backward and the optimizer step run outside it."""

    def __init__(self, model, data_loader, optimizer, device_type="cpu", dtype=torch.bfloat16, **kwargs):
        super().__init__(model, data_loader, optimizer, **kwargs)
        self.device_type, self.dtype = device_type, dtype

    def run_step(self):
        model = self.model
        self.model = _AutocastCall(model, self.device_type, self.dtype)  # only for this step's forward
        try:
            super().run_step()
        finally:
            self.model = model


def build_step_trainer(cfg, model, data_loader, optimizer) -> SimpleTrainer:
    """The object running each training step: SimpleTrainer, or with SOLVER.AMP.ENABLED an
    :func:`amp_step_trainer` in SOLVER.AMP.PRECISION's dtype."""
    if not cfg.SOLVER.AMP.ENABLED:
        return SimpleTrainer(model, data_loader, optimizer)
    return amp_step_trainer(model, data_loader, optimizer, torch.device(cfg.MODEL.DEVICE).type, amp_dtype(cfg),
                            "SOLVER.AMP")


def amp_step_trainer(model, data_loader, optimizer, device_type: str, dtype: torch.dtype, key: str) -> SimpleTrainer:
    """Mixed-precision steps in ``dtype``: Detectron2's AMPTrainer on CUDA, an AutocastTrainer (no
    GradScaler) elsewhere; ``key`` names the setting that asked for it, in the log."""
    logger.info("%s: training under %s autocast on %s%s", key, precision_name(dtype), device_type,
                " (Detectron2's AMPTrainer, with a GradScaler)" if device_type == "cuda" else ", no GradScaler")
    if device_type == "cuda":
        return AMPTrainer(model, data_loader, optimizer, precision=dtype)
    return AutocastTrainer(model, data_loader, optimizer, device_type=device_type, dtype=dtype)
