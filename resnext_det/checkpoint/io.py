"""Reading checkpoint files without running code from them, and writing Detectron2 checkpoints."""
import os
import pickle
import zipfile
from typing import Dict, Optional

import numpy as np
import torch

from ..errors import ConfigError

__all__ = ["CheckpointError", "read_state_dict", "save_detectron2_checkpoint", "TORCH_EXTS", "is_torch_file"]

TORCH_EXTS = (".pth", ".pt", ".bin", ".ckpt")


class CheckpointError(ConfigError):
    """A weights file that is missing, corrupt, unsafe, or for another architecture."""


# The only globals a Detectron/Caffe2 .pkl of arrays needs; anything else could run code.
_PKL_ALLOWED = {
    ("numpy.core.multiarray", "_reconstruct"), ("numpy._core.multiarray", "_reconstruct"),
    ("numpy.core.multiarray", "scalar"), ("numpy._core.multiarray", "scalar"),
    ("numpy", "ndarray"), ("numpy", "dtype"), ("collections", "OrderedDict"),
}


class _ArraysOnlyUnpickler(pickle.Unpickler):
    def find_class(self, module, name):
        if (module, name) in _PKL_ALLOWED:
            return super().find_class(module, name)
        raise CheckpointError(f"refusing to unpickle {module}.{name}: this pickle needs code execution, "
                              "which a weights file must not; convert it to .pth or .safetensors")


def _unwrap(obj, path):
    """The tensor dict inside common containers: {"state_dict"}, {"model"}, {"blobs"}."""
    for key in ("state_dict", "model", "blobs", "module"):
        if isinstance(obj, dict) and isinstance(obj.get(key), dict):
            obj = obj[key]
    if not isinstance(obj, dict) or not obj:
        raise CheckpointError(f"{path} holds no state dict (found {type(obj).__name__})")
    out = {}
    for key, value in obj.items():
        if isinstance(value, np.ndarray):
            value = torch.from_numpy(np.ascontiguousarray(value))
        if isinstance(value, torch.Tensor):
            out[str(key)] = value
    if not out:
        raise CheckpointError(f"{path} holds no tensors")
    return out


def is_torch_file(path: str) -> bool:
    """Whether ``path`` starts like a file torch.save writes: its zip format, or its legacy pickle."""
    if zipfile.is_zipfile(path):
        return True
    with open(path, "rb") as f:
        return f.read(1) == b"\x80"


def read_state_dict(path: str) -> Dict[str, torch.Tensor]:
    """Tensors of a .pth/.pt (weights_only), .safetensors or .pkl (arrays only) file."""
    if not os.path.isfile(path):
        raise CheckpointError(f"weights file {path!r} does not exist")
    ext = os.path.splitext(path)[1].lower()
    if ext in TORCH_EXTS and not is_torch_file(path):
        raise CheckpointError(f"{path} is corrupt or truncated: not a file torch.save writes; "
                              "copy or download it again")
    try:
        if ext == ".safetensors":
            from safetensors.torch import load_file

            return _unwrap(load_file(path), path)
        if ext == ".pkl":
            with open(path, "rb") as f:
                return _unwrap(_ArraysOnlyUnpickler(f, encoding="latin1").load(), path)
        if ext in TORCH_EXTS:
            return _unwrap(torch.load(path, map_location="cpu", weights_only=True), path)
    except CheckpointError:
        raise
    except pickle.UnpicklingError as e:
        first = str(e).strip().splitlines()[0]
        if "weights only" not in first.lower():  # the bytes are no pickle at all
            raise CheckpointError(f"{path} is corrupt or not a weights file ({first}); "
                                  "copy or download it again") from None
        raise CheckpointError(f"{path} is not a plain weights file ({first}); only tensors are loaded, "
                              "never code: re-save it with torch.save(model.state_dict(), ...)") from None
    except Exception as e:  # truncated or not a checkpoint at all
        raise CheckpointError(f"{path} could not be read as {ext} ({type(e).__name__}: {e}); "
                              "is the file complete?") from None
    raise CheckpointError(f"{path}: unknown extension {ext!r}; use .pth, .pt, .safetensors or .pkl")


def save_detectron2_checkpoint(state_dict: Dict[str, torch.Tensor], path: str, prefix: str = "",
                               res5_prefix: Optional[str] = None) -> None:
    """A file MODEL.WEIGHTS loads: {"model": {prefix + key: tensor}}, keys matched exactly.

    ``res5_prefix`` (default: ``prefix``) places res5 elsewhere: "roi_heads." for C4 models, whose
    res5 is the box head.
    """
    res5_prefix = prefix if res5_prefix is None else res5_prefix
    model = {(res5_prefix if k.startswith("res5.") else prefix) + k: v.contiguous() for k, v in state_dict.items()}
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    torch.save({"model": model, "__author__": "resnext_det", "matching_heuristics": False}, path)
