"""configs/: every file loads, builds, names its weights, and follows the schedules it states."""
import glob
import os
import re

import pytest
import torch
from detectron2.engine import DefaultTrainer
from detectron2.modeling import build_backbone, build_model

from conftest import ROOT
from resnext_det import list_backbones, load_config
from resnext_det.checkpoint import lookup_weights
from resnext_det.checkpoint.uri import expected_input

CONFIGS = sorted(os.path.relpath(p, ROOT) for p in glob.glob(os.path.join(ROOT, "configs", "*.yaml"))
                 if not os.path.basename(p).startswith("Base-"))
COCO_CONFIGS = [c for c in CONFIGS if "demo" not in c]
FPN_CONFIGS = [c for c in COCO_CONFIGS if "_C4_" not in c]  # the C4 configs: tests/test_c4.py


def _load(path, *opts):
    return load_config(os.path.join(ROOT, path), ["MODEL.DEVICE", "cpu", *opts])


@pytest.mark.parametrize("path", FPN_CONFIGS)
def test_coco_config_loads_names_its_weights_and_builds(path):
    cfg = _load(path)
    arch = cfg.MODEL.RESNEXT.ARCH
    assert arch in list_backbones()
    assert cfg.DATASETS.TRAIN == ("coco_2017_train",) and cfg.DATASETS.TEST == ("coco_2017_val",)
    weights = lookup_weights(cfg.MODEL.WEIGHTS)  # ImageNet weights by URI, for this arch (no download here)
    assert weights.arch == arch
    header = open(os.path.join(ROOT, path)).read()
    if not re.search(r'_BASE_: "(?!Base-)', header):  # variants of another config inherit its header
        assert f"# ImageNet weights: {cfg.MODEL.WEIGHTS} (" in header
    expects = expected_input(weights)  # the input the weights expect is the config's
    assert cfg.INPUT.FORMAT == expects["INPUT.FORMAT"] == "RGB"
    assert list(cfg.MODEL.PIXEL_MEAN) == expects["MODEL.PIXEL_MEAN"]
    assert list(cfg.MODEL.PIXEL_STD) == expects["MODEL.PIXEL_STD"]
    assert cfg.MODEL.RESNEXT.STRIDE_IN_1X1 == expects["MODEL.RESNEXT.STRIDE_IN_1X1"]
    assert cfg.SOLVER.IMS_PER_BATCH == 16 and cfg.SOLVER.REFERENCE_WORLD_SIZE == 8
    schedule = {"1x": 90000, "3x": 270000}
    if path.endswith(("_1x.yaml", "_3x.yaml")):
        assert cfg.SOLVER.MAX_ITER == schedule[path[-7:-5]]
    with torch.device("meta"):
        backbone = build_backbone(cfg)
    expected = ["p3", "p4", "p5", "p6", "p7"] if "retinanet" in path else ["p2", "p3", "p4", "p5", "p6"]
    assert list(backbone.output_shape()) == expected


@pytest.mark.parametrize("path", [c for c in COCO_CONFIGS if "mask_rcnn" in c])
def test_mask_and_cascade_configs_build_their_heads(path):
    from detectron2.modeling import META_ARCH_REGISTRY
    from detectron2.modeling.roi_heads import CascadeROIHeads

    cfg = _load(path)
    with torch.device("meta"):
        model = META_ARCH_REGISTRY.get(cfg.MODEL.META_ARCHITECTURE)(cfg)
    assert cfg.MODEL.MASK_ON and model.roi_heads.mask_on
    assert model.roi_heads.mask_head.predictor.out_channels == 80
    assert isinstance(model.roi_heads, CascadeROIHeads) == path.startswith("configs/cascade_")
    if path.startswith("configs/cascade_"):  # Detectron2's cascade settings
        assert cfg.MODEL.ROI_BOX_HEAD.CLS_AGNOSTIC_BBOX_REG and cfg.MODEL.RPN.POST_NMS_TOPK_TRAIN == 2000
        assert len(model.roi_heads.box_predictor) == 3


def test_the_headline_config_exists_under_its_name():
    cfg = _load("configs/faster_rcnn_X101_32x8d_FPN.yaml")
    assert cfg.MODEL.RESNEXT.ARCH == "resnext101_32x8d" and cfg.SOLVER.MAX_ITER == 270000
    model = build_model(cfg).eval()
    with torch.no_grad():
        out = model([{"image": torch.zeros(3, 128, 160), "height": 128, "width": 160}])
    assert "instances" in out[0]


@pytest.mark.parametrize("arch", ["S50", "S101"])
def test_resnest_configs_train_as_the_authors_did(arch):
    cfg = _load(f"configs/faster_rcnn_{arch}_FPN_1x.yaml")
    assert cfg.MODEL.RESNEXT.NORM == cfg.MODEL.FPN.NORM == cfg.MODEL.ROI_BOX_HEAD.NORM == "SyncBN"
    assert (cfg.MODEL.ROI_BOX_HEAD.NUM_CONV, cfg.MODEL.ROI_BOX_HEAD.NUM_FC) == (4, 1)
    assert cfg.INPUT.MIN_SIZE_TRAIN_SAMPLING == "range" and tuple(cfg.INPUT.MIN_SIZE_TRAIN) == (640, 800)


@pytest.mark.parametrize("gpus, batch, lr, iters, steps", [
    (8, 16, 0.02, 90000, (60000, 80000)),
    (4, 8, 0.01, 180000, (120000, 160000)),
    (2, 4, 0.005, 360000, (240000, 320000)),
    (1, 2, 0.0025, 720000, (480000, 640000)),
])
def test_fewer_gpus_rescale_batch_lr_and_schedule_linearly(gpus, batch, lr, iters, steps):
    cfg = DefaultTrainer.auto_scale_workers(_load("configs/faster_rcnn_R50_FPN_1x.yaml"), gpus)
    assert cfg.SOLVER.IMS_PER_BATCH == batch and cfg.SOLVER.MAX_ITER == iters
    assert cfg.SOLVER.BASE_LR == pytest.approx(lr) and tuple(cfg.SOLVER.STEPS) == steps


@pytest.mark.parametrize("arch", ["X101_32x4d", "X101_64x4d"])
def test_dcn_configs_put_deformable_convolutions_in_res3_to_res5(arch):
    from resnext_det.layers import DeformConv

    cfg = _load(f"configs/faster_rcnn_{arch}_FPN_dconv_c3-c5_1x.yaml")
    with torch.device("meta"):
        bottom_up = build_backbone(cfg).bottom_up
    deformable = {name: all(isinstance(block.conv2, DeformConv) for block in getattr(bottom_up, name))
                  for name in ("res2", "res3", "res4", "res5")}
    assert deformable == {"res2": False, "res3": True, "res4": True, "res5": True}
    assert not cfg.MODEL.RESNEXT.STRIDE_IN_1X1 and cfg.MODEL.RESNEXT.ARCH == f"resnext101_{arch[5:]}"


def test_configs_readme_lists_every_config_and_no_unmeasured_ap():
    readme = open(os.path.join(ROOT, "configs", "README.md")).read()
    for path in COCO_CONFIGS:
        assert f"`{os.path.basename(path)}`" in readme, path
    rows = [line for line in readme.splitlines() if re.match(r"\| `(faster|retina|mask|cascade)", line)]
    assert len(rows) == len(COCO_CONFIGS)
    for row in rows:  # a measured AP is only written with a link to the run's metrics
        measured = row.rstrip().rstrip("|").rsplit("|", 1)[1].strip()
        assert measured == "" or "metrics.json" in measured, row
