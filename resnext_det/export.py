"""TorchScript (``torch.jit.trace``) and ONNX export of backbones and Detectron2 R-CNN detectors.

ONNX export uses PyTorch's TorchScript-based exporter (``dynamo=False``) at opset 17: the
``torch.export``-based one cannot export the detector (its RPN branches on tensor values), and
it writes opset 18, converting down afterwards. Detectors are wrapped by Detectron2's
``TracingAdapter``; their RoIAlign and NMS are torchvision ops, which export as ONNX ``RoiAlign``
and ``NonMaxSuppression``.
"""
import contextlib
from typing import Dict, List, Sequence, Tuple

import numpy as np
import torch
from torch import nn

__all__ = ["ExportError", "trace_backbone", "export_backbone_onnx", "detector_adapter", "trace_detector",
           "export_detector_onnx", "max_errors", "detection_errors"]

OPSET = 17


class ExportError(RuntimeError):
    """A model that cannot be exported as given; the message says why and what to change."""


def _check_eval(model: nn.Module, what: str):
    if model.training:
        raise ExportError(f"the {what} is in training mode; export traces inference: call model.eval() first")


def _feature_names(model: nn.Module, example: torch.Tensor) -> List[str]:
    with torch.no_grad():
        out = model(example)
    if not isinstance(out, dict) or not all(isinstance(v, torch.Tensor) for v in out.values()):
        raise ExportError(f"a backbone must return a dict of feature tensors; {type(model).__name__} "
                          f"returned {type(out).__name__}")
    order = getattr(model, "_out_features", None)  # a Detectron2 Backbone's out_features, in order
    return list(order) if order is not None and sorted(order) == sorted(out) else list(out)


class _NamedFeatures(nn.Module):
    """The backbone's feature dict as a tuple in ``names`` order, for ONNX's positional outputs."""

    def __init__(self, backbone: nn.Module, names: Sequence[str]):
        super().__init__()
        self.backbone, self.names = backbone, list(names)

    def forward(self, images):
        features = self.backbone(images)
        return tuple(features[name] for name in self.names)


def trace_backbone(model: nn.Module, example: torch.Tensor) -> torch.jit.ScriptModule:
    """``torch.jit.trace`` of an eval-mode backbone; the traced module returns the same dict."""
    _check_eval(model, "backbone")
    _feature_names(model, example)  # checks the output is a feature dict
    with torch.no_grad(), _explained("torch.jit.trace", type(model).__name__):
        return torch.jit.trace(model, example, strict=False, check_trace=False)


def export_backbone_onnx(model: nn.Module, example: torch.Tensor, path: str, opset: int = OPSET) -> List[str]:
    """Write ``path``: input ``images`` (N, C, H, W), one output per feature, named as the
    backbone's out_features and in their order. Batch and spatial sizes stay dynamic.
    Returns the output names."""
    _check_eval(model, "backbone")
    names = _feature_names(model, example)
    dynamic = {"images": {0: "batch", 2: "height", 3: "width"}, **{name: {0: "batch"} for name in names}}
    _onnx_export(_NamedFeatures(model, names).eval(), (example,), path, opset, ["images"], names, dynamic,
                 type(model).__name__)
    return names


def detector_adapter(model: nn.Module, image: torch.Tensor):
    """Detectron2's ``TracingAdapter`` around a GeneralizedRCNN: one (C, H, W) image in the config's
    pixel format and range, already resized; out a flat tuple of the instance fields (sorted by
    name: ``pred_boxes``, ``pred_classes``, ``scores``) and ``image_size``. Normalization and
    padding are inside; boxes are in the input image's pixels (no rescaling postprocess)."""
    from detectron2.export import TracingAdapter
    from detectron2.modeling import GeneralizedRCNN

    if not isinstance(model, GeneralizedRCNN):
        raise ExportError(f"detector export supports Detectron2's GeneralizedRCNN (Faster R-CNN); "
                          f"got {type(model).__name__}")
    _check_eval(model, "detector")
    if not isinstance(image, torch.Tensor) or image.dim() != 3:
        raise ExportError(f"the example image must be one (C, H, W) tensor, got "
                          f"{tuple(image.shape) if isinstance(image, torch.Tensor) else type(image).__name__}")
    adapter = TracingAdapter(model, [{"image": image}], _inference_without_postprocess)
    # eval() matters: the ONNX exporter restores the wrapper's mode, and train() would reach the model.
    return adapter.eval()


def _inference_without_postprocess(model, inputs):
    return model.inference(inputs, do_postprocess=False)[0]


def _detector_output_names(adapter) -> List[str]:
    if adapter.outputs_schema is None:  # recorded by the adapter's first call
        with torch.no_grad():
            adapter(*adapter.flattened_inputs)
    schema = adapter.outputs_schema
    assert sum(schema.sizes) == len(schema.keys), schema  # one tensor per instance field
    return list(schema.keys) + ["image_size"]


def trace_detector(adapter) -> torch.jit.ScriptModule:
    """``torch.jit.trace`` of a ``detector_adapter``: image in, the adapter's flat tuple out."""
    with torch.no_grad(), _explained("torch.jit.trace", type(adapter.model).__name__):
        return torch.jit.trace(adapter, adapter.flattened_inputs, check_trace=False)


def export_detector_onnx(adapter, path: str, opset: int = OPSET) -> List[str]:
    """Write ``path``: input ``image`` (C, H, W) with dynamic H and W, outputs named as the
    adapter's fields with a dynamic number of detections. Returns the output names."""
    names = _detector_output_names(adapter)
    dynamic = {"image": {1: "height", 2: "width"}}
    dynamic.update({name: {0: "detections"} for name in names if name != "image_size"})
    _onnx_export(adapter, adapter.flattened_inputs, path, opset, ["image"], names, dynamic,
                 type(adapter.model).__name__)
    return names


@contextlib.contextmanager
def _explained(step: str, what: str):
    try:
        yield
    except Exception as e:
        raise ExportError(f"{step} of {what} failed: {type(e).__name__}: {e}") from e


def _onnx_export(module, args, path, opset, input_names, output_names, dynamic_axes, what):
    from .layers import DeformConv

    if any(isinstance(m, DeformConv) for m in module.modules()):
        raise ExportError(f"{what} has deformable convolutions (DEFORM_ON_PER_STAGE), which PyTorch's ONNX exporter "
                          "cannot write (torchvision::deform_conv2d has no ONNX export); use --format torchscript")
    with torch.no_grad(), _explained(f"ONNX export (opset {opset})", what):
        torch.onnx.export(module, args, path, dynamo=False, opset_version=opset, input_names=input_names,
                          output_names=output_names, dynamic_axes=dynamic_axes)


def _numpy(t) -> np.ndarray:
    return t.detach().cpu().numpy() if isinstance(t, torch.Tensor) else np.asarray(t)


def max_errors(expected: Sequence, got: Sequence) -> Tuple[float, float]:
    """(max abs difference, max over outputs of abs difference / the output's max abs value)."""
    if len(expected) != len(got):
        raise ValueError(f"{len(expected)} expected outputs, got {len(got)}")
    abs_err = rel_err = 0.0
    for e, g in zip(map(_numpy, expected), map(_numpy, got)):
        if e.shape != g.shape:
            return float("inf"), float("inf")
        diff = float(np.abs(e.astype(np.float64) - g).max(initial=0.0))
        abs_err, rel_err = max(abs_err, diff), max(rel_err, diff / max(float(np.abs(e).max(initial=0.0)), 1e-12))
    return abs_err, rel_err


def detection_errors(expected: Sequence, got: Sequence) -> Dict[str, float]:
    """Max box and score differences between two (boxes, classes, scores) detection sets, order aside.

    Detections with near-equal scores may come out in either order. Each detection is paired
    with the nearest box of the same class in the other set; after per-class NMS such boxes
    overlap little, so the pairing is unambiguous. A count mismatch gives inf.
    """
    (eb, ec, es), (gb, gc, gs) = ([_numpy(t) for t in d[:3]] for d in (expected, got))
    if len(eb) != len(gb):
        return {"boxes": float("inf"), "scores": float("inf")}
    if not len(eb):
        return {"boxes": 0.0, "scores": 0.0}
    dist = np.abs(eb[:, None, :].astype(np.float64) - gb[None, :, :]).max(-1)
    dist[ec[:, None] != gc[None, :]] = np.inf
    nearest = dist.argmin(1)
    return {"boxes": float(max(dist.min(1).max(), dist.min(0).max())),
            "scores": float(np.abs(es.astype(np.float64) - gs[nearest]).max())}
