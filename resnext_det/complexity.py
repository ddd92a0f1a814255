"""Parameters and FLOPs (fvcore: one multiply-add counts as one FLOP) of backbones and detectors."""
import logging
from typing import Dict, NamedTuple, Optional

import torch

from .modeling import create_backbone

__all__ = ["PAPER_FIGURES", "Complexity", "backbone_complexity", "detector_complexity"]

# ImageNet classifiers at 224x224, classifier included: (params in M, GFLOPs, where it is stated).
PAPER_FIGURES: Dict[str, tuple] = {
    "resnet50": (25.5, 4.1, "ResNeXt paper, Table 1"),
    "resnext50_32x4d": (25.0, 4.2, "ResNeXt paper, Table 1"),
    "resnext101_32x4d": (44.3, 7.99, "SKNet paper Table 2 (params); SENet paper Table 2 (FLOPs)"),
    "seresnext50_32x4d": (27.7, 4.25, "SKNet paper Table 2 (params); SENet paper Table 2 (FLOPs)"),
    "seresnext101_32x4d": (49.2, 8.00, "SKNet paper Table 2 (params); SENet paper Table 2 (FLOPs)"),
    "skresnext50_32x4d": (27.5, 4.47, "SKNet paper, Table 2 (SKNet-50)"),
    "resnest50": (27.5, None, "ResNeSt paper (params)"),
}


class Complexity(NamedTuple):
    params: int
    flops: int  # fvcore's count: one multiply-add is one FLOP


def _count(analysis_cls, model, inputs) -> Complexity:
    """Params, and FLOPs as fvcore counts them by default (convolutions, linear layers, batch norm,
    pooling); activations, attention gates and other elementwise ops are not counted."""
    params = sum(p.numel() for p in model.parameters())
    logging.getLogger("fvcore").setLevel(logging.ERROR)
    with torch.no_grad():
        analysis = analysis_cls(model, inputs)
        analysis.unsupported_ops_warnings(False).uncalled_modules_warnings(False)
        return Complexity(params, int(analysis.total()))


def backbone_complexity(name: str, size: int = 224, num_classes: Optional[int] = 1000) -> Complexity:
    """The backbone as an ImageNet classifier (avg-pool + linear head) on one size x size image."""
    from fvcore.nn import FlopCountAnalysis

    out = ["linear"] if num_classes else ["res5"]
    model = create_backbone(name, norm="BN", num_classes=num_classes, out_features=out).eval()
    return _count(FlopCountAnalysis, model, (torch.zeros(1, 3, size, size),))


def detector_complexity(cfg, height: int = 800, width: int = 1333) -> Complexity:
    """A whole Detectron2 model from ``cfg`` (inference mode) on one height x width image."""
    from detectron2.modeling import build_model
    from detectron2.utils.analysis import FlopCountAnalysis

    model = build_model(cfg).eval()
    inputs = [{"image": torch.zeros(3, height, width), "height": height, "width": width}]
    return _count(FlopCountAnalysis, model, (inputs,))
