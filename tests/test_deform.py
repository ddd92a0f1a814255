"""Deformable convolutions (MODEL.RESNEXT.DEFORM_*) on torchvision's op: Detectron2's meaning, key names
and numbers, zero-offset start, training, fusing. Inputs stay small: torchvision's op is slow on CPU."""
import pytest
import torch
from detectron2.config import get_cfg
from detectron2.layers import ShapeSpec
from detectron2.modeling import build_backbone
from torchvision.ops import deform_conv2d

from conftest import random_norm_statistics
from resnext_det import ConfigError, add_resnext_config, create_backbone
from resnext_det.fuse import fuse_for_inference
from resnext_det.layers import DeformConv

C3_C5 = (False, True, True, True)


def _res3(name="resnext50_32x4d", **kw):
    return create_backbone(name, out_features=["res3"], **kw).eval()


def _detectron2_dcn_backbone(resnet, modulated, num_groups, out_features=("res2", "res3", "res4", "res5")):
    cfg = get_cfg()
    r = cfg.MODEL.RESNETS
    r.DEPTH, r.NUM_GROUPS, r.WIDTH_PER_GROUP, r.STRIDE_IN_1X1 = 50, 32, 4, False
    r.DEFORM_ON_PER_STAGE, r.DEFORM_MODULATED, r.DEFORM_NUM_GROUPS = list(C3_C5), modulated, num_groups
    r.OUT_FEATURES = list(out_features)
    return resnet.build_resnet_backbone(cfg, ShapeSpec(channels=3)).eval()


@pytest.mark.parametrize("modulated, num_groups", [(False, 1), (True, 1), (True, 4)])
def test_detectron2_dcn_checkpoint_loads_unchanged(detectron2_deform_classes, modulated, num_groups):
    theirs = _detectron2_dcn_backbone(detectron2_deform_classes, modulated, num_groups)
    assert "res3.0.conv2_offset.weight" in theirs.state_dict()
    ours = create_backbone("resnext50_32x4d", deform_on_per_stage=C3_C5, deform_modulated=modulated,
                           deform_num_groups=num_groups)
    missing, unexpected = ours.load_state_dict(theirs.state_dict(), strict=True)
    assert not missing and not unexpected
    assert ours.res3[0].conv2_offset.out_channels == (27 if modulated else 18) * num_groups
    assert ours.res2[0].conv2_offset is None


def test_equals_detectron2_deform_bottleneck_with_learned_offsets(detectron2_deform_classes):
    """Detectron2's DeformBottleneckBlock runs on CPU for DCNv1 with one offset group: same weights,
    non-zero offsets, same features (res3: a strided and three plain deformable blocks)."""
    features = ["res2", "res3"]
    theirs = random_norm_statistics(_detectron2_dcn_backbone(detectron2_deform_classes, False, 1, features))
    gen = torch.Generator().manual_seed(0)
    with torch.no_grad():
        for name, p in theirs.named_parameters():
            if "conv2_offset" in name:  # offsets of a few pixels
                p.copy_(torch.randn(p.shape, generator=gen) * 0.02)
    ours = create_backbone("resnext50_32x4d", deform_on_per_stage=C3_C5, out_features=features).eval()
    ours.load_state_dict(theirs.state_dict(), strict=True)
    x = torch.randn(1, 3, 64, 64, generator=gen)
    with torch.no_grad():
        expected, got = theirs(x), ours(x)
        plain = create_backbone("resnext50_32x4d", out_features=features).eval()
        plain.load_state_dict(theirs.state_dict(), strict=False)
        assert (plain(x)["res3"] - expected["res3"]).abs().max() > 1e-2  # the offsets do move samples
    for name in features:
        torch.testing.assert_close(got[name], expected[name], rtol=1e-4, atol=1e-4)


@pytest.mark.parametrize("name, overrides", [
    ("resnet50", {}), ("resnext50_32x4d", {"res5_dilation": 2}), ("seresnext50_32x4d", {"stride_in_1x1": True})],
    ids=["resnet50", "resnext50-dc5", "seresnext50-stride-in-1x1"])
def test_zero_offsets_give_the_plain_block(name, overrides):
    """Offsets start at zero (Detectron2's init): a DCNv1 block then computes the plain block."""
    torch.manual_seed(0)
    plain = random_norm_statistics(create_backbone(name, out_features=["res5"], **overrides).eval())
    dcn = create_backbone(name, out_features=["res5"], deform_on_per_stage=C3_C5, **overrides).eval()
    missing, unexpected = dcn.load_state_dict(plain.state_dict(), strict=False)
    assert not unexpected and missing and all(".conv2_offset." in k for k in missing)
    x = torch.randn(1, 3, 64, 48)
    with torch.no_grad():
        expected, got = plain(x)["res5"], dcn(x)["res5"]
    assert (got - expected).abs().max() / expected.abs().max() < 1e-5


def test_modulated_prediction_is_offsets_then_mask_logits():
    """DCNv2: two thirds of conv2_offset's channels are offsets, the last third mask logits (sigmoid),
    split as Detectron2's DeformBottleneckBlock splits them (chunk in three, the first two are offsets)."""
    torch.manual_seed(0)
    conv = DeformConv(64, 64, stride=2, groups=8, offset_groups=2, modulated=True).eval()
    predictor = conv.offset_predictor()
    assert predictor.out_channels == 27 * 2
    torch.nn.init.normal_(predictor.weight, std=0.05)
    x = torch.randn(1, 64, 12, 12)
    with torch.no_grad():
        prediction = predictor(x)
        first, second, logits = torch.chunk(prediction, 3, dim=1)
        expected = deform_conv2d(x, torch.cat([first, second], 1), conv.weight, stride=2, padding=1,
                                 mask=logits.sigmoid())
        torch.testing.assert_close(conv(x, prediction), expected)


def test_modulated_block_starts_with_every_point_weighted_one_half():
    torch.manual_seed(0)
    plain = _res3()
    dcn = _res3(deform_on_per_stage=C3_C5, deform_modulated=True)
    state = plain.state_dict()
    for key in [k for k in state if k.startswith("res3.") and k.endswith("conv2.weight")]:
        state[key] = state[key] * 2  # the initial mask, sigmoid(0) = 0.5, halves the 3x3
    dcn.load_state_dict(state, strict=False)
    x = torch.randn(1, 3, 64, 64)
    with torch.no_grad():
        torch.testing.assert_close(dcn(x)["res3"], plain(x)["res3"], rtol=1e-4, atol=1e-5)


def test_offsets_and_mask_learn():
    torch.manual_seed(0)
    model = create_backbone("resnext50_32x4d", norm="BN", out_features=["res3"], deform_on_per_stage=C3_C5,
                            deform_modulated=True, deform_num_groups=2).train()
    out = model(torch.randn(2, 3, 32, 32))["res3"]
    (out * torch.randn_like(out)).sum().backward()
    offsets = [p for n, p in model.named_parameters() if "conv2_offset" in n]
    assert offsets and all(p.grad is not None and p.grad.abs().sum() > 0 for p in offsets)


def test_fused_dcn_backbone_equals_unfused():
    torch.manual_seed(0)
    model = random_norm_statistics(_res3(deform_on_per_stage=C3_C5, deform_modulated=True), scale=(0.25, 0.75))
    for block in model.res3:
        torch.nn.init.normal_(block.conv2_offset.weight, std=0.02)
    x = torch.randn(1, 3, 64, 64)
    with torch.no_grad():
        expected = model(x)["res3"]
        got = fuse_for_inference(model)(x)["res3"]
    assert model.res3[0].conv2.norm is None and model.res3[0].conv2.bias is not None
    torch.testing.assert_close(got, expected, rtol=1e-4, atol=1e-4)


# torchvision's op checks its offset channels in Python: a constant of the model, the trace stays general.
@pytest.mark.filterwarnings("ignore::torch.jit.TracerWarning", "ignore:.*is deprecated:FutureWarning")
def test_dcn_traces_and_refuses_onnx_in_one_line(tmp_path):
    from resnext_det.export import ExportError, export_backbone_onnx, trace_backbone

    model = _res3(deform_on_per_stage=C3_C5)
    x = torch.randn(1, 3, 32, 32)
    with torch.no_grad():
        torch.testing.assert_close(trace_backbone(model, x)(x)["res3"], model(x)["res3"])
    with pytest.raises(ExportError, match="deformable convolutions .* use --format torchscript$"):
        export_backbone_onnx(model, x, str(tmp_path / "dcn.onnx"))


def _cfg(**resnext):
    cfg = add_resnext_config(get_cfg())
    cfg.MODEL.BACKBONE.NAME = "build_resnext_backbone"
    cfg.MODEL.RESNEXT.OUT_FEATURES = ["res3"]
    for key, value in resnext.items():
        cfg.MODEL.RESNEXT[key] = value
    return cfg


def test_config_keys_reach_the_backbone():
    cfg = _cfg(ARCH="resnext101_32x4d", DEFORM_ON_PER_STAGE=[False, True, False, False],
               DEFORM_MODULATED=True, DEFORM_NUM_GROUPS=4)
    with torch.device("meta"):
        model = build_backbone(cfg, ShapeSpec(channels=3))
    assert model.spec.deform_on_per_stage == (False, True, False, False)
    conv = model.res3[0].conv2
    assert isinstance(conv, DeformConv) and conv.modulated and conv.offset_groups == 4 and conv.groups == 32


@pytest.mark.parametrize("resnext, message", [
    ({"ARCH": "resnest50", "DEFORM_ON_PER_STAGE": list(C3_C5)},
     "MODEL.RESNEXT.DEFORM_ON_PER_STAGE=.* replaces the plain or grouped 3x3, but this arch uses the 'splat'"),
    ({"ARCH": "skresnext50_32x4d", "DEFORM_ON_PER_STAGE": list(C3_C5)}, "uses the 'sk' transform"),
    ({"DEFORM_ON_PER_STAGE": [True, True]}, r"DEFORM_ON_PER_STAGE=\[True, True\] is invalid: give four booleans"),
    ({"DEFORM_ON_PER_STAGE": list(C3_C5), "DEFORM_NUM_GROUPS": 3},
     "MODEL.RESNEXT.DEFORM_NUM_GROUPS=3 is invalid: must divide res2's bottleneck width 128"),
])
def test_bad_deform_settings_name_the_key(resnext, message):
    with pytest.raises(ConfigError, match=message):
        build_backbone(_cfg(**resnext), ShapeSpec(channels=3))
