"""Training and evaluation glue around Detectron2's engine."""
from .trainer import Trainer, check_inputs, setup_cfg

__all__ = ["Trainer", "check_inputs", "setup_cfg"]
