"""Inference rewrites: fold each frozen or eval-mode batch norm into the convolution before it (exact),
store the weights channels-last where that layout is faster, and optionally run the backbone in
bf16 / fp16 (precision.py) and compiled (compile.py)."""
import types
from typing import Optional

import torch
from detectron2.layers import Conv2d, FrozenBatchNorm2d
from torch import nn

from .precision import cast_backbone, precision_dtype

__all__ = ["fuse_for_inference", "is_fused"]

_FOLDABLE = (FrozenBatchNorm2d, nn.BatchNorm2d)  # nn.SyncBatchNorm is a BatchNorm2d subclass here too


def _fold_norm_into_conv(conv: Conv2d) -> None:
    """conv.weight * s, conv.bias * s + t, where the norm computes x * s + t in eval mode.
    Runs under fuse_for_inference's no_grad."""
    norm = conv.norm
    weight = norm.weight if norm.weight is not None else torch.ones_like(norm.running_var)
    bias = norm.bias if norm.bias is not None else torch.zeros_like(norm.running_mean)
    scale = weight / torch.sqrt(norm.running_var + norm.eps)
    shift = bias - norm.running_mean * scale
    old_bias = conv.bias if conv.bias is not None else torch.zeros_like(shift)
    conv.weight.mul_(scale.reshape(-1, 1, 1, 1))
    conv.bias = nn.Parameter(old_bias * scale + shift)
    conv.norm = None


def _refuse_training(self, mode: bool = True):
    if mode:
        raise RuntimeError("this model was fused for inference (its norms are folded into the convolutions) "
                           "and cannot train; build it again to train")
    return nn.Module.train(self, False)


def is_fused(model: nn.Module) -> bool:
    return getattr(model, "_fused_for_inference", False)


def _prefers_channels_last(model: nn.Module, dtype: torch.dtype) -> bool:
    """Channels-last is measured faster on CPU (oneDNN runs NHWC convolutions without reordering
    every input and output: tools/benchmark.py). On GPU it pays with fp16/bf16 tensor cores."""
    param = next(model.parameters(), None)
    return param is not None and (param.device.type == "cpu" or dtype in (torch.float16, torch.bfloat16))


@torch.no_grad()
def fuse_for_inference(model: nn.Module, channels_last: Optional[bool] = None, dtype=None,
                       compile: bool = False) -> nn.Module:
    """Fold every FrozenBN, and every BN / SyncBN in eval mode, into its convolution, in place.

    The model is put in eval mode (BN then uses its running statistics, which is what makes the
    fold exact) and can no longer train: ``model.train()`` raises. Group norms depend on their
    input and stay as they are, as do norms no convolution precedes (ResNet-v2's pre-activation
    and output norms). With ``channels_last`` (default: on CPU, and on GPU in fp16/bf16) the 4-d
    weights are stored channels-last, so convolutions run and return NHWC tensors; values are
    unchanged and the outputs keep their NCHW shapes.

    ``dtype`` (``torch.bfloat16``, ``torch.float16`` on CUDA, or "bf16" / "fp16"): the backbone and
    its FPN keep their weights in that dtype, cast the input once and return fp32 features, so a
    detector's heads (RPN, RoIAlign, box regression, NMS) stay fp32. ``compile``: also
    ``compile_for_inference``. Fusing a fused model again only applies what is new (``dtype=None``
    keeps the backbone's dtype). Returns ``model``.
    """
    if compile:
        from .compile import compile_for_inference

        return compile_for_inference(model, dtype=dtype, channels_last=channels_last)
    if not is_fused(model):
        _fold_all(model, channels_last, precision_dtype(dtype))
    return model if dtype is None else cast_backbone(model, precision_dtype(dtype))


def _fold_all(model: nn.Module, channels_last: Optional[bool], dtype: torch.dtype) -> None:
    model.eval()
    for module in model.modules():
        if isinstance(module, Conv2d) and isinstance(module.norm, _FOLDABLE):
            if getattr(module.norm, "track_running_stats", True) is False:
                continue  # a BN without running statistics normalizes by its input: not foldable
            _fold_norm_into_conv(module)
    if _prefers_channels_last(model, dtype) if channels_last is None else channels_last:
        model.to(memory_format=torch.channels_last)
    model.train = types.MethodType(_refuse_training, model)
    model._fused_for_inference = True
