"""The plugin's config keys: MODEL.RESNEXT, which only the registered builders read, and SOLVER.OPTIMIZER
and SOLVER.AMP.PRECISION, which the trainer reads. ``add_resnext_config`` adds them all to a Detectron2
config, so every shipped YAML merges into ``get_cfg()``; ``load_config`` also checks files and values."""
import difflib
import os
import re
from typing import Optional, Sequence

from detectron2.config import CfgNode as CN
from detectron2.config import get_cfg

from .config_checks import (check_ranges, check_value, check_values, check_yaml_chain, code_in_yaml_error, decode,
                            find_key, pairs, short)
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
    """Add MODEL.RESNEXT, SOLVER.OPTIMIZER and SOLVER.AMP.PRECISION (every key a shipped YAML sets that
    Detectron2's ``get_cfg()`` lacks) to a Detectron2 config (idempotent). Call before merging a YAML file."""
    add_solver_config(cfg)
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
    # Deformable 3x3 (DCN) as Detectron2's MODEL.RESNETS.DEFORM_* keys, without its compiled ops:
    # on for res2..res5 (e.g. [False, True, True, True] for res3-res5); plain / grouped 3x3 only.
    r.DEFORM_ON_PER_STAGE = [False, False, False, False]
    r.DEFORM_MODULATED = False  # True: DCNv2, a learned mask weights each sampling point
    r.DEFORM_NUM_GROUPS = 1  # offset groups: channel groups that get their own offsets
    return cfg


OPTIMIZERS = ("SGD", "AdamW")


def add_solver_config(cfg):
    """Add SOLVER.OPTIMIZER (the optimizer ``Trainer.build_optimizer`` builds) and SOLVER.AMP.PRECISION
    (idempotent; ``add_resnext_config`` calls it)."""
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
    shown = key if re.fullmatch(r"[\w.]+", key) else short(key)
    return ConfigError(f"{where}: unknown config key {shown}{hint}")


def load_config(config_file: Optional[str] = None, opts: Sequence[str] = ()) -> CN:
    """Detectron2's defaults + MODEL.RESNEXT + SOLVER.OPTIMIZER, then a YAML file, then ``KEY VALUE`` overrides.

    Every failure (missing, unreadable or empty file, a ``_BASE_`` that is missing or loops, invalid
    YAML, unknown key, odd override list, a value of the wrong type or out of range) raises a one-line
    ConfigError that names the file or key (config_checks.py).
    """
    cfg = add_resnext_config(get_cfg())
    if config_file:
        _merge_file(cfg, config_file)
    for key, text in pairs(opts):
        if cfg.key_is_deprecated(key):
            continue
        if cfg.key_is_renamed(key):
            raise ConfigError(f"command-line override: {key} was renamed in Detectron2; see its config/defaults.py")
        node, leaf = find_key(cfg, key, lambda k: _unknown_key_error("command-line override", k, cfg))
        value = decode(text)
        check_value("command-line override", key, value, node[leaf])
        if isinstance(value, (list, tuple)) and isinstance(node[leaf], (list, tuple)):
            value = type(node[leaf])(value)
        node[leaf] = value
    check_ranges(cfg)
    return cfg


def _merge_file(cfg, config_file: str) -> None:
    """Merge a YAML file (and its ``_BASE_`` chain) into ``cfg``. Every local file of the chain is read with
    ``yaml.SafeLoader`` first (check_yaml_chain), and Detectron2 reads it with ``allow_unsafe=False``
    (also a ``_BASE_`` given as a URL): a config is data, a Python tag in it is refused, never run."""
    import yaml

    if not config_file.endswith(".py"):  # (Python configs are LazyConfig's)
        check_yaml_chain(config_file)
    try:
        data = CN.load_yaml_with_base(config_file, allow_unsafe=False)
    except yaml.constructor.ConstructorError as e:  # in a file check_yaml_chain does not read (a URL)
        raise code_in_yaml_error(_yaml_file(e, config_file), e) from None
    except Exception as e:  # what check_yaml_chain does not know: e.g. a _BASE_ given as a URL
        raise ConfigError(f"{config_file} could not be read: {type(e).__name__}: {_one_line(e)}") from None
    if not isinstance(data, dict):
        raise ConfigError(f"config file {config_file!r} holds a YAML {type(data).__name__}, not a mapping of config keys")
    check_values(config_file, data, cfg, unknown=lambda k: _unknown_key_error(config_file, k, cfg))
    try:
        cfg.merge_from_file(config_file, allow_unsafe=False)
    except KeyError as e:
        key = str(e.args[0]).replace("Non-existent config key: ", "")
        raise _unknown_key_error(config_file, key, cfg) from None
    except yaml.constructor.ConstructorError as e:
        raise code_in_yaml_error(_yaml_file(e, config_file), e) from None
    except Exception as e:  # Detectron2's own checks (e.g. a key it renamed)
        raise ConfigError(f"{config_file}: {type(e).__name__}: {_one_line(e)}") from None


def _yaml_file(error, default: str) -> str:
    """The file a YAML error's mark names (a ``_BASE_`` of ``default``), else ``default``."""
    mark = getattr(error, "problem_mark", None)
    name = getattr(mark, "name", "") or ""
    return name if name and not name.startswith("<") else default


def _one_line(e: Exception) -> str:
    text = " ".join(str(e).split())
    return text if len(text) <= 300 else text[:297] + "..."
