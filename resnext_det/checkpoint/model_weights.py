"""check_model_weights: does the MODEL.WEIGHTS file fit the model the config builds?

Detectron2's checkpointer loads what fits and only logs the rest: a tensor of another shape is
skipped with a warning, a missing one keeps its random init. For the backbone that is silently
wrong output (weights of another architecture), so it is an error here. Shape mismatches outside
the backbone (e.g. a box predictor for another number of classes when fine-tuning) are left to
Detectron2, which skips them as usual.
"""
import logging
import os
import zipfile

import torch
from detectron2.modeling import META_ARCH_REGISTRY

from ..errors import ConfigError
from .io import CheckpointError, read_state_dict

__all__ = ["check_model_weights"]

logger = logging.getLogger(__name__)

_TORCH_EXTS = (".pth", ".pt", ".bin", ".ckpt")
C4_RES5_PREFIX = "roi_heads.res5."  # where a C4 model (ResNeXtRes5ROIHeads) keeps res5


def _model_shapes(cfg):
    """{key: shape} of the model ``cfg`` builds, made on the meta device (no memory, no init);
    None if a part of it cannot be built there."""
    try:
        with torch.device("meta"):
            model = META_ARCH_REGISTRY.get(cfg.MODEL.META_ARCHITECTURE)(cfg)
    except ConfigError:
        raise
    except Exception as e:
        logger.warning("MODEL.WEIGHTS not checked: the model cannot be built on the meta device (%s: %s)",
                       type(e).__name__, e)
        return None
    return {k: v.shape for k, v in model.state_dict().items()}


def _read(path):
    ext = os.path.splitext(path)[1].lower()
    if ext == ".safetensors":
        raise CheckpointError(f"MODEL.WEIGHTS={path!r}: Detectron2 reads .pth and .pkl files, not .safetensors; "
                              "convert it with tools/convert_pretrained.py")
    # (a missing file is left to read_state_dict, which names it)
    if ext in _TORCH_EXTS and os.path.isfile(path) and not zipfile.is_zipfile(path):
        with open(path, "rb") as f:
            if f.read(1) != b"\x80":  # neither torch.save's zip nor its legacy pickle format
                raise CheckpointError(f"MODEL.WEIGHTS={path!r} is corrupt or truncated: not a file torch.save "
                                      "writes; copy or download it again")
    try:
        return read_state_dict(path)
    except CheckpointError as e:
        raise CheckpointError(f"MODEL.WEIGHTS: {e}") from None


def check_model_weights(cfg, path: str) -> None:
    """Raise CheckpointError unless ``path`` can be read and its backbone tensors fit ``cfg``'s model.

    The backbone's feature extractor (``backbone.bottom_up.*`` with FPN, else ``backbone.*``) must be
    complete and of the same shapes if the file has any of it; a .pth/.pt file none of whose names
    the model has is refused too. Names in .pkl files may be Caffe2's, which Detectron2 matches by
    heuristics: for them only tensors of the same name are compared.
    """
    weights = _read(path)
    if all(k.startswith("module.") for k in weights):  # saved from DistributedDataParallel
        weights = {k[len("module."):]: v for k, v in weights.items()}
    model = _model_shapes(cfg)
    if model is None:
        return
    arch = f"MODEL.RESNEXT.ARCH={cfg.MODEL.RESNEXT.ARCH!r}" if cfg.MODEL.BACKBONE.NAME.startswith("build_resnext") \
        else f"MODEL.BACKBONE.NAME={cfg.MODEL.BACKBONE.NAME!r}"
    exact_names = not path.lower().endswith(".pkl")
    if exact_names and not set(weights) & set(model):
        raise CheckpointError(
            f"MODEL.WEIGHTS={path!r} has none of the model's tensor names ({len(weights)} tensors, e.g. "
            f"{next(iter(weights))}); ImageNet weights must be converted first: tools/convert_pretrained.py")
    prefix = "backbone.bottom_up." if any(k.startswith("backbone.bottom_up.") for k in model) else "backbone."
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
        raise CheckpointError(f"MODEL.WEIGHTS={path!r} does not fit the model: {'; '.join(problems)}; "
                              f"{hint} (Detectron2 would only warn)")
