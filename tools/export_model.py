#!/usr/bin/env python
"""Export a backbone (by name) or a config's Faster R-CNN to TorchScript (torch.jit.trace) and/or
ONNX (opset 17), and print the largest difference from the eager model on the example input.

    python tools/export_model.py --backbone resnext50_32x4d --output-dir output/export
    python tools/export_model.py --config-file configs/demo/shapes_faster_rcnn_X50_FPN.yaml \
        --output-dir output/export MODEL.WEIGHTS output/demo/model_final.pth

Writes NAME.pt and/or NAME.onnx, NAME being the backbone or the config file's name. With --precision
bf16 the backbone is fused and kept in bf16 (TorchScript only). The example
input is random: 1x3xHxW for a backbone (random weights), one 3xHxW image in 0..255 for a detector
(MODEL.WEIGHTS is loaded when set). ONNX files are checked with onnxruntime when it is installed.
"""
import argparse
import os
import sys
import warnings

import torch

from resnext_det import ConfigError, build_model, create_backbone, fuse_for_inference, load_config
from resnext_det.checkpoint.model_weights import check_model_weights
from resnext_det.engine.exits import error_message
from resnext_det.paths import readable_file, writable_dir
from resnext_det.precision import check_precision, precision_dtype
from resnext_det.export import (ExportError, detection_errors, detector_adapter, export_backbone_onnx,
                                export_detector_onnx, max_errors, trace_backbone, trace_detector)


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    source = parser.add_mutually_exclusive_group(required=True)
    source.add_argument("--backbone", help="a name from resnext_det.list_backbones()")
    source.add_argument("--config-file", help="a detector config (Faster R-CNN)")
    parser.add_argument("--format", nargs="+", choices=("torchscript", "onnx"),
                        help="default: both; torchscript alone with --precision bf16 (ONNX has no bf16 Conv)")
    parser.add_argument("--output-dir", default="output/export")
    parser.add_argument("--size", nargs=2, type=int, metavar=("H", "W"),
                        help="example input size (default: 224 224; a detector's INPUT.MIN_SIZE_TEST square)")
    parser.add_argument("--fuse", action="store_true", help="fold the norms into the convolutions first")
    parser.add_argument("--precision", choices=("fp32", "bf16"), default="fp32",
                        help="the backbone's dtype in the exported model (implies --fuse)")
    parser.add_argument("--opset", type=int, default=17)
    parser.add_argument("opts", nargs=argparse.REMAINDER, help="KEY VALUE config overrides")
    args = parser.parse_args(argv)
    if args.backbone and args.opts:
        parser.error("KEY VALUE overrides apply to --config-file only")
    args.fuse = args.fuse or args.precision != "fp32"
    if args.format is None:
        args.format = ["torchscript"] if args.precision == "bf16" else ["torchscript", "onnx"]
    return args


def check_export_precision(args):
    check_precision(precision_dtype(args.precision), "cpu")  # models are traced on the CPU
    if args.precision == "bf16" and "onnx" in args.format:
        raise ConfigError("ONNX has no bf16 convolution (its Conv takes fp16, fp32 or fp64): export bf16 "
                          "with --format torchscript, or fp32 to ONNX")


def run_onnx(path, feed):
    try:
        import onnxruntime
    except ImportError:
        return None
    session = onnxruntime.InferenceSession(path, providers=["CPUExecutionProvider"])
    return session.run(None, {k: v.numpy() for k, v in feed.items()})


def export_backbone(args, stem):
    model = create_backbone(args.backbone).eval()
    if args.fuse:
        fuse_for_inference(model, dtype=args.precision)
    example = torch.randn(1, 3, *(args.size or (224, 224)))
    names = list(model.output_shape())
    with torch.no_grad():
        expected = [model(example)[n] for n in names]
    if "torchscript" in args.format:
        traced = trace_backbone(model, example)
        traced.save(stem + ".pt")
        got = traced(example)
        yield stem + ".pt", "max abs diff %.3g, max rel diff %.3g" % max_errors(expected, [got[n] for n in names])
    if "onnx" in args.format:
        export_backbone_onnx(model, example, stem + ".onnx", args.opset)
        got = run_onnx(stem + ".onnx", {"images": example})
        yield stem + ".onnx", got and "onnxruntime: max abs diff %.3g, max rel diff %.3g" % max_errors(expected, got)


def export_detector(args, stem):
    from resnext_det.engine.checkpointer import SafeCheckpointer

    cfg = load_config(args.config_file, args.opts)
    if cfg.MODEL.WEIGHTS and "://" not in cfg.MODEL.WEIGHTS:
        readable_file(cfg.MODEL.WEIGHTS, "MODEL.WEIGHTS", "pass the trained model, e.g. OUTPUT_DIR/model_final.pth")
        check_model_weights(cfg, cfg.MODEL.WEIGHTS)  # missing, corrupt or not fitting: one line, not a traceback
    model = build_model(cfg).eval()
    SafeCheckpointer(model).load(cfg.MODEL.WEIGHTS)  # read as data: a file that needs code is refused
    if args.fuse:
        fuse_for_inference(model, dtype=args.precision)
    image = torch.rand(3, *(args.size or (cfg.INPUT.MIN_SIZE_TEST,) * 2)) * 255
    adapter = detector_adapter(model, image)
    with torch.no_grad():
        expected = adapter(image)

    def summary(got):
        errors = detection_errors(expected, got)
        return f"{len(got[0])} detections (eager {len(expected[0])}): max abs diff boxes " \
               f"{errors['boxes']:.3g} px, scores {errors['scores']:.3g}"

    if "torchscript" in args.format:
        traced = trace_detector(adapter)
        traced.save(stem + ".pt")
        yield stem + ".pt", summary(traced(image))
    if "onnx" in args.format:
        export_detector_onnx(adapter, stem + ".onnx", args.opset)
        got = run_onnx(stem + ".onnx", {"image": image})
        yield stem + ".onnx", got and "onnxruntime: " + summary(got)


def main(argv=None):
    args = parse_args(argv)
    name = args.backbone or os.path.splitext(os.path.basename(args.config_file))[0]
    stem = os.path.join(args.output_dir, name)
    warnings.filterwarnings("ignore", category=torch.jit.TracerWarning)  # Detectron2's known-safe ones
    torch.manual_seed(0)
    try:
        check_export_precision(args)
        writable_dir(args.output_dir, "--output-dir", "name a folder that can be written", create=True)
        for path, check in (export_backbone if args.backbone else export_detector)(args, stem):
            print(f"wrote {path}; {check or 'onnxruntime is not installed: not checked'}")
    except (ConfigError, ExportError, OSError) as e:
        sys.exit(f"error: {error_message(e)}")


if __name__ == "__main__":
    main()
