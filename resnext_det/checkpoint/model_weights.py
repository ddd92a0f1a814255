"""check_model_weights: does the MODEL.WEIGHTS file fit the model the config builds?

Detectron2's checkpointer loads what fits and only logs the rest: a tensor of another shape is
skipped with a warning, a missing one keeps its random init. For the backbone that is silently
wrong output (weights of another architecture), so it is an error here. Shape mismatches outside
the backbone (e.g. a box predictor for another number of classes when fine-tuning) are left to
Detectron2, which skips them as usual.
"""
import logging
import os

import torch
from detectron2.modeling import META_ARCH_REGISTRY

from ..config_checks import check_roi_heads
from ..errors import ConfigError
from .io import TORCH_EXTS, CheckpointError, is_torch_file, read_state_dict

__all__ = ["check_model_weights", "check_weights_fit"]

logger = logging.getLogger(__name__)

C4_RES5_PREFIX = "roi_heads.res5."  # where a C4 model (ResNeXtRes5ROIHeads) keeps res5


def _model_shapes(cfg):
    """{key: shape} of the model ``cfg`` builds, made on the meta device (no memory, no init);
    None if a part of it cannot be built there."""
    return _built_shapes(model_builder(cfg), "MODEL.WEIGHTS")


def _built_shapes(build_model, key):
    """:func:`_model_shapes` of the model ``build_model()`` makes; ``key``: the weights setting."""
    try:
        with torch.device("meta"):
            model = build_model()
    except ConfigError:
        raise
    except Exception as e:
        logger.warning("%s not checked: the model cannot be built on the meta device (%s: %s)",
                       key, type(e).__name__, e)
        return None
    return {k: v.shape for k, v in model.state_dict().items()}


def _read(path, key, name=""):
    shown = name or path
    ext = os.path.splitext(path)[1].lower()
    if ext == ".safetensors":
        raise CheckpointError(f"{key}={shown!r}: Detectron2 reads .pth and .pkl files, not .safetensors; "
                              "convert it with tools/convert_pretrained.py")
    # (a missing file is left to read_state_dict, which names it)
    if ext in TORCH_EXTS and os.path.isfile(path) and not is_torch_file(path):
        raise CheckpointError(f"{key}={shown!r} is corrupt or truncated: not a file torch.save "
                              "writes; copy or download it again")
    try:
        return read_state_dict(path)
    except CheckpointError as e:
        raise CheckpointError(f"{key}{'=' + repr(name) if name else ''}: {e}") from None


def check_model_weights(cfg, path: str, name: str = "", backbone_relative: bool = False) -> None:
    """Raise CheckpointError unless ``path`` can be read and its backbone tensors fit ``cfg``'s model.

    The backbone's feature extractor (``backbone.bottom_up.*`` with FPN, else ``backbone.*``) must be
    complete and of the same shapes if the file has any of it; a .pth/.pt file none of whose names
    the model has is refused too. Names in .pkl files may be Caffe2's, which Detectron2 matches by
    heuristics: for them only tensors of the same name are compared. ``backbone_relative``: the
    file's names are the feature extractor's own (``stem.*``, ``res2.*``: a converted ImageNet file
    Detectron2 loads by suffix). ``name``: what the messages call the file (default: ``path``).
    """
    check_weights_fit(path, model_builder(cfg), arch_setting(cfg), name=name, backbone_relative=backbone_relative)


def model_builder(cfg):
    """A function that builds ``cfg``'s model (called on the meta device by the checks)."""
    def build():
        check_roi_heads(cfg)
        return META_ARCH_REGISTRY.get(cfg.MODEL.META_ARCHITECTURE)(cfg)
    return build


def arch_setting(cfg) -> str:
    """The config setting that chose the backbone, with its value, for messages."""
    if cfg.MODEL.BACKBONE.NAME.startswith("build_resnext"):
        return f"MODEL.RESNEXT.ARCH={cfg.MODEL.RESNEXT.ARCH!r}"
    return f"MODEL.BACKBONE.NAME={cfg.MODEL.BACKBONE.NAME!r}"


def check_weights_fit(path: str, build_model, arch: str, key: str = "MODEL.WEIGHTS", name: str = "",
                      backbone_relative: bool = False) -> None:
    """:func:`check_model_weights` for the model ``build_model()`` makes; ``arch`` names the setting
    that chose its backbone, ``key`` the setting that names ``path``."""
    weights = _read(path, key, name)
    if all(k.startswith("module.") for k in weights):  # saved from DistributedDataParallel
        weights = {k[len("module."):]: v for k, v in weights.items()}
    model = _built_shapes(build_model, key)
    if model is None:
        return
    path = name or path
    prefix = "backbone.bottom_up." if any(k.startswith("backbone.bottom_up.") for k in model) else "backbone."
    if backbone_relative:  # loaded by suffix matching, as Detectron2 does: a C4 model's res5 is its box head's
        c4 = any(k.startswith(C4_RES5_PREFIX) for k in model) and not any(k.startswith(prefix + "res5.") for k in model)
        weights = {("roi_heads." if c4 and k.startswith("res5.") else prefix) + k: v for k, v in weights.items()}
    exact_names = not path.lower().endswith(".pkl")
    if exact_names and not set(weights) & set(model):
        raise CheckpointError(
            f"{key}={path!r} has none of the model's tensor names ({len(weights)} tensors, e.g. "
            f"{next(iter(weights))}); ImageNet weights must be converted first: tools/convert_pretrained.py")
    # In a C4 model res5 is the box head (roi_heads.res5): ImageNet weights hold it too.
    ours = (prefix, C4_RES5_PREFIX)
    shape = [k for k in model if k in weights and k.startswith(ours) and weights[k].shape != model[k]]
    missing = []
    if exact_names and any(k.startswith(prefix) for k in weights):
        missing = [k for k in model if k.startswith(ours) and k not in weights
                   and not k.endswith("num_batches_tracked")]
    if shape or missing:
        problems = []
        if shape:
            k = shape[0]
            problems.append(f"{len(shape)} backbone tensors have another shape, e.g. {k}: "
                            f"{tuple(weights[k].shape)} in the file, {tuple(model[k])} in the model")
        if missing:
            problems.append(f"{len(missing)} backbone tensors are missing, e.g. {missing[0]}")
        hint = f"are the weights for {arch}?"
        if missing and all(k.startswith(C4_RES5_PREFIX) for k in missing) \
                and any(k.startswith(prefix + "res5.") for k in weights):
            hint = ("this C4 model's res5 is its box head: convert with tools/convert_pretrained.py "
                    "--prefix backbone. --res5-prefix roi_heads.")
        raise CheckpointError(f"{key}={path!r} does not fit the model: {'; '.join(problems)}; "
                              f"{hint} (Detectron2 would only warn)")
