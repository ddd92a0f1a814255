"""Golden complexity values: params and FLOPs of the backbones against the papers' tables."""
import os

import pytest

from conftest import ROOT
from resnext_det import load_config
from resnext_det.complexity import PAPER_FIGURES, backbone_complexity, detector_complexity


@pytest.mark.parametrize("name", sorted(PAPER_FIGURES))
def test_backbone_within_3_percent_of_paper(name):
    paper = PAPER_FIGURES[name]
    c = backbone_complexity(name, stride_in_1x1=paper.stride_in_1x1)  # as the paper counts it
    assert paper.params or paper.gflops
    if paper.params:
        assert abs(c.params / 1e6 - paper.params) / paper.params < 0.03, c.params
    if paper.gflops:
        assert abs(c.flops / 1e9 - paper.gflops) / paper.gflops < 0.03, c.flops


def test_deformable_convolutions_are_counted():
    """DCN in res3-res5 of X-50-32x4d: the offset convs' weights and FLOPs, and the deformable 3x3s as
    the convolutions they compute (torchvision's op, which fvcore does not know by itself)."""
    plain = backbone_complexity("resnext50_32x4d", size=64)
    dcn = backbone_complexity("resnext50_32x4d", size=64, deform_on_per_stage=(False, True, True, True))
    # conv2_offset of each res3..res5 block: 3x3 conv, width -> 18 channels, with bias
    offsets = [(4, 256, 8), (6, 512, 4), (3, 1024, 2)]  # blocks, bottleneck width, output side at 64x64
    assert dcn.params - plain.params == sum(n * (w * 18 * 9 + 18) for n, w, _ in offsets)
    assert dcn.flops - plain.flops == sum(n * w * 18 * 9 * side * side for n, w, side in offsets)


def test_cardinality_keeps_complexity_of_resnet():
    """The paper's design rule: ResNeXt-50 32x4d costs what ResNet-50 costs (Table 1)."""
    r50, x50 = backbone_complexity("resnet50"), backbone_complexity("resnext50_32x4d")
    assert abs(x50.flops - r50.flops) / r50.flops < 0.05
    assert x50.params < r50.params


def test_detector_complexity_counts_the_whole_model():
    cfg = load_config(os.path.join(ROOT, "configs", "faster_rcnn_R50_FPN_1x.yaml"),
                      ["MODEL.DEVICE", "cpu", "MODEL.WEIGHTS", ""])
    c = detector_complexity(cfg, 320, 480)
    backbone = backbone_complexity("resnet50", num_classes=None)
    assert c.params > backbone.params and c.flops > backbone.flops
