"""Converted ImageNet weights give the reference model's stage outputs (issue: pretrained weights)."""
import os
import pickle

import numpy as np
import pytest
import torch
import torchvision
from detectron2.config import get_cfg
from detectron2.layers import ShapeSpec

from conftest import ROOT, random_norm_statistics, run_python
from resnext_det import add_resnext_config, create_backbone, load_config
from resnext_det.checkpoint import CheckpointError, convert_state_dict, input_settings, read_state_dict

timm = pytest.importorskip("timm")


def _reference_stages(model, x):
    act = getattr(model, "act1", None) or model.relu
    x = model.maxpool(act(model.bn1(model.conv1(x))))
    outs = {}
    for i in range(1, 5):
        x = getattr(model, f"layer{i}")(x)
        outs[f"res{i + 1}"] = x
    return outs


def _official_resnest(depth):
    from resnest.torch import resnest50, resnest101

    return {50: resnest50, 101: resnest101}[depth](pretrained=False)


CASES = [
    ("torchvision", "resnet50", lambda: torchvision.models.resnet50()),
    ("torchvision", "resnext50_32x4d", lambda: torchvision.models.resnext50_32x4d()),
    ("torchvision", "resnext101_32x8d", lambda: torchvision.models.resnext101_32x8d()),
    ("torchvision", "resnext101_64x4d", lambda: torchvision.models.resnext101_64x4d()),
    ("timm", "seresnet50", lambda: timm.create_model("seresnet50")),
    ("timm", "seresnet101", lambda: timm.create_model("seresnet101")),
    ("timm", "seresnext50_32x4d", lambda: timm.create_model("seresnext50_32x4d")),
    ("timm", "seresnext101_32x4d", lambda: timm.create_model("seresnext101_32x4d")),
    ("timm", "skresnext50_32x4d", lambda: timm.create_model("skresnext50_32x4d")),
    ("timm", "resnest50", lambda: timm.create_model("resnest50d")),
    ("timm", "resnest101", lambda: timm.create_model("resnest101e")),
    ("resnest", "resnest50", lambda: _official_resnest(50)),
    ("resnest", "resnest101", lambda: _official_resnest(101)),
]


@pytest.mark.parametrize("source, arch, make_reference", CASES, ids=[f"{c[0]}-{c[1]}" for c in CASES])
def test_converted_weights_reproduce_reference_stages(source, arch, make_reference):
    torch.manual_seed(0)
    reference = random_norm_statistics(make_reference()).eval()
    result = convert_state_dict(reference.state_dict(), source, arch)
    assert set(result.dropped.values()) == {"classifier", "bookkeeping"}
    assert {k for k, why in result.dropped.items() if why == "classifier"} == {"fc.weight", "fc.bias"}
    ours = create_backbone(arch).eval()  # FrozenBN, as for detection
    missing, unexpected = ours.load_state_dict(result.state_dict, strict=True)
    assert not missing and not unexpected
    x = torch.randn(2, 3, 96, 64)
    with torch.no_grad():
        expected, got = _reference_stages(reference, x), ours(x)
    for name in ["res2", "res3", "res4", "res5"]:
        error = (got[name] - expected[name]).abs().max() / expected[name].abs().max()
        assert error < 1e-4, (name, float(error))


@pytest.mark.parametrize("arch", ["resnetv2_50", "resnetv2_101"])
def test_converted_resnetv2_reproduces_timm_normalized_features(arch):
    """res5 is timm's final norm and ReLU on the last stage; res2..res4 are the pre-activation that
    timm's next stage applies to the same map, whose norm is copied into our output norm."""
    torch.manual_seed(0)
    reference = random_norm_statistics(timm.create_model(arch)).eval()
    result = convert_state_dict(reference.state_dict(), "timm", arch)
    assert {k for k, why in result.dropped.items() if why == "classifier"} == {"head.fc.weight", "head.fc.bias"}
    assert result.added == {f"output_norms.res{i}.{p}": f"res{i + 1}.0.preact_norm.{p}" for i in (2, 3, 4)
                            for p in ("weight", "bias", "running_mean", "running_var")}
    ours = create_backbone(arch).eval()
    ours.load_state_dict(result.state_dict, strict=True)
    x = torch.randn(2, 3, 96, 64)
    with torch.no_grad():
        stages = [reference.stem(x)]
        for stage in reference.stages:
            stages.append(stage(stages[-1]))
        expected = {f"res{i}": reference.stages[i - 1].blocks[0].norm1(stages[i - 1]) for i in (2, 3, 4)}
        expected["res5"] = reference.norm(stages[4])
        got = ours(x)
    for name, tensor in expected.items():
        error = (got[name] - tensor).abs().max() / tensor.abs().max()
        assert error < 1e-4, (name, float(error))
    assert input_settings("timm", arch)["MODEL.PIXEL_STD"] == [127.5, 127.5, 127.5]  # timm's a1h: mean = std = 0.5


def test_detectron2_resnext_fpn_loads_unchanged_and_matches():
    """Detectron2's own X-101-32x8d FPN backbone state dict fits ours key for key; outputs are equal."""
    from detectron2.modeling.backbone.fpn import build_resnet_fpn_backbone

    from resnext_det.modeling import build_resnext_fpn_backbone

    cfg = add_resnext_config(get_cfg())
    cfg.MODEL.RESNETS.DEPTH, cfg.MODEL.RESNETS.NUM_GROUPS, cfg.MODEL.RESNETS.WIDTH_PER_GROUP = 101, 32, 8
    cfg.MODEL.RESNETS.STRIDE_IN_1X1 = False
    cfg.MODEL.RESNETS.OUT_FEATURES = cfg.MODEL.FPN.IN_FEATURES = ["res2", "res3", "res4", "res5"]
    cfg.MODEL.RESNEXT.ARCH = "resnext101_32x8d"
    theirs = build_resnet_fpn_backbone(cfg, ShapeSpec(channels=3)).eval()
    ours = build_resnext_fpn_backbone(cfg, ShapeSpec(channels=3)).eval()
    random_norm_statistics(theirs)  # FrozenBN statistics are buffers: make them non-trivial
    missing, unexpected = ours.load_state_dict(theirs.state_dict(), strict=True)
    assert not missing and not unexpected
    x = torch.randn(1, 3, 128, 128)
    with torch.no_grad():
        expected, got = theirs(x), ours(x)
    assert list(got) == ["p2", "p3", "p4", "p5", "p6"]
    for name in got:
        torch.testing.assert_close(got[name], expected[name], rtol=1e-4, atol=1e-4)


_C2_BRANCH = {"conv1": "branch2a", "conv2": "branch2b", "conv3": "branch2c", "shortcut": "branch1"}


def _to_detectron_names(state_dict):
    """Write a backbone's weights the way Detectron/Caffe2 .pkl files name them (affine norms)."""
    blobs = {}
    for key, value in state_dict.items():
        parts = key.split(".")
        if parts[0] == "stem":
            name = "conv1" if parts[-1] == "weight" and parts[2] != "norm" else "res_conv1_bn"
        else:
            name = f"{parts[0]}_{parts[1]}_{_C2_BRANCH[parts[2]]}"
            name = name + "_bn" if parts[3] == "norm" else name
        if key.endswith("norm.weight"):
            blobs[name + "_s"] = value.numpy()
        elif key.endswith("norm.bias"):
            blobs[name + "_b"] = value.numpy()
        elif key.endswith("weight"):
            blobs[name + "_w"] = value.numpy()
    blobs["fc1000_w"], blobs["fc1000_b"] = np.zeros((1000, 2048), np.float32), np.zeros(1000, np.float32)
    blobs["conv1_w_momentum"] = blobs["conv1_w"] * 0
    return {"blobs": blobs}


def test_detectron_pkl_converts_exactly(tmp_path):
    torch.manual_seed(0)
    source = create_backbone("resnext50_32x4d").eval()
    with torch.no_grad():  # Caffe2 norms are affine only: mean 0, var 1 - eps
        for name, buf in source.named_buffers():
            if name.endswith("running_mean"):
                buf.zero_()
            elif name.endswith("running_var"):
                buf.fill_(1 - 1e-5)
            elif name.endswith("norm.weight"):
                buf.uniform_(0.5, 1.5)
            elif name.endswith("norm.bias"):
                buf.uniform_(-0.2, 0.2)
    path = tmp_path / "X-50-32x4d.pkl"
    with open(path, "wb") as f:
        pickle.dump(_to_detectron_names(source.state_dict()), f)
    result = convert_state_dict(read_state_dict(str(path)), "detectron", "resnext50_32x4d")
    assert result.dropped == {"fc1000_w": "classifier", "fc1000_b": "classifier", "conv1_w_momentum": "bookkeeping"}
    ours = create_backbone("resnext50_32x4d").eval()
    ours.load_state_dict(result.state_dict, strict=True)
    x = torch.randn(1, 3, 64, 64)
    with torch.no_grad():
        for name, expected in source(x).items():
            torch.testing.assert_close(ours(x)[name], expected, rtol=1e-4, atol=1e-5)


class _Evil:
    def __reduce__(self):
        return (os.system, ("echo pwned > /dev/null",))


def test_unsafe_and_broken_files_are_refused(tmp_path):
    evil_pkl = tmp_path / "evil.pkl"
    evil_pkl.write_bytes(pickle.dumps({"blobs": {"conv1_w": _Evil()}}))
    with pytest.raises(CheckpointError, match=r"evil.pkl needs code to load \(posix.system\); weights files are "
                                              r"read as data, never run"):
        read_state_dict(str(evil_pkl))
    evil_pth = tmp_path / "evil.pth"
    torch.save({"model": {"w": torch.zeros(1)}, "hook": _Evil()}, evil_pth)
    with pytest.raises(CheckpointError, match=r"evil.pth needs code to load \(posix.system\); .* re-save it as a "
                                              r"plain state dict"):
        read_state_dict(str(evil_pth))
    garbage = tmp_path / "garbage.pkl"
    garbage.write_bytes(b"this is not a pickle at all")
    with pytest.raises(CheckpointError, match="garbage.pkl is corrupt or not a weights file"):
        read_state_dict(str(garbage))
    truncated = tmp_path / "cut.pth"
    torch.save(torchvision.models.resnet50().state_dict(), truncated)
    truncated.write_bytes(truncated.read_bytes()[:1000])
    with pytest.raises(CheckpointError, match="cut.pth is corrupt or truncated: not a file torch.save writes"):
        read_state_dict(str(truncated))
    with pytest.raises(CheckpointError, match="does not exist"):
        read_state_dict(str(tmp_path / "absent.pth"))


def test_weights_of_another_architecture_name_the_mismatch():
    resnext = torchvision.models.resnext50_32x4d().state_dict()
    with pytest.raises(CheckpointError, match=r"shape mismatches \(res2\.0\.conv1\.weight: \(128, 64, 1, 1\) vs \(64, 64, 1, 1\)"):
        convert_state_dict(resnext, "torchvision", "resnet50")
    with pytest.raises(CheckpointError, match=r"missing keys \(res4\.6\."):
        convert_state_dict(torchvision.models.resnet50().state_dict(), "torchvision", "resnet101")
    with pytest.raises(CheckpointError, match="have no place in seresnext50_32x4d"):
        convert_state_dict(timm.create_model("skresnext50_32x4d").state_dict(), "timm", "seresnext50_32x4d")
    with pytest.raises(CheckpointError, match=r"torchvision weights do not exist for resnest50; sources for it: \['timm', 'resnest'\]"):
        convert_state_dict(resnext, "torchvision", "resnest50")
    with pytest.raises(CheckpointError, match=r"torchvision weights do not exist for resnetv2_50; sources for it: \['timm'\]"):
        convert_state_dict(torchvision.models.resnet50().state_dict(), "torchvision", "resnetv2_50")
    with pytest.raises(CheckpointError, match="have no place in resnetv2_50"):
        convert_state_dict(timm.create_model("resnet50").state_dict(), "timm", "resnetv2_50")


def test_input_settings_follow_the_source():
    assert input_settings("torchvision", "resnet50")["INPUT.FORMAT"] == "RGB"
    msra = input_settings("detectron", "resnet50")
    assert msra["MODEL.PIXEL_STD"] == [1.0, 1.0, 1.0] and msra["MODEL.RESNEXT.STRIDE_IN_1X1"] is True
    assert input_settings("detectron", "resnext101_32x8d")["MODEL.PIXEL_STD"] == [57.375, 57.12, 58.395]


@pytest.mark.parametrize("ext", [".pth", ".safetensors"])
def test_convert_tool_output_loads_as_model_weights(tmp_path, ext):
    from detectron2.checkpoint import DetectionCheckpointer
    from detectron2.modeling import build_model

    torch.manual_seed(0)
    reference = torchvision.models.resnet50()
    source = tmp_path / f"resnet50{ext}"
    if ext == ".pth":
        torch.save(reference.state_dict(), source)
    else:
        from safetensors.torch import save_file

        save_file(reference.state_dict(), str(source))
    output = tmp_path / "R-50-converted.pth"
    result = run_python(["tools/convert_pretrained.py", "--source", "torchvision", "--arch", "resnet50",
                         str(source), str(output)])
    assert result.returncode == 0, result.stderr[-2000:]
    assert "MODEL.PIXEL_MEAN" in result.stdout and "INPUT.FORMAT" in result.stdout
    assert "dropped on purpose: 2 classifier tensors" in result.stdout and "fc.weight" in result.stdout

    cfg = load_config(os.path.join(ROOT, "configs", "Base-RCNN-FPN.yaml"),
                      ["MODEL.RESNEXT.ARCH", "resnet50", "MODEL.DEVICE", "cpu"])
    model = build_model(cfg)
    missing, unexpected = model.load_state_dict(torch.load(output, weights_only=True)["model"], strict=False)
    assert not [k for k in missing if k.startswith("backbone.bottom_up.")] and not unexpected
    model = build_model(cfg)
    DetectionCheckpointer(model).load(str(output))  # what MODEL.WEIGHTS does
    torch.testing.assert_close(model.backbone.bottom_up.res5[2].conv3.weight, reference.layer4[2].conv3.weight)


def test_convert_tool_errors_are_one_line(tmp_path):
    bad = tmp_path / "bad.pth"
    torch.save(torchvision.models.resnet50().state_dict(), bad)
    result = run_python(["tools/convert_pretrained.py", "--source", "torchvision", "--arch", "resnet101",
                         str(bad), str(tmp_path / "out.pth")])
    assert result.returncode != 0 and "Traceback" not in result.stderr
    assert result.stderr.strip().splitlines()[-1].startswith("error: the converted torchvision checkpoint does not fit resnet101")
