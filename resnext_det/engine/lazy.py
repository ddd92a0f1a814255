"""Training and evaluation from LazyConfig Python files, as Detectron2's
``tools/lazyconfig_train_net.py`` does, with the YAML trainer's features.

A config defines ``model``, ``dataloader`` (``train``, ``test``, ``evaluator``), ``optimizer``,
``lr_multiplier`` and ``train`` (Detectron2's ``configs/common/train.py`` keys, plus ``train.seed``).
As with YAML configs: checkpoints are written atomically; ``--resume`` continues the data order and
the randomness exactly when ``dataloader.train`` is :func:`resumable_train_loader`; the datasets are
checked (``resnext_det/data/validate.py``); CUDA configs run on CPU; bad input is one line.
"""
import logging
import os
import weakref
from typing import List

import torch
from detectron2.config import instantiate
from detectron2.engine import SimpleTrainer, TrainerBase, create_ddp_model, default_setup, \
    default_writers, hooks
from detectron2.evaluation import inference_on_dataset, print_csv_format
from detectron2.utils import comm
from detectron2.utils.logger import setup_logger
from detectron2.utils.registry import locate

from ..checkpoint.model_weights import check_weights_fit
from ..checkpoint.uri import check_weights_file
from ..data import check_dataset_available
from ..data.validate import NamedImageErrors, check_dataset_names
from ..errors import ConfigError
from ..fuse import fuse_for_inference
from ..precision import check_precision, inference_options
from .amp import amp_step_trainer
from .checkpointer import AtomicCheckpointer
from .distributed import cpu_sync_batchnorm, cpu_threads_per_process, ddp_device_ids
from .lazy_config import load_lazy_config, require
from .resumable import ResumableRun, StepSeed
from .trainer import TrainingDivergedError, diverged_message

__all__ = ["LazyTrainer", "build_lazy_model", "check_lazy_inputs", "evaluate", "run_lazy", "setup_lazy"]

logger = logging.getLogger(__name__)

_ROLES = "a config defines model, dataloader, optimizer, lr_multiplier and train, as configs/lazy/ do"


def setup_lazy(args):
    """The config of ``--config-file`` with the trailing ``key=value`` overrides, then Detectron2's
    setup. Without CUDA, ``train.device`` becomes "cpu" (where ``train.amp.enabled`` trains in bf16)."""
    cfg = load_lazy_config(args.config_file, args.opts)
    require(cfg, args.config_file, ["model", "dataloader.test", "train"] if args.eval_only else
            ["model", "dataloader.train", "optimizer", "lr_multiplier", "train"], _ROLES)
    if str(cfg.train.get("device", "cuda")).startswith("cuda") and not torch.cuda.is_available():
        logger.warning("CUDA is not available: running on CPU")
        cfg.train.device = "cpu"
    default_setup(cfg, args)
    setup_logger(cfg.train.output_dir, distributed_rank=comm.get_rank(), name="resnext_det", abbrev_name="rx",
                 enable_propagation=True)
    cpu_threads_per_process(cfg.train.device)
    return cfg


def _dataset_names(loader) -> List[str]:
    names = loader.get("dataset", {}).get("names") if loader is not None else None
    return [names] if isinstance(names, str) else list(names or [])


def check_lazy_inputs(cfg, resume: bool = False) -> None:
    """Fail before any model is built when a dataset or ``train.init_checkpoint`` is missing or does
    not fit; have the datasets checked when loaded, as ``check_inputs`` does for YAML configs."""
    train, test = _dataset_names(cfg.dataloader.get("train")), _dataset_names(cfg.dataloader.get("test"))
    for name in train + test:
        check_dataset_available(name)
    loader = cfg.dataloader.get("train", {})
    mapper, roi_heads = loader.get("mapper", {}), cfg.model.get("roi_heads", {})
    classes = next(((node.num_classes, key) for node, key in ((roi_heads, "model.roi_heads.num_classes"),
                                                               (cfg.model, "model.num_classes"))
                    if "num_classes" in node), None)
    masks = (mapper.get("instance_mask_format", "polygon"), "dataloader.train.mapper.instance_mask_format") \
        if mapper.get("use_instance_mask", False) else None
    check_dataset_names(train, test, filter_empty=loader.get("dataset", {}).get("filter_empty", True),
                        num_classes=classes, mask_format=masks,
                        masks_trained=roi_heads.get("mask_in_features") is not None)
    weights = cfg.train.init_checkpoint
    resuming = resume and os.path.isfile(os.path.join(cfg.train.output_dir, "last_checkpoint"))
    if not weights or resuming:
        return
    bottom_up = cfg.model.get("backbone", {}).get("bottom_up", {})
    preset = bottom_up.get("name") if "name" in bottom_up else None
    arch = f"model.backbone.bottom_up.name={preset!r}" if preset else "model.backbone"
    key = "train.init_checkpoint"
    if "://" in weights:  # torchvision://, timm://, detectron2://, ...: downloaded (once) now
        check_weights_file(weights, lambda: instantiate(cfg.model), arch, key=key, preset=preset,
                           preset_key="model.backbone.bottom_up.name")
        return
    if not os.path.isfile(weights):
        raise ConfigError(f"train.init_checkpoint={weights!r} does not exist; make it with "
                          "tools/convert_pretrained.py, name ImageNet weights by URI (docs/weights.md), "
                          "or set train.init_checkpoint='' to train from scratch")
    check_weights_fit(weights, lambda: instantiate(cfg.model), arch, key=key)


def build_lazy_model(cfg) -> torch.nn.Module:
    """``cfg.model`` on ``train.device``; SyncBN layers become NaiveSyncBatchNorm on CPU."""
    model = instantiate(cfg.model).to(cfg.train.device)
    return cpu_sync_batchnorm(model) if torch.device(cfg.train.device).type == "cpu" else model


def _loader(node, datasets):
    """``instantiate(node)``, with its mapper's image read errors naming the file and the dataset."""
    kwargs = {k: instantiate(v) for k, v in node.items()}
    target = kwargs.pop("_target_")
    target = locate(target) if isinstance(target, str) else target
    if "mapper" in kwargs:
        kwargs["mapper"] = NamedImageErrors(kwargs["mapper"], datasets)
    return target(**kwargs)


def evaluate(cfg, model):
    """COCO metrics of ``model`` on ``dataloader.test`` with ``dataloader.evaluator``; none without an
    evaluator or a test set (``dataloader.test.dataset.names=[]``, as YAML's ``DATASETS.TEST ()``)."""
    names = _dataset_names(cfg.dataloader.get("test"))
    if "evaluator" not in cfg.dataloader or not names:
        return {}
    loader = _loader(cfg.dataloader.test, names)
    results = inference_on_dataset(model, loader, instantiate(cfg.dataloader.evaluator))
    if comm.is_main_process():
        print_csv_format(results)
    return results


class LazyTrainer(ResumableRun, TrainerBase):
    """Detectron2's lazyconfig_train_net loop with the YAML ``Trainer``'s differences: DDP and SyncBN
    on CPU, atomic checkpoints, exact resume, one-line errors for a diverging loss."""

    def __init__(self, cfg):
        super().__init__()
        self.cfg = cfg
        seed = cfg.train.get("seed", -1)
        self.seed = seed if seed >= 0 else comm.shared_random_seed()  # saved in checkpoints
        model = build_lazy_model(cfg)
        cfg.optimizer.params.model = model
        optimizer = instantiate(cfg.optimizer)
        data_loader = _loader(cfg.dataloader.train, _dataset_names(cfg.dataloader.train))
        ddp = dict(cfg.train.get("ddp", {}))
        model = create_ddp_model(model, device_ids=ddp_device_ids(cfg.train.device), **ddp)
        if cfg.train.get("amp", {}).get("enabled", False):  # fp16 with a GradScaler on CUDA, bf16 on CPU (amp.py)
            device_type = torch.device(cfg.train.device).type
            dtype = torch.float16 if device_type == "cuda" else torch.bfloat16
            check_precision(dtype, device_type)
            self._trainer = amp_step_trainer(model, data_loader, optimizer, device_type, dtype, "train.amp")
        else:
            self._trainer = SimpleTrainer(model, data_loader, optimizer)
        self.checkpointer = AtomicCheckpointer(model, cfg.train.output_dir, trainer=weakref.proxy(self))
        self.start_iter = 0
        self.max_iter = cfg.train.max_iter
        self._last_eval_results = None
        self.register_hooks(self.build_hooks())

    model = property(lambda self: self._trainer.model)
    data_loader = property(lambda self: self._trainer.data_loader)
    optimizer = property(lambda self: self._trainer.optimizer)

    def build_hooks(self):
        cfg = self.cfg.train

        def test_and_save_results():
            self._last_eval_results = evaluate(self.cfg, self.model)
            return self._last_eval_results

        main = comm.is_main_process()
        return [
            StepSeed(),
            hooks.IterationTimer(),
            hooks.LRScheduler(scheduler=instantiate(self.cfg.lr_multiplier)),
            hooks.PeriodicCheckpointer(self.checkpointer, **cfg.get("checkpointer", {"period": 5000}))
            if main else None,
            hooks.EvalHook(cfg.get("eval_period", 0), test_and_save_results),
            hooks.PeriodicWriter(default_writers(cfg.output_dir, self.max_iter), period=cfg.get("log_period", 20))
            if main else None,
        ]

    def resume_or_load(self, resume: bool = True) -> None:
        """Continue from ``train.output_dir``'s last checkpoint (``resume``), else load
        ``train.init_checkpoint``'s weights and start at iteration 0."""
        self.checkpointer.resume_or_load(self.cfg.train.init_checkpoint, resume=resume)
        if resume and self.checkpointer.has_checkpoint():
            self.start_iter = self.iter + 1
        if not self.continue_data_stream():
            logger.warning("dataloader.train is not resnext_det's resumable_train_loader: --resume restarts "
                           "its data order")

    def train(self):
        """Train; returns the last evaluation's results (None if there was none)."""
        super().train(self.start_iter, self.max_iter)
        return self._last_eval_results

    def run_step(self):
        self._trainer.iter = self.iter
        try:
            self._trainer.run_step()
        except FloatingPointError as e:
            fix = f"lower optimizer.lr (now {self.cfg.optimizer.lr:g})"
            raise TrainingDivergedError(diverged_message(e, self.iter, fix)) from None

    def state_dict(self):
        return dict(super().state_dict(), _trainer=self._trainer.state_dict())

    def load_state_dict(self, state_dict):
        super().load_state_dict(state_dict)
        self._trainer.load_state_dict(state_dict["_trainer"])


def run_lazy(args):
    """``tools/train_net.py`` for a Python config: train, or with ``--eval-only`` evaluate
    ``train.init_checkpoint`` (the last checkpoint with ``--resume``), as ``--fuse``, ``--precision`` and
    ``--compile`` ask."""
    cfg = setup_lazy(args)
    check_lazy_inputs(cfg, resume=args.resume)
    if args.eval_only:
        model = build_lazy_model(cfg)
        AtomicCheckpointer(model, save_dir=cfg.train.output_dir).resume_or_load(
            cfg.train.init_checkpoint, resume=args.resume)
        fuse = inference_options(args, cfg.train.device)  # --fuse, --precision, --compile
        if fuse is not None:
            fuse_for_inference(model, **fuse)
        return evaluate(cfg, model)
    trainer = LazyTrainer(cfg)
    trainer.resume_or_load(resume=args.resume)
    return trainer.train()
