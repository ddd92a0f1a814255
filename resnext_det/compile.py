"""The opt-in compiled inference path: ``torch.compile`` (inductor) with freezing on the fused backbone.

Freezing treats the weights as constants, which lets inductor prepack them for oneDNN and fuse
convolution + ReLU and convolution + add + ReLU on CPU. Shapes are dynamic: one graph serves every
input size (see docs/speed.md for the one exception, tiny inputs). Every (re)compilation is logged
with its duration and kept in ``compile_seconds(model)``.
"""
import logging
import time
from typing import List, Optional

import torch
import torch._inductor.config as inductor_config
from torch import nn

from .precision import backbone_part

__all__ = ["compile_for_inference", "compile_module", "is_compiled", "compile_seconds"]

logger = logging.getLogger(__name__)

# Inductor settings while the backbone compiles. Patched around each call rather than passed as
# torch.compile(options=...), where torch 2.14 ignores "freezing" (no oneDNN fusions in the output code).
COMPILE_OPTIONS = {"freezing": True}


def _compile_time_so_far() -> Optional[float]:
    """Seconds dynamo and inductor have spent compiling in this process (None where torch does not say)."""
    try:
        from torch._dynamo.utils import calculate_time_spent

        return float(calculate_time_spent().get("entire_frame_compile", 0.0))
    except (ImportError, AttributeError):
        return None


class _LoggedCompiledCall:
    """A module's compiled ``__call__`` that logs the compile time of each call that compiled."""

    def __init__(self, compiled, what: str):
        self.compiled, self.what, self.seconds = compiled, what, []

    def __call__(self, *args, **kwargs):
        before, start = _compile_time_so_far(), time.perf_counter()
        with inductor_config.patch(COMPILE_OPTIONS):
            out = self.compiled(*args, **kwargs)
        if before is None:  # this torch keeps no compile times: the first call's time, run included
            spent = 0.0 if self.seconds else time.perf_counter() - start
        else:
            spent = _compile_time_so_far() - before
        if spent > 0:
            self.seconds.append(spent)
            shapes = [tuple(a.shape) for a in args if isinstance(a, torch.Tensor)]
            logger.info("torch.compile: %s %scompiled for input %s in %.1f s (inductor, freezing, dynamic shapes)",
                        self.what, "re" if len(self.seconds) > 1 else "", shapes, spent)
        return out


def _refuse_new_weights(module, *args, **kwargs):
    raise RuntimeError("this model was compiled with its weights frozen in (torch.compile freezing): "
                       "weights loaded now would be ignored; load them before compile_for_inference")


def is_compiled(model: nn.Module) -> bool:
    return isinstance(getattr(backbone_part(model), "_compiled_call_impl", None), _LoggedCompiledCall)


def compile_seconds(model: nn.Module) -> List[float]:
    """Seconds of each compilation the backbone part went through so far (empty before its first call)."""
    call = getattr(backbone_part(model), "_compiled_call_impl", None)
    return list(call.seconds) if isinstance(call, _LoggedCompiledCall) else []


def compile_module(module: nn.Module) -> nn.Module:
    """``torch.compile`` ``module``'s call in place (dynamic shapes, inductor freezing), as
    ``nn.Module.compile`` does, with each compilation logged and timed. Returns ``module``."""
    if isinstance(getattr(module, "_compiled_call_impl", None), _LoggedCompiledCall):
        return module
    compiled = torch.compile(module._call_impl, dynamic=True)
    module._compiled_call_impl = _LoggedCompiledCall(compiled, type(module).__name__)
    module.register_load_state_dict_pre_hook(_refuse_new_weights)
    return module


def compile_for_inference(model: nn.Module, dtype=None, channels_last: Optional[bool] = None) -> nn.Module:
    """Fuse ``model`` (``fuse_for_inference``, with ``dtype``) and compile its backbone part (a
    detector's ``backbone`` with its FPN, or the model itself) in place.

    Compilation happens on the first call under ``torch.no_grad()`` or ``torch.inference_mode()``
    (freezing applies only there); it takes seconds to minutes (C++ is compiled with the system
    compiler) and is logged. Load weights first: the compiled backbone has them frozen in, and
    ``load_state_dict`` raises afterwards. A ``copy.deepcopy`` of it is the fused model, not compiled
    (PyTorch leaves the compiled call out of copies). Returns ``model``.
    """
    from .fuse import fuse_for_inference

    fuse_for_inference(model, channels_last=channels_last, dtype=dtype)
    compile_module(backbone_part(model))
    return model
