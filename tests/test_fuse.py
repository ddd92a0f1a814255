"""fuse_for_inference: norms folded into convolutions, same outputs, no training afterwards."""
import os

import pytest
import torch
from detectron2.layers import FrozenBatchNorm2d
from detectron2.modeling import build_model

from conftest import ROOT, random_norm_statistics
from resnext_det import create_backbone, list_backbones, load_config
from resnext_det.fuse import fuse_for_inference, is_fused


def _random_statistics(model):
    # Scales below 1, as in trained networks: with larger ones a 200-layer random network amplifies
    # float32 rounding until any two orders of summation differ.
    return random_norm_statistics(model, scale=(0.25, 0.75))


def _norms(model):
    return [m for m in model.modules() if isinstance(m, (FrozenBatchNorm2d, torch.nn.BatchNorm2d))]


def _unfolded_norm_names(model):
    """Norms left after fusing; only those no convolution precedes (ResNet-v2's input and output norms) may stay."""
    return [name for name, m in model.named_modules() if isinstance(m, (FrozenBatchNorm2d, torch.nn.BatchNorm2d))
            and not (name.endswith(".preact_norm") or name.startswith("output_norms."))]


@pytest.mark.parametrize("name", list_backbones())
def test_fused_backbone_equals_unfused(name):
    torch.manual_seed(0)
    model = _random_statistics(create_backbone(name).eval())
    x = torch.randn(1, 3, 64, 96)
    with torch.no_grad():
        expected = model(x)
        fused = fuse_for_inference(model)
        got = fused(x)
    assert is_fused(fused) and not _unfolded_norm_names(fused)
    for feature, tensor in expected.items():
        error = (got[feature] - tensor).abs().max() / tensor.abs().max()
        assert error < 1e-4, (feature, float(error))
    with pytest.raises(RuntimeError, match="cannot train"):
        fused.train()
    fused.eval()  # eval stays allowed


def test_group_norm_stays_and_bn_in_eval_folds():
    model = fuse_for_inference(create_backbone("resnext50_32x4d", norm="GN", out_features=["res2"]))
    assert any(isinstance(m, torch.nn.GroupNorm) for m in model.modules())
    model = fuse_for_inference(_random_statistics(create_backbone("resnest50", norm="BN")))
    assert not _norms(model)


def test_fused_faster_rcnn_gives_the_same_detections():
    torch.manual_seed(0)
    cfg = load_config(os.path.join(ROOT, "configs", "faster_rcnn_X50_32x4d_FPN_1x.yaml"),
                      ["MODEL.DEVICE", "cpu", "MODEL.WEIGHTS", "", "MODEL.ROI_HEADS.SCORE_THRESH_TEST", "0.0"])
    model = _random_statistics(build_model(cfg)).eval()
    inputs = [{"image": torch.rand(3, 160, 224) * 255, "height": 160, "width": 224}]
    with torch.no_grad():
        expected = model(inputs)[0]["instances"]
        got = fuse_for_inference(model)(inputs)[0]["instances"]
    assert len(got) == len(expected) > 0
    torch.testing.assert_close(got.pred_boxes.tensor, expected.pred_boxes.tensor, rtol=1e-4, atol=1e-3)
    torch.testing.assert_close(got.scores, expected.scores, rtol=1e-4, atol=1e-4)


@pytest.mark.parametrize("channels_last", [None, True, False])
def test_channels_last_layout(channels_last):
    """On CPU the fused model runs channels-last by default; the values do not change."""
    torch.manual_seed(0)
    model = _random_statistics(create_backbone("resnext50_32x4d", out_features=["res2", "res5"]).eval())
    x = torch.randn(1, 3, 64, 96)
    with torch.no_grad():
        expected = model(x)
        got = fuse_for_inference(model, channels_last=channels_last)(x)
    want_nhwc = channels_last is not False
    assert model.stem.conv1.weight.is_contiguous(memory_format=torch.channels_last) == want_nhwc
    for feature, tensor in expected.items():
        assert got[feature].is_contiguous(memory_format=torch.channels_last) == want_nhwc
        torch.testing.assert_close(got[feature], tensor, rtol=1e-4, atol=1e-4 * float(tensor.abs().max()))
