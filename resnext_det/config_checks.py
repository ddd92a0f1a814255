"""Checks of config files (the ``_BASE_`` chain) and of config values, with one-line ConfigErrors.

Detectron2 (yacs) merges a value when its Python type equals the default's (a list for a tuple is
converted); it does not look inside lists, lets ``None`` through, and fails on odd files with
exceptions from deep inside (a ``_BASE_`` loop recurses until Python gives up). Here:

* every file of the chain is a readable, UTF-8, non-empty YAML mapping, read with ``yaml.SafeLoader``:
  configs are data, so a Python tag (``!!python/object/apply:...``, which Detectron2's loader would run
  with ``yaml.unsafe_load``) is refused, naming the file and line; ``_BASE_`` is a path or a list of
  paths (relative to the file that names it, as Detectron2 resolves them); no loops;
* a value has the default's type (list and tuple interchangeable; ``None`` only where the default is
  None), the elements of a list have the kind of the default's elements (numbers, strings, true/false,
  lists), and numbers are finite;
* the values Detectron2 reads without checking (batch size, iterations, sizes, device, ...) are in
  their range (:data:`VALUE_RULES`);
* the ROI heads a full model would build fit this plugin's backbone (:func:`check_roi_heads`, called
  where a model is built: ``resnext_det.build_model``, ``Trainer.build_model``, ``check_inputs``; not
  by the backbone builders, so ``build_backbone`` works from Detectron2's defaults).
"""
import math
import os
from typing import Iterable, List, Optional

import yaml

from .errors import ConfigError, PathError
from .paths import is_local, readable_file

__all__ = ["check_yaml_chain", "code_in_yaml_error", "check_value", "check_values", "check_roi_heads", "decode",
           "find_key", "pairs", "short"]

BASE_KEY = "_BASE_"


def short(value, limit: int = 60) -> str:
    """repr of ``value`` on one line, at most ``limit`` characters."""
    text = " ".join(repr(value).split())
    return text if len(text) <= limit else text[: limit - 3] + "..."


def _resolve_base(base: str, config_file: str) -> str:
    """The file a ``_BASE_`` entry names, resolved as fvcore's CfgNode does."""
    if base.startswith("~"):
        base = os.path.expanduser(base)
    if not base.startswith(("/", "https://", "http://")):
        base = os.path.join(os.path.dirname(config_file), base)
    return base


def _read_yaml(path: str):
    try:
        with open(path, encoding="utf-8") as f:
            text = f.read()
    except UnicodeDecodeError:
        raise ConfigError(f"config file {path!r} is not UTF-8 text; is it a YAML config?") from None
    try:
        return yaml.safe_load(text)
    except yaml.constructor.ConstructorError as e:  # a Python tag (Detectron2 would run it with unsafe_load)
        raise code_in_yaml_error(path, e) from None
    except yaml.YAMLError as e:
        raise ConfigError(f"{path} is not valid YAML: {' '.join(str(e).split())}") from None


def code_in_yaml_error(path: str, error: yaml.constructor.ConstructorError) -> ConfigError:
    """The one line for a YAML construct that ``yaml.SafeLoader`` refuses (``!!python/object/apply:...`` and
    other Python or unknown tags): configs are data, the file is not read further."""
    mark = error.problem_mark or error.context_mark
    where = f"{path}, line {mark.line + 1}" if mark is not None else path
    tag = " ".join(str(error.problem or "").split())
    return ConfigError(f"{where}: {tag or 'a construct YAML safe loading refuses'}; configs are data, not code: "
                       "write the value itself (a number, string or list) instead of the tag")


def check_yaml_chain(config_file: str, _chain: tuple = ()) -> List[str]:
    """Check ``config_file`` and every file its ``_BASE_`` names (recursively). Returns the files, the
    given one first. Raises ConfigError (PathError for paths) naming the file and the problem."""
    fix = "pass a YAML file, e.g. --config-file configs/faster_rcnn_X101_32x8d_FPN.yaml"
    what = "config file"
    if _chain:
        what, fix = f"config file (the {BASE_KEY} of {_chain[-1]})", f"fix {BASE_KEY} in {_chain[-1]}"
    try:
        readable_file(config_file, what, fix)
    except PathError as e:
        if _chain or os.path.exists(config_file):
            raise
        raise PathError(f"config file {config_file!r} does not exist; {fix}") from None
    key = os.path.realpath(config_file)
    if key in _chain:
        loop = " -> ".join(list(_chain[_chain.index(key):]) + [key])
        raise ConfigError(f"config file {_chain[0]}: its {BASE_KEY} chain loops: {loop}")
    data = _read_yaml(config_file)  # with yaml.SafeLoader: a Python tag is refused, never run
    if data is None:
        raise ConfigError(f"config file {config_file!r} holds no settings (it is empty or only comments)")
    if not isinstance(data, dict):
        raise ConfigError(f"config file {config_file!r} holds a YAML {type(data).__name__}, not a mapping "
                          "of config keys (KEY: value lines)")
    bases = data.get(BASE_KEY, [])
    if isinstance(bases, str):
        bases = [bases]
    if not isinstance(bases, list) or not all(isinstance(b, str) for b in bases):
        raise ConfigError(f"config file {config_file}: {BASE_KEY} is {short(data[BASE_KEY])}; it must be a file "
                          "name or a list of file names")
    files = [config_file]
    for base in bases:
        path = _resolve_base(base, config_file)
        if is_local(path):
            files += check_yaml_chain(path, _chain + (key,))
    return files


def decode(value):
    """A value as Detectron2 (yacs) reads it: a string that is a Python literal becomes that literal."""
    from detectron2.config import CfgNode

    try:
        return CfgNode._decode_cfg_value(value)
    except Exception:  # literal_eval of pathological input (deep nesting ...): keep the text
        return value


def _kind(value) -> str:
    return {bool: "true/false value", int: "whole number", float: "number", str: "string", list: "list",
            tuple: "list", type(None): "None value"}.get(type(value), type(value).__name__)


def _same_kind(new, old) -> bool:
    """Does the list element ``new`` have the kind of ``old``: numbers (int or float), true/false,
    strings, lists (list/tuple alike, elements alike)."""
    if isinstance(old, bool) or isinstance(new, bool):
        return type(new) is type(old)
    if isinstance(old, (int, float)):
        return isinstance(new, (int, float))
    if isinstance(old, (list, tuple)):
        return isinstance(new, (list, tuple)) and (not old or all(_same_kind(n, old[0]) for n in new))
    return type(new) is type(old)


def _non_finite(value) -> bool:
    if isinstance(value, float):
        return not math.isfinite(value)
    if isinstance(value, (list, tuple)):
        return any(_non_finite(v) for v in value)
    return False


def check_value(where: str, key: str, new, old) -> None:
    """ConfigError unless ``new`` may replace the default ``old`` of ``key``: the value has ``old``'s type
    (Detectron2's rule, list and tuple alike: no int for a float), list elements follow
    :func:`_same_kind`, floats are finite."""
    if old is None:
        return  # Detectron2 takes any value for keys without a default
    if not (type(new) is type(old) or (isinstance(new, (list, tuple)) and isinstance(old, (list, tuple)))):
        hint = " (write it with a decimal point, e.g. 1.0)" if isinstance(old, float) and isinstance(new, int) \
            and not isinstance(new, bool) else ""
        raise ConfigError(f"{where}: {key}={short(new)} is a {_kind(new)}, but {key} takes a {_kind(old)}{hint} "
                          f"(default {short(old)})")
    if isinstance(old, (list, tuple)) and not _same_kind(new, old):
        raise ConfigError(f"{where}: {key}={short(new)} does not have the element types of its default "
                          f"{short(old)}")
    if _non_finite(new):
        raise ConfigError(f"{where}: {key}={short(new)} is not a finite number")


def check_values(where: str, data: dict, cfg, prefix: str = "", unknown=None) -> None:
    """Check every value of a loaded YAML mapping ``data`` against the config ``cfg`` (same level).
    ``unknown(key)`` makes the error for a key the config does not have."""
    for k, v in data.items():
        if k == BASE_KEY and not prefix:
            continue
        key = f"{prefix}{k}"
        if not isinstance(k, str):
            raise ConfigError(f"{where}: config keys are names, got {short(k)}")
        if k not in cfg:
            if hasattr(cfg, "is_new_allowed") and cfg.is_new_allowed():
                continue
            raise unknown(key)
        default = cfg[k]
        if hasattr(default, "items"):  # a group of keys
            if not isinstance(v, dict):
                raise ConfigError(f"{where}: {key} is a group of keys ({', '.join(list(default)[:3])}, ...), "
                                  f"not a value: got {short(v)}")
            check_values(where, v, default, key + ".", unknown)
        elif key != "VERSION":
            check_value(where, key, decode(v), default)


def find_key(cfg, key: str, unknown) -> Optional[tuple]:
    """(node, leaf name) of a dotted ``key`` that names one value of ``cfg``; ``unknown(key)`` makes
    the error for a key that does not exist."""
    parts = key.split(".")
    node = cfg
    for i, part in enumerate(parts):
        if not hasattr(node, "items") or part not in node:
            raise unknown(key)
        if i == len(parts) - 1:
            if hasattr(node[part], "items"):
                first = next(iter(node[part]), "KEY")
                raise ConfigError(f"command-line override: {key} is a group of keys, not one value; set its keys, "
                                  f"e.g. {key}.{first}")
            return node, part
        node = node[part]
    return None


def pairs(opts: Iterable) -> List[tuple]:
    opts = list(opts)
    if len(opts) % 2:
        raise ConfigError(f"overrides must be KEY VALUE pairs; {short(opts[-1])} has no value")
    for key in opts[0::2]:
        if not isinstance(key, str):
            raise ConfigError(f"command-line override: keys are dotted names like SOLVER.BASE_LR, got {short(key)}")
    return list(zip(opts[0::2], opts[1::2]))


def _positive(v) -> bool:
    return v > 0


def _not_negative(v) -> bool:
    return v >= 0


def _device(v: str) -> bool:
    import torch

    try:
        torch.device(v)
    except (RuntimeError, ValueError):
        return False
    return True


# Ranges of the values Detectron2 reads but does not check (it fails deep inside, or trains on nonsense):
# key -> (valid(value), what is valid). A list value is valid when every element is.
VALUE_RULES = {
    "SOLVER.IMS_PER_BATCH": (_positive, "a positive number of images"),
    "SOLVER.MAX_ITER": (_positive, "a positive number of iterations"),
    "SOLVER.CHECKPOINT_PERIOD": (_positive, "a positive number of iterations"),
    "SOLVER.BASE_LR": (_not_negative, "a learning rate >= 0"),
    "SOLVER.WARMUP_ITERS": (_not_negative, "a number of iterations >= 0"),
    "SOLVER.STEPS": (_not_negative, "iterations >= 0"),
    "SOLVER.WEIGHT_DECAY": (_not_negative, "a weight decay >= 0"),
    "SOLVER.MOMENTUM": (lambda v: 0 <= v < 1, "a momentum in [0, 1)"),
    "DATALOADER.NUM_WORKERS": (_not_negative, "a number of worker processes >= 0 (0: load in the main process)"),
    "TEST.EVAL_PERIOD": (_not_negative, "a number of iterations >= 0 (0: evaluate at the end only)"),
    "INPUT.MIN_SIZE_TRAIN": (_not_negative, "sizes in pixels >= 0 (0: no resizing)"),
    "INPUT.MAX_SIZE_TRAIN": (_positive, "a positive size in pixels"),
    "INPUT.MIN_SIZE_TEST": (_not_negative, "a size in pixels >= 0 (0: no resizing)"),
    "INPUT.MAX_SIZE_TEST": (_positive, "a positive size in pixels"),
    "MODEL.ROI_HEADS.NUM_CLASSES": (_positive, "a positive number of classes"),
    "MODEL.RETINANET.NUM_CLASSES": (_positive, "a positive number of classes"),
    "MODEL.PIXEL_STD": (_positive, "positive standard deviations"),
    "MODEL.DEVICE": (_device, "a torch device, e.g. 'cpu', 'cuda' or 'cuda:1'"),
}


def check_ranges(cfg) -> None:
    """ConfigError for the first value of :data:`VALUE_RULES` out of its range."""
    for key, (valid, what) in VALUE_RULES.items():
        node = cfg
        for part in key.split("."):
            node = node.get(part) if hasattr(node, "get") else None
        values = node if isinstance(node, (list, tuple)) else [node]
        if node is not None and not all(valid(v) for v in values):
            raise ConfigError(f"{key}={short(node)} is invalid: it must be {what}")
    if len(cfg.MODEL.PIXEL_MEAN) != len(cfg.MODEL.PIXEL_STD):
        raise ConfigError(f"MODEL.PIXEL_MEAN={short(cfg.MODEL.PIXEL_MEAN)} and MODEL.PIXEL_STD="
                          f"{short(cfg.MODEL.PIXEL_STD)} must have one value per input channel each")


def check_roi_heads(cfg) -> None:
    """Refuse Detectron2's Res5ROIHeads over ``build_resnext_backbone``: it builds its res5 from
    MODEL.RESNETS (a plain ResNet's), whatever MODEL.RESNEXT.ARCH says, a silently wrong model.

    Detectron2's defaults name Res5ROIHeads, so this is checked where a whole GeneralizedRCNN is built,
    not where the backbone is."""
    model = cfg.MODEL
    if model.BACKBONE.NAME != "build_resnext_backbone" or "RESNEXT" not in model:
        return
    heads = model.ROI_HEADS
    if (model.META_ARCHITECTURE == "GeneralizedRCNN" and heads.NAME == "Res5ROIHeads"
            and set(heads.IN_FEATURES) & set(model.RESNEXT.OUT_FEATURES)):
        raise ConfigError("MODEL.ROI_HEADS.NAME=Res5ROIHeads builds Detectron2's plain ResNet res5 from "
                          f"MODEL.RESNETS, not the res5 of MODEL.RESNEXT.ARCH={model.RESNEXT.ARCH!r}; for C4 "
                          "set MODEL.ROI_HEADS.NAME ResNeXtRes5ROIHeads (the plugin's res5 head), else StandardROIHeads")
