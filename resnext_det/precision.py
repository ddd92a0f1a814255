"""Reduced-precision inference: the backbone (with its FPN) holds bf16 / fp16 weights, casts its input
once, and hands fp32 features to the heads, so the RPN, RoIAlign, box regression and NMS stay fp32."""
import argparse
import functools
import logging
import platform
from typing import List, Optional, Union

import torch
from torch import nn

from .errors import ConfigError

__all__ = ["PRECISIONS", "precision_dtype", "check_precision", "has_native_bf16", "cast_backbone",
           "inference_dtype", "backbone_part", "inference_options", "precision_list"]

logger = logging.getLogger(__name__)

# The names the tools take (--precision), and their dtypes.
PRECISIONS = {"fp32": torch.float32, "bf16": torch.bfloat16, "fp16": torch.float16}
_NAMES = {dtype: name for name, dtype in PRECISIONS.items()}


def precision_dtype(precision: Union[str, torch.dtype, None]) -> torch.dtype:
    """``"fp32"``, ``"bf16"``, ``"fp16"`` or a torch dtype (None: fp32) as a dtype."""
    if precision is None:
        return torch.float32
    if isinstance(precision, torch.dtype):
        if precision not in _NAMES:
            raise ConfigError(f"precision {precision} is not supported: use torch.float32, torch.bfloat16 "
                              "or torch.float16")
        return precision
    if precision not in PRECISIONS:
        raise ConfigError(f"precision {precision!r} is invalid: valid: {', '.join(PRECISIONS)}")
    return PRECISIONS[precision]


def precision_name(dtype: torch.dtype) -> str:
    return _NAMES[dtype]


def has_native_bf16() -> Optional[bool]:
    """Whether this x86 CPU computes bf16 in hardware (AVX512-BF16 or AMX; elsewhere oneDNN emulates
    it); None on other CPUs, where PyTorch does not say."""
    if platform.machine().lower() not in ("x86_64", "amd64", "i386", "i686"):
        return None
    cpu = torch.cpu
    return any(getattr(cpu, probe, lambda: False)() for probe in ("_is_avx512_bf16_supported",
                                                                  "_is_amx_tile_supported"))


_warned_emulated = False


def check_precision(dtype: torch.dtype, device: Union[str, torch.device]) -> None:
    """Raise a ConfigError for a dtype the device cannot run; say once in the log where bf16 runs
    without native CPU support (it works, slower than fp32)."""
    global _warned_emulated
    device = torch.device(device)
    name = precision_name(precision_dtype(dtype))
    if dtype == torch.float16 and device.type == "cpu":
        raise ConfigError("precision fp16 runs on CUDA only (CPU convolutions have no fast fp16); "
                          "use bf16 on CPU")
    if dtype == torch.bfloat16 and device.type == "cuda" and not torch.cuda.is_bf16_supported():
        raise ConfigError(f"precision {name}: this GPU ({torch.cuda.get_device_name(device)}) has no bf16; "
                          "use fp16")
    if dtype == torch.bfloat16 and device.type == "cpu" and has_native_bf16() is False and not _warned_emulated:
        _warned_emulated = True
        logger.warning("this CPU has no native bf16 (neither AVX512-BF16 nor AMX): bf16 runs emulated, "
                       "slower than fp32")


def backbone_part(model: nn.Module) -> nn.Module:
    """The part of ``model`` that runs in reduced precision and is compiled: a detector's ``backbone``
    (with its FPN), or the model itself when it is a backbone."""
    part = getattr(model, "backbone", None)
    return part if isinstance(part, nn.Module) else model


def _cast_inputs(dtype, module, args):
    return tuple(a.to(dtype) if isinstance(a, torch.Tensor) and a.is_floating_point() else a for a in args)


def _outputs_to_fp32(module, args, output):
    if isinstance(output, torch.Tensor):
        return output.float()
    if isinstance(output, dict):
        return {k: v.float() if isinstance(v, torch.Tensor) else v for k, v in output.items()}
    if isinstance(output, (list, tuple)):
        return type(output)(v.float() if isinstance(v, torch.Tensor) else v for v in output)
    return output


def inference_dtype(model: nn.Module) -> torch.dtype:
    """The dtype :func:`cast_backbone` gave ``model``'s backbone (fp32 if none)."""
    return getattr(backbone_part(model), "_inference_dtype", torch.float32)


def cast_backbone(model: nn.Module, dtype: Optional[torch.dtype]) -> nn.Module:
    """Store the backbone part's weights in ``dtype``; its input is cast to ``dtype`` and its features
    back to fp32 (forward hooks, so module names and the checkpoint format stay). In place; returns
    ``model``. A backbone cast once cannot be cast to another dtype (its fp32 weights are gone)."""
    dtype = precision_dtype(dtype)
    part = backbone_part(model)
    current = inference_dtype(model)
    if dtype == current:
        return model
    if current != torch.float32:
        raise ConfigError(f"this model's backbone already runs in {precision_name(current)}; its fp32 "
                          f"weights are gone: fuse a fresh copy for {precision_name(dtype)}")
    device = next(part.parameters()).device
    check_precision(dtype, device)
    part.to(dtype)
    part.register_forward_pre_hook(functools.partial(_cast_inputs, dtype))
    part.register_forward_hook(_outputs_to_fp32)
    part._inference_dtype = dtype
    return model


def inference_options(args, device) -> Optional[dict]:
    """The tools' ``--fuse`` / ``--precision`` / ``--compile`` as ``fuse_for_inference`` keywords, or
    None for no fusing. A combination that cannot run raises a ConfigError: these flags without
    ``args.eval_only`` (where the tool also trains), fp16 on CPU, bf16 on a GPU without it."""
    precision = getattr(args, "precision", "fp32")
    compiled = getattr(args, "compile", False)
    if (precision != "fp32" or compiled) and not getattr(args, "eval_only", True):
        raise ConfigError("--precision and --compile apply to evaluation (--eval-only); to train in bf16 "
                          "set SOLVER.AMP.ENABLED True")
    dtype = precision_dtype(precision)
    check_precision(dtype, device)
    if not (getattr(args, "fuse", False) or precision != "fp32" or compiled):
        return None
    return {"dtype": dtype, "compile": compiled}


def precision_list(text: str) -> List[str]:
    """An argparse type: "fp32,bf16" -> ["fp32", "bf16"] (comma-separated, so trailing KEY VALUE
    overrides are not taken for precisions)."""
    names = [name.strip() for name in text.split(",") if name.strip()]
    bad = [name for name in names if name not in PRECISIONS]
    if bad or not names:
        raise argparse.ArgumentTypeError(f"{text!r}: give one or more of {', '.join(PRECISIONS)}, comma-separated")
    return list(dict.fromkeys(names))
