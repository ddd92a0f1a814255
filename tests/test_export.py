"""Export: torch.jit.trace and ONNX (opset 17, run in onnxruntime) of every backbone and of a
Faster R-CNN FPN, each compared with the eager model, also at an input size other than the traced one."""
import copy
import os

import pytest
import torch
from detectron2.modeling import build_model

from conftest import ROOT, load_tool, random_norm_statistics
from resnext_det import ARCHS, create_backbone, fuse_for_inference, list_backbones, load_config
from resnext_det.export import (ExportError, detection_errors, detector_adapter, export_backbone_onnx,
                                export_detector_onnx, max_errors, trace_backbone, trace_detector)

onnx = pytest.importorskip("onnx")
onnxruntime = pytest.importorskip("onnxruntime")

# Known and checked here: Detectron2's trace-time constants, PyTorch's deprecation of TorchScript
# and of its ONNX exporter, and the index export's note on negative indices (nonzero's are not).
pytestmark = [pytest.mark.filterwarnings(f"ignore:{message}") for message in (
    ":torch.jit.TracerWarning", ".*is deprecated:FutureWarning",
    ".*legacy TorchScript-based ONNX export:DeprecationWarning", "The feature will be removed:DeprecationWarning",
    "Exporting aten.{2}index operator:UserWarning")]

def _features(spec):
    """What a block can be made of: grouped 3x3, transform, attention, stem, downsampling, norm order."""
    return {("grouped", spec.num_groups > 1), ("transform", spec.transform), ("attention", spec.attention),
            ("stem", spec.stem), ("avd", spec.avd), ("avg_down", spec.avg_down), ("preact", spec.preact)}


def _covering_depth_50_presets():
    chosen, covered = [], set()
    for name in list_backbones():
        if ARCHS[name].depth == 50 and not _features(ARCHS[name]) <= covered:
            chosen.append(name)
            covered |= _features(ARCHS[name])
    return chosen


# Depth-50 presets that together use every block feature run in the fast suite; the others repeat
# the same parts and take minutes to trace and export, so they run as e2e.
FAST = _covering_depth_50_presets()
BACKBONES = [pytest.param(name, marks=() if name in FAST else pytest.mark.e2e) for name in list_backbones()]


def _random_statistics(model):
    return random_norm_statistics(model, scale=(0.25, 0.75))  # as test_fuse: deep nets stay in range


def _onnx_run(path, feed):
    session = onnxruntime.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    return [o.name for o in session.get_outputs()], session.run(None, {k: v.numpy() for k, v in feed.items()})


def _check_backbone(model, path, reference=None):
    """Max relative errors of the trace and the ONNX file of ``model`` against ``reference`` (default:
    ``model`` itself), at the example shape and another one."""
    reference = reference or model
    x = torch.randn(1, 3, 64, 64)
    other = torch.randn(2, 3, 96, 64)  # another batch and size: nothing may be fixed at x's
    names = list(model.output_shape())
    traced = trace_backbone(model, x)
    assert export_backbone_onnx(model, x, str(path)) == names
    errors = {"trace": 0.0, "onnx": 0.0}
    for inputs in (x, other):
        with torch.no_grad():
            expected = reference(inputs)
            got = traced(inputs)
        assert list(got) == list(expected)  # the traced module returns the same dict
        expected = [expected[n] for n in names]
        errors["trace"] = max(errors["trace"], max_errors(expected, [got[n] for n in names])[1])
        onnx_names, got = _onnx_run(path, {"images": inputs})
        assert onnx_names == names
        errors["onnx"] = max(errors["onnx"], max_errors(expected, got)[1])
    return errors


def test_fast_backbones_cover_every_block_feature():
    assert set().union(*(_features(ARCHS[n]) for n in FAST)) == set().union(*map(_features, ARCHS.values()))


@pytest.mark.parametrize("name", BACKBONES)
def test_backbone_trace_and_onnx_equal_eager(name, tmp_path):
    torch.manual_seed(0)
    model = _random_statistics(create_backbone(name).eval())
    errors = _check_backbone(model, tmp_path / f"{name}.onnx")
    assert errors["trace"] < 1e-6 and errors["onnx"] < 1e-4, errors


def test_fused_backbone_exports(tmp_path):
    torch.manual_seed(0)
    model = _random_statistics(create_backbone("resnest50").eval())
    unfused = copy.deepcopy(model)
    errors = _check_backbone(fuse_for_inference(model), tmp_path / "fused.onnx", reference=unfused)
    assert errors["trace"] < 1e-4 and errors["onnx"] < 1e-4, errors


def test_onnx_outputs_follow_out_features(tmp_path):
    torch.manual_seed(0)
    model = create_backbone("resnext50_32x4d", out_features=["res3", "stem"]).eval()
    x = torch.randn(1, 3, 64, 64)
    assert export_backbone_onnx(model, x, str(tmp_path / "m.onnx")) == ["res3", "stem"]
    names, got = _onnx_run(tmp_path / "m.onnx", {"images": x})
    with torch.no_grad():
        expected = model(x)
    assert names == ["res3", "stem"] and max_errors([expected["res3"], expected["stem"]], got)[1] < 1e-4


def test_training_mode_and_other_detectors_are_refused():
    model = create_backbone("resnet50", out_features=["res2"])
    with pytest.raises(ExportError, match=r"training mode.*model\.eval\(\)"):
        trace_backbone(model, torch.randn(1, 3, 64, 64))
    cfg = load_config(os.path.join(ROOT, "configs", "retinanet_R50_FPN_1x.yaml"),
                      ["MODEL.DEVICE", "cpu", "MODEL.WEIGHTS", ""])
    with pytest.raises(ExportError, match="GeneralizedRCNN.*got RetinaNet"):
        detector_adapter(build_model(cfg).eval(), torch.rand(3, 64, 64))


def _walk_ops(graph):
    for node in graph.node:
        yield node.op_type
        for attribute in node.attribute:
            for sub in [attribute.g] + list(attribute.graphs):
                yield from _walk_ops(sub)


def test_faster_rcnn_trace_and_onnx_equal_eager(tmp_path):
    # A zero threshold keeps every candidate, so there are 100 detections whatever the random weights.
    cfg = load_config(os.path.join(ROOT, "configs", "demo", "shapes_faster_rcnn_X50_FPN.yaml"),
                      ["MODEL.ROI_HEADS.SCORE_THRESH_TEST", "0.0"])
    torch.manual_seed(0)
    model = _random_statistics(build_model(cfg)).eval()
    image = torch.rand(3, 128, 128) * 255
    adapter = detector_adapter(model, image)
    traced = trace_detector(adapter)
    path = str(tmp_path / "faster_rcnn.onnx")
    names = export_detector_onnx(adapter, path)
    assert names == ["pred_boxes", "pred_classes", "scores", "image_size"]
    ops = set(_walk_ops(onnx.load(path).graph))
    assert {"RoiAlign", "NonMaxSuppression"} <= ops  # torchvision's ops, exported as ONNX's own
    for inputs in (image, torch.rand(3, 96, 160) * 255):
        with torch.no_grad():
            expected = adapter(inputs)
            got_traced = traced(inputs)
        onnx_names, got_onnx = _onnx_run(path, {"image": inputs})
        assert onnx_names == names and len(expected[0]) == 100
        for got, box_tol, score_tol in ((got_traced, 1e-4, 1e-6), (got_onnx, 1e-3, 1e-5)):
            errors = detection_errors(expected, got)
            assert errors["boxes"] < box_tol and errors["scores"] < score_tol, errors
            assert list(got[3]) == list(inputs.shape[1:])  # image_size


def test_export_model_tool(tmp_path, capsys):
    load_tool("export_model").main(["--backbone", "resnet50", "--size", "64", "64",
                                    "--output-dir", str(tmp_path)])
    lines = capsys.readouterr().out.splitlines()
    written = [line.split(";")[0] for line in lines]
    assert written == [f"wrote {tmp_path / 'resnet50.pt'}", f"wrote {tmp_path / 'resnet50.onnx'}"]
    rel = [float(line.rsplit("max rel diff ", 1)[1]) for line in lines]
    assert rel[0] < 1e-6 and rel[1] < 1e-4, lines
    traced = torch.jit.load(str(tmp_path / "resnet50.pt"))
    assert list(traced(torch.randn(1, 3, 64, 64))) == ["res2", "res3", "res4", "res5"]


def test_export_model_tool_names_missing_weights(tmp_path):
    with pytest.raises(SystemExit, match=r"error: .*nope\.pth.* does not exist"):
        load_tool("export_model").main(["--config-file", "configs/demo/shapes_faster_rcnn_X50_FPN.yaml",
                                        "--output-dir", str(tmp_path), "MODEL.WEIGHTS", str(tmp_path / "nope.pth")])
