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
    assert re.fullmatch(r"pretrained/[\w]+\.pth", cfg.MODEL.WEIGHTS)
    header = open(os.path.join(ROOT, path)).read()
    if "_BASE_: \"faster_rcnn_" not in header:  # schedule variants inherit the header's config
        assert f"--arch {arch} INPUT {cfg.MODEL.WEIGHTS}" in header
    assert cfg.INPUT.FORMAT == "RGB" and list(cfg.MODEL.PIXEL_STD) == [58.395, 57.12, 57.375]
    assert cfg.SOLVER.IMS_PER_BATCH == 16 and cfg.SOLVER.REFERENCE_WORLD_SIZE == 8
    schedule = {"1x": 90000, "3x": 270000}
    if path.endswith(("_1x.yaml", "_3x.yaml")):
        assert cfg.SOLVER.MAX_ITER == schedule[path[-7:-5]]
    with torch.device("meta"):
        backbone = build_backbone(cfg)
    expected = ["p3", "p4", "p5", "p6", "p7"] if "retinanet" in path else ["p2", "p3", "p4", "p5", "p6"]
    assert list(backbone.output_shape()) == expected


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


def test_configs_readme_lists_every_config_and_no_unmeasured_ap():
    readme = open(os.path.join(ROOT, "configs", "README.md")).read()
    for path in COCO_CONFIGS:
        assert f"`{os.path.basename(path)}`" in readme, path
    rows = [line for line in readme.splitlines() if line.startswith("| `faster") or line.startswith("| `retina")]
    assert len(rows) == len(COCO_CONFIGS)
    for row in rows:  # a measured AP is only written with a link to the run's metrics
        measured = row.rstrip().rstrip("|").rsplit("|", 1)[1].strip()
        assert measured == "" or "metrics.json" in measured, row
