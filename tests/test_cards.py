"""Architecture cards (tools/analyze_model.py --card): what they say is read off the built modules, and
the tool writes a PNG for every preset (a sample here, all of them under e2e)."""
import os

import pytest
import torch

from conftest import ROOT, load_tool
from resnext_det import create_backbone, list_backbones
from resnext_det.cards import describe_backbone

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


def _card(name, size=64, **overrides):
    return describe_backbone(name, create_backbone(name, norm="BN", **overrides), size)


def _labels(steps):
    return " | ".join(step.label for step in steps)


def test_card_totals_are_the_model_parameters_and_fvcore_flops():
    from fvcore.nn import FlopCountAnalysis

    model = create_backbone("resnetv2_50", norm="BN")
    card = describe_backbone("resnetv2_50", model, 64)
    assert card.params == sum(p.numel() for p in model.parameters())
    with torch.no_grad():
        total = FlopCountAnalysis(model, torch.zeros(1, 3, 64, 64)).unsupported_ops_warnings(False).total()
    assert card.flops == total
    assert [r.name for r in card.rows] == ["stem", "res2", "res3", "res4", "res5"]
    assert [(r.blocks, r.out_channels, r.width, r.stride) for r in card.rows[1:]] == [
        (3, 256, 64, 4), (4, 512, 128, 8), (6, 1024, 256, 16), (3, 2048, 512, 32)]
    assert card.other_params[0][0] == "output norms" and "pre-activation" in card.block[0].label
    assert "no norm" in _labels(card.stem) and card.block[-1].label == "+"  # nothing after the sum


@pytest.mark.parametrize("name, overrides, transform, stride_at, words", [
    ("resnext50_32x4d", {}, "3x3, g32", "the 3x3, the 1x1 projection", ["32 groups"]),
    ("resnext50_32x4d", {"stride_in_1x1": True}, "3x3, g32", "the first 1x1, the 1x1 projection", []),
    ("seresnet50", {}, "3x3 + SE", "the 3x3, the 1x1 projection", ["squeeze-excitation", "+ · ReLU"]),
    ("skresnext50_32x4d", {}, "SK, g32", "the 3x3, the 1x1 projection", ["selective kernel: 2 grouped 3x3"]),
    ("resnest50", {}, "split attention, g1 r2", "an avg-pool after the 3x3, an avg-pool before the projection",
     ["radix 2", "3x3 avg-pool"]),
])
def test_card_names_transform_attention_and_stride(name, overrides, transform, stride_at, words):
    card = _card(name, **overrides)
    assert {r.transform for r in card.rows[1:]} == {transform}
    assert card.stride_at == stride_at
    text = _labels(card.block + card.shortcut)
    assert all(word in text for word in words), text


def test_card_of_a_dcn_config_shows_deformable_stages(tmp_path, capsys):
    tool = load_tool("analyze_model")
    output = tmp_path / "dcn.png"
    config = tmp_path / "dcn_x50.yaml"  # the X101 DCN config's settings on a 50-layer net, to stay quick
    dcn = os.path.join(ROOT, "configs", "faster_rcnn_X101_32x4d_FPN_dconv_c3-c5_1x.yaml")
    config.write_text(f"_BASE_: {dcn}\nMODEL:\n  RESNEXT:\n    ARCH: resnext50_32x4d\n")
    tool.main(["--card", str(config), "--output", str(output), "--size", "64"])
    printed = capsys.readouterr().out
    assert output.read_bytes()[:8] == PNG_SIGNATURE and output.stat().st_size < 200_000
    assert "DCN in res3, res4, res5" in printed
    rows = {line.split()[0]: line for line in printed.splitlines() if line.startswith("res")}
    assert "DCN 3x3, g32" in rows["res4"] and "DCN" not in rows["res2"]


@pytest.mark.parametrize("name", [pytest.param(n, marks=() if n == "seresnet50" else pytest.mark.e2e)
                                  for n in list_backbones()])
def test_card_tool_writes_a_png_for_every_preset(name, tmp_path, capsys):
    output = tmp_path / f"{name}.png"
    load_tool("analyze_model").main(["--card", name, "--output", str(output)])
    assert output.read_bytes()[:8] == PNG_SIGNATURE and output.stat().st_size < 200_000
    printed = capsys.readouterr().out
    assert f"wrote {output}" in printed and "res5" in printed


def test_card_tool_errors_are_one_line(tmp_path):
    tool = load_tool("analyze_model")
    with pytest.raises(SystemExit) as exit_:
        tool.main(["--card", "resnext50", "--output", str(tmp_path / "x.png")])
    assert str(exit_.value.code).startswith("error: unknown backbone name='resnext50'. Did you mean")
    config = tmp_path / "detectron2_resnet.yaml"  # a config whose backbone is Detectron2's own
    config.write_text("MODEL:\n  BACKBONE:\n    NAME: build_resnet_fpn_backbone\n")
    with pytest.raises(SystemExit) as exit_:
        tool.main(["--card", str(config), "--output", str(tmp_path / "x.png")])
    assert str(exit_.value.code).startswith(f"error: {config} builds build_resnet_fpn_backbone, not a resnext_det")
