"""Training and evaluation glue around Detectron2's engine."""
from .trainer import BAD_INPUT, Trainer, check_inputs, setup_cfg

__all__ = ["BAD_INPUT", "Trainer", "check_inputs", "setup_cfg"]
