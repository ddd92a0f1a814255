"""Detectron2's DefaultTrainer with COCO evaluation, dataset checks and CPU fallback."""
import logging
import os
import re

import torch
from detectron2.engine import DefaultTrainer, default_setup
from detectron2.solver.build import get_default_optimizer_params, maybe_add_gradient_clipping

from ..config import OPTIMIZERS, load_config
from ..errors import ConfigError
from ..evaluation import FastCOCOEvaluator
from ..checkpoint.model_weights import check_model_weights
from ..data import DatasetError, DatasetNotFoundError, check_dataset_available, check_datasets
from ..data import validate

__all__ = ["BAD_INPUT", "TrainingDivergedError", "Trainer", "setup_cfg", "check_inputs"]


class TrainingDivergedError(FloatingPointError):
    """A loss or a prediction became NaN or infinite; the message names the iteration and the losses."""


# Errors that mean the user's input is wrong: the tools print their one-line message, no traceback.
BAD_INPUT = (ConfigError, DatasetNotFoundError, FileNotFoundError, DatasetError, TrainingDivergedError)


def check_inputs(cfg, resume: bool = False):
    """Fail before any model is built when a dataset or the MODEL.WEIGHTS file is missing or does not
    fit; have the datasets checked when loaded (resnext_det/data/validate.py)."""
    for name in list(cfg.DATASETS.TRAIN) + list(cfg.DATASETS.TEST):
        check_dataset_available(name)
    check_datasets(cfg)
    weights = cfg.MODEL.WEIGHTS
    resuming = resume and os.path.isfile(os.path.join(cfg.OUTPUT_DIR, "last_checkpoint"))
    if weights and "://" not in weights and not resuming and not os.path.isfile(weights):
        raise ConfigError(f"MODEL.WEIGHTS={weights!r} does not exist; make it with tools/convert_pretrained.py "
                          "(the config's header names the ImageNet weights and the command), or set "
                          "MODEL.WEIGHTS '' to train from scratch")
    if weights and "://" not in weights and not resuming:
        check_model_weights(cfg, weights)


class Trainer(DefaultTrainer):
    """Trains with Detectron2's default loop; evaluates every test set with COCO AP."""

    def run_step(self):
        try:
            super().run_step()
        except FloatingPointError as e:
            raise TrainingDivergedError(_diverged_message(e, self.iter, self.cfg)) from None

    @classmethod
    def build_train_loader(cls, cfg):
        return validate.build_train_loader(cfg)

    @classmethod
    def build_test_loader(cls, cfg, dataset_name):
        return validate.build_test_loader(cfg, dataset_name)

    @classmethod
    def build_evaluator(cls, cfg, dataset_name, output_folder=None):
        output_folder = output_folder or os.path.join(cfg.OUTPUT_DIR, "inference", dataset_name)
        return FastCOCOEvaluator(dataset_name, output_dir=output_folder)

    @classmethod
    def build_optimizer(cls, cfg, model):
        """Detectron2's SGD, or AdamW, as SOLVER.OPTIMIZER says."""
        if cfg.SOLVER.OPTIMIZER == "SGD":
            return super().build_optimizer(cfg, model)
        if cfg.SOLVER.OPTIMIZER != "AdamW":
            raise ConfigError(f"SOLVER.OPTIMIZER={cfg.SOLVER.OPTIMIZER!r} is invalid: valid: {OPTIMIZERS}")
        params = get_default_optimizer_params(
            model, base_lr=cfg.SOLVER.BASE_LR, weight_decay_norm=cfg.SOLVER.WEIGHT_DECAY_NORM,
            bias_lr_factor=cfg.SOLVER.BIAS_LR_FACTOR, weight_decay_bias=cfg.SOLVER.WEIGHT_DECAY_BIAS)
        optimizer = torch.optim.AdamW(params, lr=cfg.SOLVER.BASE_LR, weight_decay=cfg.SOLVER.WEIGHT_DECAY)
        return maybe_add_gradient_clipping(cfg, optimizer)


def _diverged_message(error, iteration, cfg):
    """One line for Detectron2's FloatingPointError: the iteration, the non-finite losses, a hint."""
    bad = re.findall(r"'(\w+)': (?:np\.float\d+\()?(-?inf|nan)\b", str(error))
    what = (f"loss became NaN or infinite at iteration {iteration} ("
            + ", ".join(f"{k}={v}" for k, v in bad) + ")") if bad else \
        f"training diverged at iteration {iteration} ({' '.join(str(error).split())})"
    clip = "" if cfg.SOLVER.CLIP_GRADIENTS.ENABLED else " or enable SOLVER.CLIP_GRADIENTS"
    return (f"{what}; lower SOLVER.BASE_LR (now {cfg.SOLVER.BASE_LR:g}){clip}, "
            "and check the dataset's boxes")


def setup_cfg(args):
    """Config from ``--config-file`` and trailing ``KEY VALUE`` overrides, then Detectron2's setup.

    Without CUDA, MODEL.DEVICE becomes "cpu" whatever the config says, so GPU configs run here.
    """
    cfg = load_config(args.config_file, args.opts)
    if cfg.MODEL.DEVICE.startswith("cuda") and not torch.cuda.is_available():
        logging.getLogger(__name__).warning("CUDA is not available: running on CPU")
        cfg.MODEL.DEVICE = "cpu"
    cfg.freeze()
    default_setup(cfg, args)
    return cfg
