"""Detectron2's DefaultTrainer with COCO evaluation, dataset checks and CPU fallback."""
import logging
import os
import re
import sys
import weakref

import torch
from detectron2.engine import DefaultTrainer, TrainerBase, create_ddp_model, default_setup, hooks
from detectron2.solver.build import get_default_optimizer_params, maybe_add_gradient_clipping
from detectron2.utils import comm
from detectron2.utils.logger import setup_logger

from ..config import OPTIMIZERS, load_config
from ..config_checks import check_roi_heads
from ..errors import ConfigError
from ..evaluation import FastCOCOEvaluator
from ..checkpoint import check_weights_uri
from ..checkpoint.model_weights import check_model_weights
from ..data import DatasetError, DatasetNotFoundError, check_dataset_available, check_datasets
from ..data import validate
from ..paths import readable_file, writable_dir
from .amp import amp_dtype, build_step_trainer
from .checkpointer import AtomicCheckpointer
from .disk_space import DiskSpaceCheck
from .distributed import cpu_sync_batchnorm, cpu_threads_per_process, ddp_device_ids
from .exits import keep_tracebacks_in_log_file
from .resumable import ResumableRun, StepSeed, build_resumable_train_loader
from .stop_together import AgreeingLoader, agree
from .writers import strict_writers

__all__ = ["BAD_INPUT", "TrainingDivergedError", "Trainer", "setup_cfg", "check_inputs"]

logger = logging.getLogger(__name__)


class TrainingDivergedError(FloatingPointError):
    """A loss or a prediction became NaN or infinite; the message names the iteration and the losses."""


# Errors that mean the user's input is wrong: the tools print their one-line message, no traceback.
BAD_INPUT = (ConfigError, DatasetNotFoundError, FileNotFoundError, DatasetError, TrainingDivergedError)


def check_inputs(cfg, resume: bool = False):
    """Fail before any model is built when the ROI heads do not fit the backbone (check_roi_heads),
    OUTPUT_DIR cannot be written, or a dataset or the MODEL.WEIGHTS file is missing or does not fit (a URI's
    file is downloaded and converted here); have the datasets checked when loaded
    (resnext_det/data/validate.py)."""
    check_roi_heads(cfg)
    writable_dir(cfg.OUTPUT_DIR, "OUTPUT_DIR", "name a folder that can be written (it is created if missing)")
    for name in list(cfg.DATASETS.TRAIN) + list(cfg.DATASETS.TEST):
        check_dataset_available(name)
    check_datasets(cfg)
    if cfg.SOLVER.AMP.ENABLED:
        amp_dtype(cfg)  # a dtype the device cannot train in
    weights = cfg.MODEL.WEIGHTS
    resuming = resume and os.path.isfile(os.path.join(cfg.OUTPUT_DIR, "last_checkpoint"))
    if weights and "://" in weights and not resuming:
        check_weights_uri(cfg, weights)  # torchvision://, timm://, detectron2://, ...: downloaded (once) now
    if weights and "://" not in weights and not resuming:
        readable_file(weights, "MODEL.WEIGHTS", "make it with tools/convert_pretrained.py, name ImageNet weights "
                                                "by URI instead (e.g. torchvision://resnext101_32x8d; docs/weights.md), "
                                                "or set MODEL.WEIGHTS '' to train from scratch")
        check_model_weights(cfg, weights)


class Trainer(ResumableRun, DefaultTrainer):
    """Trains with Detectron2's default loop; evaluates every test set with COCO AP.

    Differences from DefaultTrainer: DDP and SyncBN work on CPU (gloo), SOLVER.AMP trains in bf16 on
    CPU (amp.py), checkpoints are written atomically, and ``--resume`` continues the data order and
    randomness exactly (resumable.py).
    """

    def __init__(self, cfg):
        # DefaultTrainer.__init__, with the changes above.
        TrainerBase.__init__(self)
        if not logging.getLogger("detectron2").isEnabledFor(logging.INFO):
            setup_logger()
        cfg = DefaultTrainer.auto_scale_workers(cfg, comm.get_world_size())
        self.seed = cfg.SEED if cfg.SEED >= 0 else comm.shared_random_seed()  # saved in checkpoints
        model = self.build_model(cfg)
        optimizer = self.build_optimizer(cfg, model)
        data_loader = self.build_train_loader(cfg, seed=self.seed)
        if comm.get_world_size() > 1:  # a process's bad batch stops every process (stop_together.py)
            data_loader = AgreeingLoader(data_loader, BAD_INPUT)
        model = create_ddp_model(model, broadcast_buffers=False, device_ids=ddp_device_ids(cfg.MODEL.DEVICE))
        self._trainer = build_step_trainer(cfg, model, data_loader, optimizer)
        self.scheduler = self.build_lr_scheduler(cfg, optimizer)
        self.checkpointer = AtomicCheckpointer(model, cfg.OUTPUT_DIR, trainer=weakref.proxy(self))
        self.start_iter = 0
        self.max_iter = cfg.SOLVER.MAX_ITER
        self.cfg = cfg
        self.register_hooks(self.build_hooks())

    def build_hooks(self):
        return [StepSeed(), DiskSpaceCheck()] + super().build_hooks()

    def build_writers(self):
        return strict_writers(self.cfg.OUTPUT_DIR, self.max_iter)

    def resume_or_load(self, resume=True):
        super().resume_or_load(resume=resume)
        self.continue_data_stream()

    def after_train(self):
        if sys.exc_info()[1] is None:
            return super().after_train()
        # Stopped by an error (also at the last iteration): the logs are written, but the failed model is
        # neither saved as model_final nor evaluated.
        self.storage.iter = self.iter
        for hook in self._hooks:
            if isinstance(hook, (hooks.IterationTimer, hooks.PeriodicWriter)):
                hook.after_train()

    @classmethod
    def build_model(cls, cfg):
        check_roi_heads(cfg)  # Detectron2's Res5ROIHeads over build_resnext_backbone: one line, no model
        model = super().build_model(cfg)
        return cpu_sync_batchnorm(model) if torch.device(cfg.MODEL.DEVICE).type == "cpu" else model

    def run_step(self):
        failure = None
        try:
            super().run_step()
        except FloatingPointError as e:  # raised by the main process only: every process stops with it
            clip = "" if self.cfg.SOLVER.CLIP_GRADIENTS.ENABLED else " or enable SOLVER.CLIP_GRADIENTS"
            fix = f"lower SOLVER.BASE_LR (now {self.cfg.SOLVER.BASE_LR:g}){clip}"
            failure = TrainingDivergedError(diverged_message(e, self.iter, fix))
        agree(failure)

    @classmethod
    def build_train_loader(cls, cfg, seed=None):
        """resumable.py's loader for DATALOADER.SAMPLER_TRAIN "TrainingSampler", else Detectron2's
        (whose data order restarts on resume). ``seed``: of the data order (default: cfg.SEED)."""
        if cfg.DATALOADER.SAMPLER_TRAIN != "TrainingSampler":
            logger.warning("DATALOADER.SAMPLER_TRAIN=%s: --resume restarts its data order",
                           cfg.DATALOADER.SAMPLER_TRAIN)
            return validate.build_train_loader(cfg)
        if seed is None:
            seed = cfg.SEED if cfg.SEED >= 0 else comm.shared_random_seed()
        return build_resumable_train_loader(cfg, seed, mapper=validate.train_mapper(cfg))

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


def diverged_message(error, iteration, fix):
    """One line for Detectron2's FloatingPointError: the iteration, the non-finite losses, ``fix``."""
    bad = re.findall(r"'(\w+)': (?:np\.float\d+\()?(-?inf|nan)\b", str(error))
    what = (f"loss became NaN or infinite at iteration {iteration} ("
            + ", ".join(f"{k}={v}" for k, v in bad) + ")") if bad else \
        f"training diverged at iteration {iteration} ({' '.join(str(error).split())})"
    return f"{what}; {fix}, and check the dataset's boxes"


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
    # This package's log lines beside Detectron2's: on screen (rank 0) and in OUTPUT_DIR/log.txt*.
    setup_logger(cfg.OUTPUT_DIR, distributed_rank=comm.get_rank(), name="resnext_det", abbrev_name="rx",
                 enable_propagation=True)
    keep_tracebacks_in_log_file()  # the tools print one line for these errors; log.txt keeps the traceback
    cpu_threads_per_process(cfg.MODEL.DEVICE)
    return cfg
