"""Golden complexity values: params and FLOPs of the backbones against the papers' tables."""
import os

import pytest
import torch

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


def _c4(arch, regions):
    return load_config(os.path.join(ROOT, "configs", "faster_rcnn_R50_C4_1x.yaml"),
                       ["MODEL.DEVICE", "cpu", "MODEL.WEIGHTS", "", "MODEL.RESNEXT.ARCH", arch,
                        "MODEL.RPN.POST_NMS_TOPK_TEST", str(regions)])


def test_c4_roi_heads_are_counted_at_exactly_the_test_time_regions():
    """res5 (and the box predictor) once per region, for exactly POST_NMS_TOPK_TEST regions."""
    from detectron2.modeling import build_model
    from detectron2.utils.analysis import FlopCountAnalysis

    cfg = _c4("resnext50_32x4d", 7)
    c = detector_complexity(cfg, 96, 128)
    assert c.num_proposals == 7 and list(c.parts) == ["backbone", "proposal_generator", "roi_heads"]
    assert c.flops == sum(part.flops for part in c.parts.values())
    assert c.params == sum(part.params for part in c.parts.values())
    heads = build_model(cfg).eval().roi_heads
    with torch.no_grad():
        one_region = (FlopCountAnalysis(heads.res5, torch.zeros(1, 1024, 14, 14)).total()
                      + FlopCountAnalysis(heads.box_predictor, torch.zeros(1, 2048)).total())
    assert c.parts["roi_heads"].flops == 7 * one_region


def test_analyze_model_tool_puts_r_and_x_c4_side_by_side(capsys):
    """The paper's equal complexity, in C4: X-50 has fewer parameters than R-50 and about its FLOPs."""
    from conftest import load_tool

    load_tool("analyze_model").main(["--backbones", "none", "--image-size", "96", "128", "--configs",
                                     "configs/faster_rcnn_R50_C4_1x.yaml", "configs/faster_rcnn_X50_32x4d_C4_1x.yaml",
                                     "--opts", "MODEL.RPN.POST_NMS_TOPK_TEST", "5"])
    lines = capsys.readouterr().out.strip().splitlines()
    assert lines[0].split() == ["config", "arch", "params", "(M)", "backbone", "RPN", "ROI", "heads", "GFLOPs",
                                "@96x128", "backbone", "RPN", "ROI", "heads", "ROI", "heads", "at"]
    rows = [line.split() for line in lines[2:4]]
    assert [r[1] for r in rows] == ["resnet50", "resnext50_32x4d"] and all(r[-2:] == ["5", "regions"] for r in rows)
    (r50_params, r50_flops), (x50_params, x50_flops) = ((float(r[2]), float(r[6])) for r in rows)
    assert x50_params < r50_params and abs(x50_flops - r50_flops) / r50_flops < 0.08
    assert lines[-1].startswith("ROI heads are counted at exactly MODEL.RPN.POST_NMS_TOPK_TEST regions per image")
