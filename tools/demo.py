#!/usr/bin/env python
"""The CPU demo: train Faster R-CNN FPN + ResNeXt-50 on the embedded shapes dataset, evaluate it
(or another demo config: --config-file configs/demo/shapes_faster_rcnn_X50_C4.yaml for C4).

Leaves in the output directory: metrics.json (losses and COCO AP per evaluation), model_final.pth,
curves.png (losses and AP), predictions.png (val images with predicted boxes) and summary.json.
With --fuse, the trained model is evaluated once more unfused and once fused (norms folded into the
convolutions), and summary.json gives both APs and evaluation times. --precision bf16 (and fp32, fp16
on CUDA) evaluates it fused in each precision, --compile also compiled (compile time included in its
evaluation time, and given apart). --amp on trains under bf16 autocast (SOLVER.AMP.ENABLED); --amp
auto does so where the CPU has native bf16.

    python tools/demo.py --output-dir output/demo [--fuse] [--precision fp32,bf16] [--compile] [KEY VALUE ...]
"""
import argparse
import json
import logging
import os
import sys
import time

import torch

import resnext_det  # noqa: F401  (registers the backbones and the shapes datasets)
from resnext_det import fuse_for_inference, load_config
from resnext_det.compile import compile_seconds
from resnext_det.engine import Trainer, check_inputs, setup_cfg
from resnext_det.engine.amp import amp_dtype
from resnext_det.engine.exits import error_message, one_line_errors
from resnext_det.engine.output_lock import hold_output_dir
from resnext_det.precision import check_precision, has_native_bf16, precision_dtype, precision_list
from resnext_det.engine.report import draw_predictions, final_eval, plot_curves, read_metrics
from resnext_det.strict_json import strict, write_json

# Whether the demo trains under bf16 autocast: "auto", where the CPU has native bf16, since bf16 was
# measured to reach the demo's AP floor in less time than fp32 (docs/speed.md, "Training the demo in bf16").
AMP_DEFAULT = "auto"
DEFAULT_CONFIG = os.path.join(os.path.dirname(__file__), "..", "configs", "demo",
                              "shapes_faster_rcnn_X50_FPN.yaml")


def _layout(cfg):
    return "C4" if cfg.MODEL.ROI_HEADS.NAME.endswith("Res5ROIHeads") else "FPN"


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--config-file", default=os.path.normpath(DEFAULT_CONFIG))
    parser.add_argument("--output-dir", default="output/demo")
    parser.add_argument("--num-images", type=int, default=8, help="val images drawn in predictions.png")
    parser.add_argument("--fuse", action="store_true",
                        help="after training, also evaluate the fused model and draw its predictions")
    parser.add_argument("--precision", type=precision_list, metavar="P[,P...]",
                        help="after training, also evaluate the fused model in each of these precisions: "
                             "fp32, bf16, fp16 (CUDA only), e.g. fp32,bf16 (implies --fuse)")
    parser.add_argument("--compile", action="store_true",
                        help="after training, also evaluate the fused model compiled (in each --precision)")
    parser.add_argument("--amp", choices=("off", "on", "auto"), default=AMP_DEFAULT,
                        help="train under bf16 autocast (SOLVER.AMP.ENABLED; an explicit override wins): on, "
                             "off, or auto: on where the CPU has native bf16 (default: %(default)s)")
    parser.add_argument("opts", nargs=argparse.REMAINDER, help="KEY VALUE config overrides")
    return parser.parse_args(argv)


def draw_val_predictions(cfg, model, path, num_images, fuse=False):
    from detectron2.data import DatasetCatalog, MetadataCatalog
    from detectron2.data.detection_utils import read_image
    from detectron2.engine import DefaultPredictor

    cfg = cfg.clone()
    cfg.defrost()
    cfg.MODEL.WEIGHTS = ""  # the trained model's own weights are copied in: no file is read
    predictor = DefaultPredictor(cfg)
    predictor.model.load_state_dict(model.state_dict())
    if fuse:
        fuse_for_inference(predictor.model)
    dataset = cfg.DATASETS.TEST[0]
    images, predictions = [], []
    for record in DatasetCatalog.get(dataset)[:num_images]:
        image = read_image(record["file_name"], format=cfg.INPUT.FORMAT)
        predictions.append(predictor(image)["instances"].to("cpu"))
        images.append(image[:, :, ::-1] if cfg.INPUT.FORMAT == "BGR" else image)
    draw_predictions(images, predictions, MetadataCatalog.get(dataset).thing_classes, path)


def amp_overrides(amp):
    """SOLVER.AMP.ENABLED for --amp, before the user's overrides (which win)."""
    return ["SOLVER.AMP.ENABLED", "True"] if amp == "on" or amp == "auto" and has_native_bf16() else []


def amp_reason(amp, opts):
    """Why the demo trains in the precision it does: one sentence for the log."""
    if "SOLVER.AMP.ENABLED" in opts[::2]:
        return "SOLVER.AMP.ENABLED is given on the command line, and it wins over --amp"
    if amp != "auto":
        return f"--amp {amp}"
    native = has_native_bf16()
    if native:
        return ("--amp auto, and this CPU computes bf16 natively (AVX512-BF16 or AMX): bf16 autocast training "
                "reaches the same AP as fp32 in less time (docs/demo.md, 'What it reaches'); --amp off trains in fp32")
    return ("--amp auto, and this CPU " + ("emulates bf16 (no AVX512-BF16 or AMX)" if native is False else
                                           "is not x86, where PyTorch does not say whether bf16 is native")
            + ", so bf16 would train slower than fp32; --amp on trains in bf16 anyway")


def amp_dtype_name(cfg):
    return {torch.bfloat16: "bf16 autocast", torch.float16: "fp16 autocast"}[amp_dtype(cfg)] \
        if cfg.SOLVER.AMP.ENABLED else "fp32"


def evaluation_modes(args):
    """[(name, fuse_for_inference keywords or None)]: the modes the trained model is evaluated in after
    training, unfused first; [] when no --fuse, --precision or --compile was given."""
    if not (args.fuse or args.precision or args.compile):
        return []
    precisions = args.precision or ["fp32"]
    found = [("unfused", None)]
    for compiled in (False, True) if args.compile else (False,):
        for precision in precisions:
            name = ("compiled" if compiled else "fused") + ("" if precision == "fp32" else f"-{precision}")
            found.append((name, {"dtype": precision_dtype(precision), "compile": compiled}))
    return found


def compare_evaluations(cfg, model, modes):
    """COCO AP and seconds of one evaluation of the (first) test set in each of ``modes``
    (:func:`evaluation_modes`), with the time relative to the unfused evaluation."""
    import copy

    results = {}
    for name, fuse in modes:
        evaluated = model if fuse is None else fuse_for_inference(copy.deepcopy(model), **fuse)
        start = time.perf_counter()
        metrics = Trainer.test(cfg, evaluated)
        seconds = time.perf_counter() - start
        # Detectron2 returns one test set's metrics directly, several sets' by name
        box = (metrics if len(cfg.DATASETS.TEST) == 1 else metrics[cfg.DATASETS.TEST[0]])["bbox"]
        results[name] = {"AP": box["AP"], "AP50": box["AP50"], "AP75": box["AP75"], "seconds": round(seconds, 2),
                         "time_over_unfused": round(seconds / results["unfused"]["seconds"], 3) if results else 1.0}
        if fuse is not None and fuse["compile"]:
            results[name]["compile_seconds"] = round(sum(compile_seconds(evaluated)), 2)
    return results


def main(argv=None):
    args = parse_args(argv)
    args.amp_reason = amp_reason(args.amp, args.opts)  # of the user's own overrides
    args.opts = amp_overrides(args.amp) + list(args.opts) + ["OUTPUT_DIR", args.output_dir]
    args.resume, args.eval_only, args.num_gpus = False, False, 1
    try:  # bad input (config, data, a NaN loss, a full disk ...): one line, no traceback
        with hold_output_dir(load_config(args.config_file, args.opts), purpose="demo"):
            return run(args)
    except one_line_errors() as e:
        sys.exit(f"error: {error_message(e)}")


def run(args):
    cfg = setup_cfg(args)
    check_inputs(cfg)
    logging.getLogger("resnext_det.demo").info(
        "training in %s: %s", amp_dtype_name(cfg), args.amp_reason)
    modes = evaluation_modes(args)
    for _, fuse in modes[1:]:
        check_precision(fuse["dtype"], cfg.MODEL.DEVICE)
    metrics_path = os.path.join(cfg.OUTPUT_DIR, "metrics.json")
    if os.path.exists(metrics_path):  # a fresh run: old records would mix into the curves
        os.remove(metrics_path)

    start = time.perf_counter()
    trainer = Trainer(cfg)
    trainer.resume_or_load(resume=False)
    trainer.train()
    train_seconds = time.perf_counter() - start

    records = read_metrics(metrics_path)
    box = final_eval(records)
    plot_curves(records, os.path.join(cfg.OUTPUT_DIR, "curves.png"),
                title=f"{cfg.MODEL.RESNEXT.ARCH} Faster R-CNN {_layout(cfg)} on {cfg.DATASETS.TRAIN[0]}")
    with torch.no_grad():
        draw_val_predictions(cfg, trainer.model, os.path.join(cfg.OUTPUT_DIR, "predictions.png"),
                             args.num_images, fuse=bool(modes))
    summary = {"arch": cfg.MODEL.RESNEXT.ARCH, "iterations": cfg.SOLVER.MAX_ITER,
               "train_and_eval_seconds": round(train_seconds, 1), "bbox": box,
               "training_precision": amp_dtype_name(cfg),
               "training_precision_reason": args.amp_reason, "threads": torch.get_num_threads()}
    if modes:
        summary["evaluation"] = compare_evaluations(cfg, trainer.model, modes)
    summary = strict(summary)  # NaN APs (e.g. no detections) as null, with a note
    write_json(os.path.join(cfg.OUTPUT_DIR, "summary.json"), summary)
    print(json.dumps(summary, indent=2))
    print(f"outputs in {cfg.OUTPUT_DIR}: metrics.json model_final.pth curves.png predictions.png summary.json")
    return summary


if __name__ == "__main__":
    main()
