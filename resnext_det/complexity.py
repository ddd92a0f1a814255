"""Parameters and FLOPs (fvcore: one multiply-add counts as one FLOP) of backbones and detectors."""
import logging
import math
from typing import Dict, NamedTuple, Optional

import torch
from torch import nn

from .modeling import create_backbone

__all__ = ["PAPER_FIGURES", "PaperFigure", "Complexity", "DetectorComplexity", "backbone_complexity",
           "detector_complexity"]


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


def _params(module: nn.Module) -> int:
    return sum(p.numel() for p in module.parameters())


def _analyze(analysis_cls, model, inputs):
    """fvcore's FLOP count of one forward pass: by default convolutions, linear layers, batch norm and
    pooling, plus deformable convolutions; activations, attention gates and other elementwise ops are
    not counted."""
    with torch.no_grad():
        analysis = flop_analysis(analysis_cls, model, inputs)
        analysis.total()  # runs the count
    return analysis


def _count(analysis_cls, model, inputs) -> Complexity:
    """Params, and FLOPs as fvcore counts them (``_analyze``)."""
    return Complexity(_params(model), int(_analyze(analysis_cls, model, inputs).total()))


def backbone_complexity(name: str, size: int = 224, num_classes: Optional[int] = 1000, **overrides) -> Complexity:
    """The backbone as an ImageNet classifier (avg-pool + linear head) on one size x size image;
    ``overrides`` as ``create_backbone`` takes them (e.g. ``stride_in_1x1=True``)."""
    from fvcore.nn import FlopCountAnalysis

    out = ["linear"] if num_classes else ["res5"]
    model = create_backbone(name, norm="BN", num_classes=num_classes, out_features=out, **overrides).eval()
    return _count(FlopCountAnalysis, model, (torch.zeros(1, 3, size, size),))


class DetectorComplexity(NamedTuple):
    params: int
    flops: int  # fvcore's count: one multiply-add is one FLOP
    parts: Dict[str, Complexity]  # the model's parts with parameters: backbone, proposal_generator, roi_heads
    num_proposals: Optional[int]  # regions the ROI heads were counted at (None: no ROI heads)


class _FixedProposals(nn.Module):
    """A GeneralizedRCNN's inference with its ROI heads run on exactly ``len(boxes)`` given regions.

    The RPN still runs (and is counted) on the image, but how many proposals it keeps after NMS
    depends on its weights and the image: on a blank image with random weights, far fewer than
    POST_NMS_TOPK_TEST. The per-region heads are counted at the test-time number instead.
    """

    def __init__(self, model, boxes):
        super().__init__()
        self.model, self.boxes = model, boxes

    def forward(self, image):
        from detectron2.structures import Boxes, Instances

        m = self.model
        images = m.preprocess_image([{"image": image}])
        features = m.backbone(images.tensor)
        proposals, _ = m.proposal_generator(images, features, None)
        regions = Instances(images.image_sizes[0], proposal_boxes=Boxes(self.boxes),
                            objectness_logits=torch.zeros(len(self.boxes)))
        detections, _ = m.roi_heads(images, features, [regions], None)
        return proposals[0].proposal_boxes.tensor, detections[0].pred_boxes.tensor, detections[0].scores


def _regions(num, height, width, seed=0):
    """``num`` boxes inside a height x width image, 16 to 256 px a side (the count is what matters:
    every region costs the same)."""
    gen = torch.Generator().manual_seed(seed)
    size = torch.empty(num, 2).uniform_(16, 256, generator=gen).clamp(max=min(height, width) - 1)
    corner = torch.rand(num, 2, generator=gen) * (torch.tensor([width, height]) - size)
    return torch.cat([corner, corner + size], dim=1)


def detector_complexity(cfg, height: int = 800, width: int = 1333) -> DetectorComplexity:
    """A whole Detectron2 model from ``cfg`` (inference mode) on one height x width image.

    A model with an RPN and ROI heads (Faster R-CNN, FPN or C4) has its ROI heads counted at exactly
    MODEL.RPN.POST_NMS_TOPK_TEST regions per image, what they process at test time: in C4 that is
    res5 once per region. Other models (RetinaNet) are counted as they run.
    """
    from detectron2.modeling import build_model
    from detectron2.utils.analysis import FlopCountAnalysis

    model = build_model(cfg).eval()
    image = torch.zeros(3, height, width)
    num_proposals = None
    if getattr(model, "proposal_generator", None) is not None and getattr(model, "roi_heads", None) is not None:
        num_proposals = cfg.MODEL.RPN.POST_NMS_TOPK_TEST
        counted, inputs = _FixedProposals(model, _regions(num_proposals, height, width)), (image,)
    else:
        counted, inputs = model, ([{"image": image, "height": height, "width": width}],)
    analysis = _analyze(FlopCountAnalysis, counted, inputs)
    # Detectron2's analysis wraps what it counts as ``model``; _FixedProposals holds it as ``model`` too.
    prefix = "model.model." if counted is not model else "model."
    by_module = analysis.by_module()
    parts = {name: Complexity(_params(part), int(by_module.get(prefix + name, 0)))
             for name, part in model.named_children() if _params(part)}
    return DetectorComplexity(_params(model), int(analysis.total()), parts, num_proposals)
