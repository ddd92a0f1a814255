"""Training and evaluation glue around Detectron2's engine: the YAML trainer (trainer.py) and the
LazyConfig one (lazy.py)."""
from .lazy import LazyTrainer, run_lazy
from .trainer import BAD_INPUT, Trainer, check_inputs, setup_cfg

__all__ = ["BAD_INPUT", "LazyTrainer", "Trainer", "check_inputs", "run_lazy", "setup_cfg"]
