"""The plugin's config node, MODEL.RESNEXT. Only the registered builders read it."""
import difflib
import os
from typing import Optional, Sequence

import yaml
from detectron2.config import CfgNode as CN
from detectron2.config import get_cfg

from .errors import ConfigError

# Keys whose "unset" value means "as the ARCH preset says".
ARCH_OVERRIDES = {
    "DEPTH": 0,
    "NUM_GROUPS": 0,
    "WIDTH_PER_GROUP": 0,
    "RADIX": 0,
    "ATTENTION": "",
    "SE_REDUCTION": 0,
}


def add_resnext_config(cfg):
    """Add MODEL.RESNEXT to a Detectron2 config (idempotent). Call before merging a YAML file."""
    if "RESNEXT" in cfg.MODEL:
        return cfg
    r = cfg.MODEL.RESNEXT = CN()
    # Named preset, one of resnext_det.list_backbones(): resnet50, resnext101_32x8d, resnest50, ...
    r.ARCH = "resnext50_32x4d"
    # Overrides of the preset; the unset value (0 or "") keeps the preset's.
    r.DEPTH = 0  # blocks per stage from the depth table: 50, 101, 152, 200, 269
    r.NUM_GROUPS = 0  # cardinality C of the 3x3 (1 for ResNet and ResNeSt)
    r.WIDTH_PER_GROUP = 0  # d; res2's bottleneck width is C*d, doubled in each later stage
    r.RADIX = 0  # split-attention radix (resnest* presets only)
    r.ATTENTION = ""  # after each block's last norm: "none" or "se" (squeeze-excitation)
    r.SE_REDUCTION = 0  # squeeze-excitation channel reduction (preset: 16)
    # Options every preset honours. Stage freezing is Detectron2's MODEL.BACKBONE.FREEZE_AT.
    r.NORM = "FrozenBN"  # FrozenBN, BN, SyncBN or GN
    r.OUT_FEATURES = ["res2", "res3", "res4", "res5"]  # features returned (any of stem, res2..res5)
    # Stride on the first 1x1 of a strided block (MSRA / Caffe2 / Detectron weights) instead of the
    # 3x3 (the ResNeXt paper, torchvision, timm, ResNeSt weights).
    r.STRIDE_IN_1X1 = False
    r.RES5_DILATION = 1  # 1, or 2 for DC5 (res5 at stride 16, dilated)
    r.ZERO_INIT_RESIDUAL = False  # zero-init the last norm of each block (needs BN, SyncBN or GN)
    return cfg


OPTIMIZERS = ("SGD", "AdamW")


def add_solver_config(cfg):
    """Add SOLVER.OPTIMIZER (the optimizer ``Trainer.build_optimizer`` builds) and SOLVER.AMP.PRECISION
    (idempotent)."""
    if "OPTIMIZER" not in cfg.SOLVER:
        # "SGD" (Detectron2's default, with SOLVER.MOMENTUM) or "AdamW" (betas 0.9, 0.999).
        # Both use SOLVER.BASE_LR, WEIGHT_DECAY*, BIAS_LR_FACTOR and CLIP_GRADIENTS.
        cfg.SOLVER.OPTIMIZER = "SGD"
    if "PRECISION" not in cfg.SOLVER.AMP:
        # The autocast dtype of SOLVER.AMP.ENABLED training: "bf16" or "fp16" (CUDA only); "" is the
        # device's default: bf16 on CPU (no GradScaler), fp16 on CUDA (Detectron2's AMPTrainer).
        cfg.SOLVER.AMP.PRECISION = ""
    return cfg


def _all_keys(node, prefix=""):
    for key, value in node.items():
        if isinstance(value, CN):
            yield from _all_keys(value, f"{prefix}{key}.")
        else:
            yield f"{prefix}{key}"


def _unknown_key_error(where: str, key: str, cfg) -> ConfigError:
    close = difflib.get_close_matches(key, list(_all_keys(cfg)), n=3, cutoff=0.6)
    hint = f"; did you mean {' or '.join(close)}?" if close else "; see resnext_det/config.py and Detectron2's defaults"
    return ConfigError(f"{where}: unknown config key {key}{hint}")


def load_config(config_file: Optional[str] = None, opts: Sequence[str] = ()) -> CN:
    """Detectron2's defaults + MODEL.RESNEXT + SOLVER.OPTIMIZER, then a YAML file, then ``KEY VALUE`` overrides.

    Every failure (missing file, invalid YAML, unknown key, odd override list, wrong value type)
    raises a one-line ConfigError that names the file or key.
    """
    cfg = add_solver_config(add_resnext_config(get_cfg()))
    if config_file:
        if not os.path.isfile(config_file):
            raise ConfigError(f"config file {config_file!r} does not exist; pass a YAML file, "
                              "e.g. --config-file configs/faster_rcnn_X101_32x8d_FPN.yaml")
        try:
            cfg.merge_from_file(config_file)
        except KeyError as e:
            key = str(e.args[0]).replace("Non-existent config key: ", "")
            raise _unknown_key_error(config_file, key, cfg) from None
        except yaml.YAMLError as e:
            first = " ".join(str(e).split())
            raise ConfigError(f"{config_file} is not valid YAML: {first}") from None
    opts = list(opts)
    if len(opts) % 2:
        raise ConfigError(f"overrides must be KEY VALUE pairs; {opts[-1]!r} has no value")
    try:
        cfg.merge_from_list(opts)
    except AssertionError as e:
        key = str(e).replace("Non-existent key: ", "")
        raise _unknown_key_error("command-line override", key, cfg) from None
    except ValueError as e:
        raise ConfigError(f"command-line override: {e}") from None
    return cfg
