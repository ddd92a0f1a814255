#!/usr/bin/env python
"""The CPU demo: train Faster R-CNN FPN + ResNeXt-50 on the embedded shapes dataset, evaluate it
(or another demo config: --config-file configs/demo/shapes_faster_rcnn_X50_C4.yaml for C4).

Leaves in the output directory: metrics.json (losses and COCO AP per evaluation), model_final.pth,
curves.png (losses and AP), predictions.png (val images with predicted boxes) and summary.json.
With --fuse, the trained model is evaluated once more unfused and once fused (norms folded into the
convolutions), and summary.json gives both APs and evaluation times.

    python tools/demo.py --output-dir output/demo [--fuse] [KEY VALUE ...]
"""
import argparse
import json
import os
import sys
import time

import torch

import resnext_det  # noqa: F401  (registers the backbones and the shapes datasets)
from resnext_det import fuse_for_inference
from resnext_det.engine import BAD_INPUT, Trainer, check_inputs, setup_cfg
from resnext_det.engine.report import draw_predictions, final_eval, plot_curves, read_metrics

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
    parser.add_argument("opts", nargs=argparse.REMAINDER, help="KEY VALUE config overrides")
    return parser.parse_args(argv)


def draw_val_predictions(cfg, model, path, num_images, fuse=False):
    from detectron2.data import DatasetCatalog, MetadataCatalog
    from detectron2.data.detection_utils import read_image
    from detectron2.engine import DefaultPredictor

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


def compare_fused_evaluation(cfg, model):
    """COCO AP and seconds of one evaluation of the (first) test set, unfused then fused."""
    import copy

    results = {}
    for name, evaluated in (("unfused", model), ("fused", fuse_for_inference(copy.deepcopy(model)))):
        start = time.perf_counter()
        metrics = Trainer.test(cfg, evaluated)
        # Detectron2 returns one test set's metrics directly, several sets' by name
        box = (metrics if len(cfg.DATASETS.TEST) == 1 else metrics[cfg.DATASETS.TEST[0]])["bbox"]
        results[name] = {"AP": box["AP"], "seconds": round(time.perf_counter() - start, 2)}
    results["fused_over_unfused_time"] = round(results["fused"]["seconds"] / results["unfused"]["seconds"], 3)
    return results


def main(argv=None):
    args = parse_args(argv)
    args.opts = list(args.opts) + ["OUTPUT_DIR", args.output_dir]
    args.resume, args.eval_only, args.num_gpus = False, False, 1
    try:
        cfg = setup_cfg(args)
        check_inputs(cfg)
    except BAD_INPUT as e:
        sys.exit(f"error: {e}")
    metrics_path = os.path.join(cfg.OUTPUT_DIR, "metrics.json")
    if os.path.exists(metrics_path):  # a fresh run: old records would mix into the curves
        os.remove(metrics_path)

    start = time.perf_counter()
    try:
        trainer = Trainer(cfg)
        trainer.resume_or_load(resume=False)
        trainer.train()
    except BAD_INPUT as e:  # e.g. a NaN loss, an unreadable image
        sys.exit(f"error: {e}")
    train_seconds = time.perf_counter() - start

    records = read_metrics(metrics_path)
    box = final_eval(records)
    plot_curves(records, os.path.join(cfg.OUTPUT_DIR, "curves.png"),
                title=f"{cfg.MODEL.RESNEXT.ARCH} Faster R-CNN {_layout(cfg)} on {cfg.DATASETS.TRAIN[0]}")
    with torch.no_grad():
        draw_val_predictions(cfg, trainer.model, os.path.join(cfg.OUTPUT_DIR, "predictions.png"),
                             args.num_images, fuse=args.fuse)
    summary = {"arch": cfg.MODEL.RESNEXT.ARCH, "iterations": cfg.SOLVER.MAX_ITER,
               "train_and_eval_seconds": round(train_seconds, 1), "bbox": box}
    if args.fuse:
        summary["evaluation"] = compare_fused_evaluation(cfg, trainer.model)
    with open(os.path.join(cfg.OUTPUT_DIR, "summary.json"), "w") as f:
        json.dump(summary, f, indent=2)
    print(json.dumps(summary, indent=2))
    print(f"outputs in {cfg.OUTPUT_DIR}: metrics.json model_final.pth curves.png predictions.png summary.json")
    return summary


if __name__ == "__main__":
    main()
