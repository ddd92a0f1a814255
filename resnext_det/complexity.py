"""Parameters and FLOPs (fvcore: one multiply-add counts as one FLOP) of backbones and detectors."""
import logging
import math
from typing import Dict, NamedTuple, Optional

import torch

from .modeling import create_backbone

__all__ = ["PAPER_FIGURES", "PaperFigure", "Complexity", "backbone_complexity", "detector_complexity"]


class PaperFigure(NamedTuple):
    """An ImageNet classifier at 224x224, classifier included, as a paper states it."""

    params: Optional[float]  # M
    gflops: Optional[float]
    source: str
    stride_in_1x1: bool = False  # the paper counts the ResNet with the stride on the first 1x1


PAPER_FIGURES: Dict[str, PaperFigure] = {
    "resnet50": PaperFigure(25.5, 4.1, "ResNeXt paper, Table 1"),
    "seresnet50": PaperFigure(28.1, 3.87, "SENet paper: Table 10 (params, reduction 16), Table 2 (FLOPs)", True),
    "seresnet101": PaperFigure(None, 7.60, "SENet paper, Table 2", True),
    "seresnet152": PaperFigure(None, 11.32, "SENet paper, Table 2", True),
    "resnext50_32x4d": PaperFigure(25.0, 4.2, "ResNeXt paper, Table 1"),
    "resnext101_32x4d": PaperFigure(44.3, 7.99, "SKNet paper Table 2 (params); SENet paper Table 2 (FLOPs)"),
    "seresnext50_32x4d": PaperFigure(27.7, 4.25, "SKNet paper Table 2 (params); SENet paper Table 2 (FLOPs)"),
    "seresnext101_32x4d": PaperFigure(49.2, 8.00, "SKNet paper Table 2 (params); SENet paper Table 2 (FLOPs)"),
    "skresnext50_32x4d": PaperFigure(27.5, 4.47, "SKNet paper, Table 2 (SKNet-50)"),
    "resnest50": PaperFigure(27.5, None, "ResNeSt paper (params)"),
}


class Complexity(NamedTuple):
    params: int
    flops: int  # fvcore's count: one multiply-add is one FLOP


def _deform_conv_flops(inputs, outputs) -> int:
    """torchvision::deform_conv2d counted as the convolution it computes (one multiply-add per weight and
    output position); the bilinear sampling and the mask are not counted."""
    from fvcore.nn.jit_handles import get_shape

    weight_shape, output_shape = get_shape(inputs[1]), get_shape(outputs[0])
    return math.prod(output_shape) * math.prod(weight_shape[1:])


def flop_analysis(analysis_cls, model, inputs):
    """fvcore's analysis of ``model`` on ``inputs``, quiet, with deformable convolutions counted."""
    logging.getLogger("fvcore").setLevel(logging.ERROR)
    analysis = analysis_cls(model, inputs).set_op_handle("torchvision::deform_conv2d", _deform_conv_flops)
    return analysis.unsupported_ops_warnings(False).uncalled_modules_warnings(False)


def _count(analysis_cls, model, inputs) -> Complexity:
    """Params, and FLOPs as fvcore counts them by default (convolutions, linear layers, batch norm,
    pooling) plus deformable convolutions; activations, attention gates and other elementwise ops are
    not counted."""
    params = sum(p.numel() for p in model.parameters())
    with torch.no_grad():
        return Complexity(params, int(flop_analysis(analysis_cls, model, inputs).total()))


def backbone_complexity(name: str, size: int = 224, num_classes: Optional[int] = 1000, **overrides) -> Complexity:
    """The backbone as an ImageNet classifier (avg-pool + linear head) on one size x size image;
    ``overrides`` as ``create_backbone`` takes them (e.g. ``stride_in_1x1=True``)."""
    from fvcore.nn import FlopCountAnalysis

    out = ["linear"] if num_classes else ["res5"]
    model = create_backbone(name, norm="BN", num_classes=num_classes, out_features=out, **overrides).eval()
    return _count(FlopCountAnalysis, model, (torch.zeros(1, 3, size, size),))


def detector_complexity(cfg, height: int = 800, width: int = 1333) -> Complexity:
    """A whole Detectron2 model from ``cfg`` (inference mode) on one height x width image."""
    from detectron2.modeling import build_model
    from detectron2.utils.analysis import FlopCountAnalysis

    model = build_model(cfg).eval()
    inputs = [{"image": torch.zeros(3, height, width), "height": height, "width": width}]
    return _count(FlopCountAnalysis, model, (inputs,))
