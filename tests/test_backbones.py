"""The backbone family: shapes, gradients, freezing, FPN adapters, parameter parity, module names."""
import pytest
import torch
import torchvision
from detectron2.config import get_cfg
from detectron2.layers import FrozenBatchNorm2d, ShapeSpec
from detectron2.modeling import BACKBONE_REGISTRY, build_backbone

import resnext_det
from conftest import random_norm_statistics
from resnext_det import add_resnext_config, create_backbone, list_backbones

timm = pytest.importorskip("timm")

NAMES = list_backbones()
STAGES = ["res2", "res3", "res4", "res5"]


def n_params(module):
    return sum(p.numel() for p in module.parameters())


def test_names_are_the_documented_ones():
    assert NAMES == [
        "resnet50", "resnet101", "resnet152", "resnetv2_50", "resnetv2_101", "seresnet50", "seresnet101",
        "seresnet152", "resnext50_32x4d", "resnext101_32x4d", "resnext101_32x8d",
        "resnext101_64x4d", "resnext152_32x4d", "seresnext50_32x4d", "seresnext101_32x4d",
        "seresnext101_32x8d", "skresnext50_32x4d", "resnest50", "resnest101", "resnest200", "resnest269",
    ]


def test_builders_are_registered():
    for name in ["build_resnext_backbone", "build_resnext_fpn_backbone", "build_resnext_retinanet_fpn_backbone"]:
        assert BACKBONE_REGISTRY.get(name) is not None


@pytest.mark.parametrize("name", NAMES)
def test_shapes_match_output_shape_and_all_params_get_gradients(name):
    torch.manual_seed(0)
    model = create_backbone(name, norm="BN", out_features=["stem"] + STAGES).train()
    x = torch.randn(2, 3, 96, 64)
    out = model(x)
    shapes = model.output_shape()
    assert list(out) == ["stem"] + STAGES
    for feature, tensor in out.items():
        spec = shapes[feature]
        assert tensor.shape == (2, spec.channels, 96 // spec.stride, 64 // spec.stride), feature
    assert [shapes[f].stride for f in STAGES] == [4, 8, 16, 32]
    assert [shapes[f].channels for f in STAGES] == [256, 512, 1024, 2048]
    # A random projection of every output, so that no norm cancels the gradient.
    loss = sum((t * torch.randn_like(t)).sum() for t in out.values())
    loss.backward()
    missing = [n for n, p in model.named_parameters() if p.grad is None or not p.grad.abs().sum() > 0]
    assert not missing, missing[:5]


# The same architecture, random weights, in torchvision or timm (classifier removed).
def _timm_resnet(layers, **kwargs):
    from timm.models.resnet import Bottleneck, ResNet

    return ResNet(Bottleneck, layers, **kwargs)


REFERENCES = {
    "resnet50": lambda: torchvision.models.resnet50(),
    "resnet101": lambda: torchvision.models.resnet101(),
    "resnet152": lambda: torchvision.models.resnet152(),
    "resnetv2_50": lambda: timm.create_model("resnetv2_50"),
    "resnetv2_101": lambda: timm.create_model("resnetv2_101"),
    "seresnet50": lambda: timm.create_model("seresnet50"),
    "seresnet101": lambda: timm.create_model("seresnet101"),
    "seresnet152": lambda: timm.create_model("seresnet152"),
    "resnext50_32x4d": lambda: torchvision.models.resnext50_32x4d(),
    "resnext101_32x4d": lambda: timm.create_model("resnext101_32x4d"),
    "resnext101_32x8d": lambda: torchvision.models.resnext101_32x8d(),
    "resnext101_64x4d": lambda: torchvision.models.resnext101_64x4d(),
    "resnext152_32x4d": lambda: _timm_resnet([3, 8, 36, 3], cardinality=32, base_width=4),
    "seresnext50_32x4d": lambda: timm.create_model("seresnext50_32x4d"),
    "seresnext101_32x4d": lambda: timm.create_model("seresnext101_32x4d"),
    "seresnext101_32x8d": lambda: timm.create_model("seresnext101_32x8d"),
    "skresnext50_32x4d": lambda: timm.create_model("skresnext50_32x4d"),
    "resnest50": lambda: timm.create_model("resnest50d"),
    "resnest101": lambda: timm.create_model("resnest101e"),
    "resnest200": lambda: timm.create_model("resnest200e"),
    "resnest269": lambda: timm.create_model("resnest269e"),
}


@pytest.mark.parametrize("name", NAMES)
def test_parameter_count_equals_reference_implementation(name):
    reference = REFERENCES[name]()
    expected = n_params(reference) - n_params(reference.get_classifier() if hasattr(reference, "get_classifier")
                                              else reference.fc)
    model = create_backbone(name, norm="BN")
    # ResNet-v2: the norms on res2..res4's outputs are ours; timm has only the final one (on res5).
    added = sum(n_params(norm) for feature, norm in model.output_norms.items() if feature != "res5")
    assert (added > 0) == model.spec.preact
    assert n_params(model) - added == expected


def test_resnext50_with_classifier_is_25_0m_as_in_the_paper():
    # ResNeXt paper, Table 1: ResNeXt-50 (32x4d) has 25.0 x 10^6 parameters.
    model = create_backbone("resnext50_32x4d", norm="BN", num_classes=1000, out_features=["linear"])
    assert round(n_params(model) / 1e6, 1) == 25.0
    assert model(torch.randn(1, 3, 64, 64))["linear"].shape == (1, 1000)
    shapes = create_backbone("resnet50", num_classes=10, out_features=["res5", "linear"]).output_shape()
    assert (shapes["linear"].channels, shapes["res5"].channels, shapes["res5"].stride) == (10, 2048, 32)


@pytest.mark.parametrize("name", ["resnext50_32x4d", "resnest50"])
@pytest.mark.parametrize("freeze_at", range(6))
def test_freeze_at_freezes_the_stem_and_first_stages(name, freeze_at):
    model = create_backbone(name, norm="BN", freeze_at=freeze_at)
    parts = ["stem"] + STAGES
    for i, part in enumerate(parts):
        module = getattr(model, part)
        frozen = i + 1 <= freeze_at
        grads = {p.requires_grad for p in module.parameters()}
        assert grads == {not frozen}, (part, grads)
        norms = [m for m in module.modules() if isinstance(m, (FrozenBatchNorm2d, torch.nn.BatchNorm2d))]
        assert all(isinstance(m, FrozenBatchNorm2d) == frozen for m in norms), part


def _cfg(arch="resnext50_32x4d", backbone="build_resnext_fpn_backbone", **resnext):
    cfg = add_resnext_config(get_cfg())
    cfg.MODEL.BACKBONE.NAME = backbone
    cfg.MODEL.RESNEXT.ARCH = arch
    for key, value in resnext.items():
        cfg.MODEL.RESNEXT[key] = value
    return cfg


@pytest.mark.parametrize("arch", ["resnext50_32x4d", "resnest50", "skresnext50_32x4d"])
def test_fpn_for_rcnn_gives_p2_to_p6(arch):
    cfg = _cfg(arch)
    cfg.MODEL.FPN.IN_FEATURES = STAGES
    fpn = build_backbone(cfg, ShapeSpec(channels=3)).eval()
    out = fpn(torch.randn(1, 3, 128, 192))
    assert list(out) == ["p2", "p3", "p4", "p5", "p6"]
    for name, tensor in out.items():
        stride = fpn.output_shape()[name].stride
        assert stride == 2 ** int(name[1:])
        assert tensor.shape == (1, 256, 128 // stride, 192 // stride)


def test_fpn_for_retinanet_gives_p3_to_p7():
    cfg = _cfg(backbone="build_resnext_retinanet_fpn_backbone")
    cfg.MODEL.FPN.IN_FEATURES = ["res3", "res4", "res5"]
    fpn = build_backbone(cfg, ShapeSpec(channels=3)).eval()
    out = fpn(torch.randn(1, 3, 256, 256))
    assert list(out) == ["p3", "p4", "p5", "p6", "p7"]
    assert [t.shape[-1] for t in out.values()] == [32, 16, 8, 4, 2]


def test_config_overrides_reach_the_backbone():
    cfg = _cfg("resnext50_32x4d", "build_resnext_backbone", DEPTH=101, NUM_GROUPS=64, ATTENTION="se",
               NORM="BN", RES5_DILATION=2)
    cfg.MODEL.BACKBONE.FREEZE_AT = 0
    model = build_backbone(cfg, ShapeSpec(channels=3))
    assert model.spec.depth == 101 and model.spec.num_groups == 64 and model.spec.attention == "se"
    assert len(model.res4) == 23 and model.res2[0].conv2.groups == 64
    assert model.output_shape()["res5"].stride == 16
    assert model.res5[0].conv2.dilation == (2, 2)


def test_stride_in_1x1_moves_the_stride():
    default = create_backbone("resnext50_32x4d")
    msra = create_backbone("resnext50_32x4d", stride_in_1x1=True)
    assert default.res3[0].conv1.stride == (1, 1) and default.res3[0].conv2.stride == (2, 2)
    assert msra.res3[0].conv1.stride == (2, 2) and msra.res3[0].conv2.stride == (1, 1)


def test_zero_init_residual_makes_each_block_start_as_identity_plus_projection():
    model = create_backbone("resnext50_32x4d", norm="BN", zero_init_residual=True).eval()
    block = model.res2[1]  # an identity-shortcut block
    assert torch.count_nonzero(block.conv3.norm.weight) == 0
    x = torch.rand(1, 256, 8, 8)
    torch.testing.assert_close(block(x.clone()), x)


def test_resnest_blocks_use_average_pool_downsampling():
    model = create_backbone("resnest50")
    first = model.res3[0]
    assert isinstance(first.avd, torch.nn.AvgPool2d) and first.conv2.conv.stride == (1, 1)
    assert isinstance(first.shortcut_pool, torch.nn.AvgPool2d) and first.shortcut.stride == (1, 1)
    assert model.stem.out_channels == 64 and create_backbone("resnest101").stem.out_channels == 128


@pytest.mark.parametrize("norm", ["FrozenBN", "BN", "SyncBN", "GN"])
@pytest.mark.parametrize("name", ["resnext50_32x4d", "skresnext50_32x4d", "resnest50"])
def test_every_norm_builds_and_runs(norm, name):
    model = create_backbone(name, norm=norm, out_features=["res3"]).train()
    out = model(torch.randn(2, 3, 64, 64))["res3"]
    assert out.shape == (2, 512, 8, 8) and torch.isfinite(out).all()


def test_create_backbone_is_a_plain_module_usable_outside_detectron2():
    model = create_backbone("resnext50_32x4d", out_features=["res4"])
    assert isinstance(model, torch.nn.Module) and not hasattr(model, "res5")
    assert list(model(torch.randn(1, 3, 64, 64))) == ["res4"]
    assert resnext_det.ARCHS["resnext50_32x4d"].num_groups == 32


def test_preact_block_order_and_normalized_features():
    """ResNet-v2: no norm in the stem or after conv3 / the projection; each block normalizes its input;
    each returned map (and the classifier's input) passes through its output norm and ReLU."""
    torch.manual_seed(0)
    model = random_norm_statistics(create_backbone("resnetv2_50", out_features=["res2", "res4"])).eval()
    block = model.res2[0]
    assert block.preact_norm is not None and block.conv3.norm is None and block.shortcut.norm is None
    assert model.stem.conv1.norm is None and set(model.output_norms) == {"res2", "res4"}
    x = torch.randn(1, 3, 64, 64)
    with torch.no_grad():
        out = model(x)
        res2 = model.res2(model.stem(x))
        torch.testing.assert_close(out["res2"], torch.relu(model.output_norms["res2"](res2)))
        torch.testing.assert_close(out["res4"], torch.relu(model.output_norms["res4"](model.res4(model.res3(res2)))))
    classifier = create_backbone("resnetv2_50", num_classes=10, out_features=["linear"])
    assert set(classifier.output_norms) == {"res5"}


def test_preact_output_norms_freeze_with_their_stage_and_zero_init_gives_identity():
    model = create_backbone("resnetv2_50", norm="BN", freeze_at=3)
    assert isinstance(model.output_norms["res3"], FrozenBatchNorm2d)
    assert isinstance(model.output_norms["res4"], torch.nn.BatchNorm2d)
    assert model.output_norms["res4"].weight.requires_grad
    block = create_backbone("resnetv2_50", zero_init_residual=True).res2[1].eval()  # FrozenBN is fine here
    x = torch.randn(1, 256, 8, 8)
    torch.testing.assert_close(block(x.clone()), x)
