"""A plain Detectron2 ``get_cfg()`` + ``add_resnext_config``: the backbones build, every shipped YAML merges,
a detector of one's own trains on ``build_backbone``, and Detectron2's Res5ROIHeads over the backbone is
refused only where a whole model is built."""
import glob
import os

import pytest
import torch
from detectron2.config import get_cfg
from detectron2.modeling import BACKBONE_REGISTRY, build_backbone
from torch import nn

from conftest import ROOT
from resnext_det import ConfigError, add_resnext_config, build_model, load_config

YAMLS = sorted(os.path.relpath(p, ROOT) for p in glob.glob(os.path.join(ROOT, "configs", "**", "*.yaml"),
                                                            recursive=True))

# Every backbone builder this package registers, and what it returns from Detectron2's defaults.
BUILDERS = {
    "build_resnext_backbone": (["res2", "res3", "res4", "res5"], [4, 8, 16, 32]),
    "build_resnext_fpn_backbone": (["p2", "p3", "p4", "p5", "p6"], [4, 8, 16, 32, 64]),
    "build_resnext_retinanet_fpn_backbone": (["p3", "p4", "p5", "p6", "p7"], [8, 16, 32, 64, 128]),
}


def _cfg(backbone, **resnext):
    cfg = add_resnext_config(get_cfg())
    cfg.MODEL.DEVICE = "cpu"
    cfg.MODEL.BACKBONE.NAME = backbone
    for key, value in resnext.items():
        cfg.MODEL.RESNEXT[key] = value
    return cfg


def test_builders_listed_are_every_builder_the_package_registers():
    ours = {name for name, fn in BACKBONE_REGISTRY if fn.__module__.startswith("resnext_det")}
    assert ours == set(BUILDERS)


@pytest.mark.parametrize("backbone", sorted(BUILDERS))
def test_backbone_builds_from_detectron2_defaults(backbone):
    cfg = _cfg(backbone)
    assert cfg.MODEL.ROI_HEADS.NAME == "Res5ROIHeads" and list(cfg.MODEL.FPN.IN_FEATURES) == []  # Detectron2's
    model = build_backbone(cfg).eval()
    names, strides = BUILDERS[backbone]
    shapes = model.output_shape()
    assert list(shapes) == names and [shapes[k].stride for k in names] == strides
    with torch.no_grad():
        out = model(torch.randn(1, 3, 64, 64))
    assert list(out) == names
    for name in names:
        assert out[name].shape[1] == shapes[name].channels
        assert out[name].shape[-1] == max(1, 64 // shapes[name].stride)


@pytest.mark.parametrize("path", YAMLS)
def test_shipped_yaml_merges_into_get_cfg(path):
    cfg = add_resnext_config(get_cfg())
    cfg.merge_from_file(os.path.join(ROOT, path))
    assert cfg.MODEL.BACKBONE.NAME in BACKBONE_REGISTRY
    # The same config load_config makes (which also checks the files and values).
    assert cfg.dump() == load_config(os.path.join(ROOT, path)).dump()


def test_add_resnext_config_is_idempotent():
    cfg = add_resnext_config(get_cfg())
    assert cfg.SOLVER.OPTIMIZER == "SGD" and cfg.SOLVER.AMP.PRECISION == "" and cfg.MODEL.RESNEXT.ARCH
    cfg.SOLVER.OPTIMIZER, cfg.SOLVER.AMP.PRECISION, cfg.MODEL.RESNEXT.ARCH = "AdamW", "bf16", "resnet50"
    before = cfg.dump()
    assert add_resnext_config(cfg) is cfg and cfg.dump() == before


class Heatmap(nn.Module):
    """A detector of one's own: the backbone's p2 and a small conv head predicting per-pixel objectness."""

    def __init__(self, cfg):
        super().__init__()
        self.backbone = build_backbone(cfg)
        channels = self.backbone.output_shape()["p2"].channels
        self.head = nn.Sequential(nn.Conv2d(channels, 32, 3, padding=1), nn.ReLU(), nn.Conv2d(32, 1, 1))

    def forward(self, images, targets):
        logits = self.head(self.backbone(images)["p2"])
        target = nn.functional.adaptive_max_pool2d(targets, logits.shape[-2:])
        return nn.functional.binary_cross_entropy_with_logits(logits, target)


def test_custom_detector_trains_on_build_backbone():
    torch.manual_seed(0)
    cfg = _cfg("build_resnext_fpn_backbone", ARCH="resnet50", NORM="BN")  # BN: batch statistics from random init
    model = Heatmap(cfg).train()
    images = torch.randn(2, 3, 64, 64)
    targets = torch.zeros(2, 1, 64, 64)
    targets[0, :, 8:24, 16:40] = 1
    targets[1, :, 30:60, 4:20] = 1
    trained = [p for p in model.parameters() if p.requires_grad]
    frozen = [p for p in model.backbone.bottom_up.stem.parameters()]  # MODEL.BACKBONE.FREEZE_AT 2
    assert frozen and not any(p.requires_grad for p in frozen)
    before = {id(p): p.detach().clone() for p in model.parameters()}
    optimizer = torch.optim.SGD(trained, lr=0.01, momentum=0.9)
    losses = []
    for _ in range(3):
        loss = model(images, targets)
        assert torch.isfinite(loss)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        losses.append(loss.item())
    changed = {id(p) for p in trained if not torch.equal(p.detach(), before[id(p)])}
    for p in (model.head[0].weight, model.backbone.fpn_output2.weight, model.backbone.bottom_up.res5[0].conv1.weight):
        assert id(p) in changed
    assert all(torch.equal(p.detach(), before[id(p)]) for p in frozen)
    assert losses[-1] < losses[0], losses


def test_res5_roi_heads_over_the_backbone_is_refused_when_the_model_is_built():
    cfg = _cfg("build_resnext_backbone", OUT_FEATURES=["res4"])
    with torch.device("meta"):
        assert list(build_backbone(cfg).output_shape()) == ["res4"]  # the backbone alone builds
    with pytest.raises(ConfigError) as err:
        build_model(cfg)
    message = str(err.value)
    assert "\n" not in message and message.startswith("MODEL.ROI_HEADS.NAME=Res5ROIHeads builds Detectron2's plain")
    assert "set MODEL.ROI_HEADS.NAME ResNeXtRes5ROIHeads" in message
    cfg.MODEL.ROI_HEADS.NAME = "ResNeXtRes5ROIHeads"  # the fix the message names
    cfg.MODEL.DEVICE = "meta"
    with torch.device("meta"):
        model = build_model(cfg)
    assert type(model.roi_heads).__name__ == "ResNeXtRes5ROIHeads"
    assert model.roi_heads.res5[0].conv2.groups == 32  # MODEL.RESNEXT.ARCH's res5, not a plain ResNet's
