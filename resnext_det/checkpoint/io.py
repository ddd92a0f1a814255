"""Reading checkpoint files without running code from them, and writing Detectron2 checkpoints."""
import os
import pickle
import re
import zipfile
from typing import Dict, Optional

import numpy as np
import torch

from ..errors import ConfigError

__all__ = ["CheckpointError", "UnsafeCheckpointError", "read_state_dict", "load_checkpoint_file", "load_pickle",
           "load_torch", "needs_code_error", "save_detectron2_checkpoint", "TORCH_EXTS", "is_torch_file"]

TORCH_EXTS = (".pth", ".pt", ".bin", ".ckpt")


class CheckpointError(ConfigError):
    """A weights file that is missing, corrupt, unsafe, or for another architecture."""


class UnsafeCheckpointError(CheckpointError):
    """A weights file whose pickle needs code (a function or class beyond arrays and containers) to load."""


# The only globals a Detectron/Caffe2/Detectron2 .pkl of numpy arrays needs (array reconstruction in each
# pickle protocol, dtypes, scalars, containers, bytes under protocol 2); anything else could run code.
_PKL_ALLOWED = frozenset(
    [(numpy, name) for numpy in ("numpy.core.multiarray", "numpy._core.multiarray")
     for name in ("_reconstruct", "scalar")]
    + [(numpy, "_frombuffer") for numpy in ("numpy.core.numeric", "numpy._core.numeric")]
    + [("numpy", "ndarray"), ("numpy", "dtype"), ("collections", "OrderedDict"), ("_codecs", "encode")]
    + [(builtins, name) for builtins in ("builtins", "__builtin__")
       for name in ("dict", "list", "tuple", "set", "frozenset", "bytearray", "bytes", "str", "int", "float",
                    "complex", "bool")])


def needs_code_error(path: str, what: str) -> UnsafeCheckpointError:
    """The one line for a weights file whose pickle would call ``what`` (a global: code) to load."""
    return UnsafeCheckpointError(f"{path} needs code to load ({what}); weights files are read as data, never run: "
                           "re-save it as a plain state dict (torch.save(model.state_dict(), path)), or convert it "
                           "with tools/convert_pretrained.py from a trusted source")


class _ArraysOnlyUnpickler(pickle.Unpickler):
    """``pickle.Unpickler`` that finds only the globals of :data:`_PKL_ALLOWED`."""

    def __init__(self, file, path: str):
        super().__init__(file, encoding="latin1")
        self.path = path

    def find_class(self, module, name):
        if (module, name) in _PKL_ALLOWED:
            return super().find_class(module, name)
        raise needs_code_error(self.path, f"{module}.{name}")


def load_pickle(path: str):
    """The object a .pkl file holds, unpickled with :class:`_ArraysOnlyUnpickler`: numpy arrays, numbers,
    strings and containers. A pickle that needs any other global raises :func:`needs_code_error`;
    bytes that are no pickle raise pickle.UnpicklingError (or EOFError, ...) as ``pickle.load`` does."""
    with open(path, "rb") as f:
        return _ArraysOnlyUnpickler(f, path).load()


def load_torch(path: str):
    """``torch.load(path, weights_only=True)`` on the CPU (zip and legacy formats alike): tensors, numbers,
    strings, containers. A file that needs code raises :func:`needs_code_error`; other failures (a
    truncated or foreign file) propagate as torch raises them."""
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as e:
        text = str(e)
        if "weights only" not in text.lower():
            raise
        found = re.search(r"GLOBAL ([\w.]+)", text)
        lines = [line for line in text.splitlines() if line.strip()]
        raise needs_code_error(str(path), found.group(1) if found else " ".join(lines[-2:-1] or lines[:1])) from None


def load_checkpoint_file(path: str):
    """The object a checkpoint file holds, read as data: .pkl with :func:`load_pickle`, .safetensors with
    safetensors, any other file with :func:`load_torch`. Every checkpoint read of the plugin goes
    through here (or :func:`read_state_dict`, which uses it)."""
    ext = os.path.splitext(path)[1].lower()
    if ext == ".pkl":
        return load_pickle(path)
    if ext == ".safetensors":
        from safetensors.torch import load_file

        return load_file(path)
    return load_torch(path)


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
    """Tensors of a .pth/.pt (weights_only), .safetensors or .pkl (arrays only) file, read by
    :func:`load_checkpoint_file`: a file that needs code to load is refused, never run."""
    if not os.path.isfile(path):
        raise CheckpointError(f"weights file {path!r} does not exist")
    ext = os.path.splitext(path)[1].lower()
    if ext in TORCH_EXTS and not is_torch_file(path):
        raise CheckpointError(f"{path} is corrupt or truncated: not a file torch.save writes; "
                              "copy or download it again")
    if ext not in TORCH_EXTS + (".pkl", ".safetensors"):
        raise CheckpointError(f"{path}: unknown extension {ext!r}; use .pth, .pt, .safetensors or .pkl")
    try:
        return _unwrap(load_checkpoint_file(path), path)
    except CheckpointError:
        raise
    except pickle.UnpicklingError as e:  # the bytes are no pickle at all
        first = (str(e).strip().splitlines() or [type(e).__name__])[0]
        raise CheckpointError(f"{path} is corrupt or not a weights file ({first}); "
                              "copy or download it again") from None
    except Exception as e:  # truncated or not a checkpoint at all
        raise CheckpointError(f"{path} could not be read as {ext} ({type(e).__name__}: {e}); "
                              "is the file complete?") from None


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
