"""Reduced precision and the compiled path give the fp32 outputs within stated tolerances; unsupported
device / dtype pairs are one clear error."""
import copy
import logging
import os
import re

import pytest
import torch
from detectron2.modeling import build_model

from conftest import ROOT, load_tool, random_norm_statistics
from resnext_det import (ARCHS, ConfigError, compile_for_inference, create_backbone, fuse_for_inference,
                         list_backbones, load_config)
from resnext_det.compile import compile_seconds, is_compiled
from resnext_det.precision import inference_dtype

# Largest difference from the fp32 model, relative to the largest fp32 feature value. bf16 keeps 8
# mantissa bits (relative rounding 2^-9); measured on random weights at 64x96: 0.9-2.0e-2 over the
# 16 backbones, growing with depth. The compiled fp32 backbone reorders sums only.
BF16_TOLERANCE = 4e-2
COMPILED_FP32_TOLERANCE = 1e-4

FAST = [name for name in list_backbones() if ARCHS[name].depth == 50]
BACKBONES = [pytest.param(name, marks=() if name in FAST else pytest.mark.e2e) for name in list_backbones()]
DEMO_CONFIG = os.path.join(ROOT, "configs", "demo", "shapes_faster_rcnn_X50_FPN.yaml")


def _backbone(name):
    torch.manual_seed(0)
    # norm scales below 1, as in trained networks (see test_fuse.py)
    return random_norm_statistics(create_backbone(name).eval(), scale=(0.25, 0.75))


def _relative_error(got, expected):
    return max(float((got[k].float() - v).abs().max() / v.abs().max()) for k, v in expected.items())


@pytest.mark.parametrize("name", BACKBONES)
def test_bf16_backbone_gives_fp32_features_within_tolerance(name):
    model = _backbone(name)
    x = torch.randn(1, 3, 64, 96)
    with torch.no_grad():
        expected = model(x)
        bf16 = fuse_for_inference(copy.deepcopy(model), dtype=torch.bfloat16)
        got = bf16(x)
    assert inference_dtype(bf16) == torch.bfloat16 and bf16.stem.conv1.weight.dtype == torch.bfloat16
    assert all(v.dtype == torch.float32 for v in got.values())  # fp32 features for the heads
    assert _relative_error(got, expected) < BF16_TOLERANCE


def test_bf16_detector_keeps_the_heads_in_fp32():
    cfg = load_config(DEMO_CONFIG, ["MODEL.DEVICE", "cpu"])
    torch.manual_seed(0)
    model = random_norm_statistics(build_model(cfg), scale=(0.25, 0.75)).eval()
    image = torch.rand(3, 96, 128) * 255
    with torch.no_grad():
        images = model.preprocess_image([{"image": image}])
        expected = model.backbone(images.tensor)
        fuse_for_inference(model, dtype="bf16")
        got = model.backbone(images.tensor)
        detections = model([{"image": image, "height": 96, "width": 128}])[0]["instances"]
    assert _relative_error(got, expected) < BF16_TOLERANCE
    assert model.backbone.bottom_up.res2[0].conv1.weight.dtype == torch.bfloat16
    heads = [p.dtype for m in (model.proposal_generator, model.roi_heads) for p in m.parameters()]
    assert set(heads) == {torch.float32}
    assert detections.pred_boxes.tensor.dtype == detections.scores.dtype == torch.float32


def test_a_backbone_cast_once_stays_in_its_dtype():
    model = fuse_for_inference(create_backbone("resnet50", out_features=["res2"]), dtype=torch.bfloat16)
    assert fuse_for_inference(model) is model and inference_dtype(model) == torch.bfloat16  # None keeps it
    with pytest.raises(ConfigError, match="already runs in bf16; its fp32 weights are gone"):
        fuse_for_inference(model, dtype=torch.float32)


@pytest.mark.parametrize("make", [
    lambda: fuse_for_inference(create_backbone("resnet50", out_features=["res2"]), dtype=torch.float16),
    lambda: fuse_for_inference(create_backbone("resnet50", out_features=["res2"]), dtype="fp8"),
])
def test_unsupported_precision_is_a_config_error(make):
    with pytest.raises(ConfigError, match=r"fp16 runs on CUDA only.*use bf16 on CPU|'fp8' is invalid: valid: fp32, "
                                          r"bf16, fp16"):
        make()


def test_compiled_backbone_matches_eager_and_does_not_recompile_for_another_size(caplog):
    """One compile for two input sizes (dynamic shapes); fp32 outputs equal the eager fused model's."""
    model = _backbone("resnext50_32x4d")
    compiled = compile_for_inference(copy.deepcopy(model))
    assert is_compiled(compiled) and compile_seconds(compiled) == []
    caplog.set_level(logging.INFO, logger="resnext_det.compile")
    # Above PyTorch's small-input convolution threshold at every layer (see docs/speed.md); a
    # size on the other side of it compiles once more.
    for size in ((160, 224), (224, 192)):
        x = torch.randn(1, 3, *size)
        with torch.no_grad():
            expected = model(x)
            got = compiled(x)
        assert _relative_error(got, expected) < COMPILED_FP32_TOLERANCE, size
    assert len(compile_seconds(compiled)) == 1 and compile_seconds(compiled)[0] > 0
    assert "ResNeXt compiled for input [(1, 3, 160, 224)] in" in caplog.text
    with pytest.raises(RuntimeError, match="weights frozen in.*load them before compile_for_inference"):
        compiled.load_state_dict(model.state_dict())
    copied = copy.deepcopy(compiled)  # PyTorch drops the compiled call from a copy: the fused model, eager
    assert not is_compiled(copied)
    with torch.no_grad():
        assert _relative_error(copied(x), expected) < COMPILED_FP32_TOLERANCE


# Every block form compiled in both precisions. The deeper names repeat those blocks and take 1-3 min
# each to compile on 2 cores (resnest269 about 2.5): two of them, in bf16, stand for the rest.
COMPILED = [(name, dtype) for name in FAST for dtype in (torch.float32, torch.bfloat16)] + \
    [("resnext101_32x8d", torch.bfloat16), ("resnest101", torch.bfloat16)]


@pytest.mark.e2e
@pytest.mark.parametrize("name, dtype", COMPILED)
def test_compiled_backbone_on_every_name(name, dtype):
    model = _backbone(name)
    x = torch.randn(1, 3, 160, 224)
    with torch.no_grad():
        expected = model(x)
        got = compile_for_inference(copy.deepcopy(model), dtype=dtype)(x)
    tolerance = COMPILED_FP32_TOLERANCE if dtype == torch.float32 else BF16_TOLERANCE
    assert _relative_error(got, expected) < tolerance


# ---- the tools' --precision -----------------------------------------------------------------------

@pytest.mark.parametrize("tool, argv, message", [
    ("train_net", ["--eval-only", "--precision", "fp16"], "precision fp16 runs on CUDA only"),
    ("train_net", ["--precision", "bf16"], "--precision and --compile apply to evaluation (--eval-only)"),
    ("train_net", ["SOLVER.AMP.ENABLED", "True", "SOLVER.AMP.PRECISION", "fp16"],
     "SOLVER.AMP.PRECISION='fp16' on cpu: precision fp16 runs on CUDA only"),
    ("demo", ["--precision", "fp16"], "precision fp16 runs on CUDA only"),
])
def test_tools_refuse_a_precision_the_device_lacks(tool, argv, message, tmp_path):
    tool = load_tool(tool)
    run = tool.cli if hasattr(tool, "cli") else tool.main
    with pytest.raises(SystemExit, match="error: .*" + re.escape(message)):
        run(["--config-file", DEMO_CONFIG] + argv + ["OUTPUT_DIR", str(tmp_path)])


def test_benchmark_and_export_refuse_unsupported_precisions(tmp_path):
    with pytest.raises(SystemExit, match="error: precision fp16 runs on CUDA only"):
        load_tool("benchmark").cli(["backbone", "resnet50", "--precision", "fp16", "--device", "cpu"])
    with pytest.raises(SystemExit, match="error: ONNX has no bf16 convolution.*--format torchscript"):
        load_tool("export_model").main(["--backbone", "resnet50", "--precision", "bf16", "--format", "onnx",
                                        "--output-dir", str(tmp_path)])


# ---- training under SOLVER.AMP ----------------------------------------------------------------------

def test_bf16_training_steps_decrease_the_loss(tiny_shapes):
    """SOLVER.AMP.ENABLED on CPU: the forward pass runs in bf16, weights and gradients stay fp32, and
    a few steps on one batch lower its loss."""
    import itertools

    from detectron2.data import DatasetCatalog, DatasetMapper
    from detectron2.utils.events import EventStorage

    from resnext_det.engine import Trainer
    from resnext_det.engine.amp import AutocastTrainer, build_step_trainer

    cfg = load_config(DEMO_CONFIG, ["SOLVER.AMP.ENABLED", "True", "INPUT.MIN_SIZE_TRAIN", "(64,)",
                                    "INPUT.MAX_SIZE_TRAIN", "64", "INPUT.RANDOM_FLIP", "none"])
    torch.manual_seed(0)
    model = Trainer.build_model(cfg)
    mapper = DatasetMapper(cfg, is_train=True)
    batch = [mapper(d) for d in DatasetCatalog.get("tiny_shapes_train")[:2]]
    trainer = build_step_trainer(cfg, model, itertools.repeat(batch), Trainer.build_optimizer(cfg, model))
    assert isinstance(trainer, AutocastTrainer) and trainer.dtype == torch.bfloat16
    stem_dtypes = []
    model.backbone.bottom_up.stem.register_forward_hook(lambda m, i, out: stem_dtypes.append(out.dtype))
    with EventStorage() as storage:
        for step in range(8):
            storage.iter = step
            trainer.iter = step
            trainer.run_step()
    losses = [loss for loss, _ in storage.history("total_loss").values()]
    assert set(stem_dtypes) == {torch.bfloat16}
    assert all(p.dtype == torch.float32 for p in model.parameters())
    assert all(p.grad.dtype == torch.float32 for p in model.parameters() if p.grad is not None)
    assert losses[-1] < 0.8 * losses[0], losses


def test_export_bf16_backbone_to_torchscript(tmp_path, capsys):
    load_tool("export_model").main(["--backbone", "resnet50", "--precision", "bf16", "--size", "64", "64",
                                    "--output-dir", str(tmp_path)])
    assert [line.split(";")[0] for line in capsys.readouterr().out.splitlines()] == \
        [f"wrote {tmp_path / 'resnet50.pt'}"]  # bf16: TorchScript only
    torch.manual_seed(0)  # the tool's random weights
    model = create_backbone("resnet50").eval()
    traced = torch.jit.load(str(tmp_path / "resnet50.pt"))
    x = torch.randn(1, 3, 64, 96)  # another size than the example
    with torch.no_grad():
        assert _relative_error(traced(x), model(x)) < BF16_TOLERANCE


def test_bf16_without_native_support_is_said_once(monkeypatch, caplog):
    from resnext_det import precision

    monkeypatch.setattr(precision, "has_native_bf16", lambda: False)
    monkeypatch.setattr(precision, "_warned_emulated", False)
    with caplog.at_level(logging.WARNING, logger="resnext_det.precision"):
        for _ in range(2):
            precision.check_precision(torch.bfloat16, "cpu")
    assert [r.getMessage() for r in caplog.records] == [
        "this CPU has no native bf16 (neither AVX512-BF16 nor AMX): bf16 runs emulated, slower than fp32"]
