"""Golden complexity values: params and FLOPs of the backbones against the papers' tables."""
import os

import pytest

from conftest import ROOT
from resnext_det import load_config
from resnext_det.complexity import PAPER_FIGURES, backbone_complexity, detector_complexity


@pytest.mark.parametrize("name", sorted(PAPER_FIGURES))
def test_backbone_within_3_percent_of_paper(name):
    paper_params, paper_gflops, _ = PAPER_FIGURES[name]
    c = backbone_complexity(name)
    assert abs(c.params / 1e6 - paper_params) / paper_params < 0.03, c.params
    if paper_gflops:
        assert abs(c.flops / 1e9 - paper_gflops) / paper_gflops < 0.03, c.flops


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
