#!/usr/bin/env python
"""Parameters and FLOPs of every backbone (224x224, with a 1000-class classifier) beside the papers'
figures, and of whole detectors (800x1333) from config files, split into their parts.

    python tools/analyze_model.py                      # every backbone
    python tools/analyze_model.py --backbones resnet50 resnext50_32x4d
    python tools/analyze_model.py --backbones none --configs configs/faster_rcnn_X101_32x8d_FPN.yaml
    python tools/analyze_model.py --backbones none --configs configs/faster_rcnn_{R50,X50_32x4d}_C4_1x.yaml
    python tools/analyze_model.py --backbones none --image-size 128 128 \
        --configs configs/demo/shapes_faster_rcnn_X50_C4.yaml --opts MODEL.RESNEXT.ARCH resnet50

FLOPs are fvcore's count: one multiply-add of a convolution or linear layer is one FLOP, as in
the papers' tables. A detector's ROI heads are counted at exactly MODEL.RPN.POST_NMS_TOPK_TEST
regions (in C4, res5 runs once per region).
"""
import argparse
import sys

import resnext_det
from resnext_det import ConfigError
from resnext_det.complexity import PAPER_FIGURES, backbone_complexity, detector_complexity


REGIONS_NOTE = ("\nROI heads are counted at exactly MODEL.RPN.POST_NMS_TOPK_TEST regions per image (fixed boxes fed "
                "to them; the RPN, counted too, keeps a weight- and image-dependent number on a blank image). "
                "In C4 (ResNeXtRes5ROIHeads) the ROI heads are res5, once per region.")


def _relative(ours, paper):
    return f"{100 * (ours - paper) / paper:+.1f}%" if paper else ""


def backbone_table(names):
    rows = [("backbone", "params (M)", "paper", "diff", "GFLOPs", "paper", "diff", "paper source")]
    for name in names:
        c = backbone_complexity(name)
        params, flops = c.params / 1e6, c.flops / 1e9
        paper_params, paper_flops, source = PAPER_FIGURES.get(name, (None, None, ""))
        rows.append((name, f"{params:.2f}", paper_params or "", _relative(params, paper_params),
                     f"{flops:.2f}", paper_flops or "", _relative(flops, paper_flops), source))
    return rows


PART_LABELS = {"backbone": "backbone", "proposal_generator": "RPN", "roi_heads": "ROI heads", "head": "head"}


def detector_table(config_files, height=800, width=1333, opts=()):
    results = []
    for path in config_files:
        cfg = resnext_det.load_config(path, ["MODEL.DEVICE", "cpu", "MODEL.WEIGHTS", "", *opts])
        results.append((path, cfg.MODEL.RESNEXT.ARCH, detector_complexity(cfg, height, width)))
    parts = list(dict.fromkeys(name for _, _, c in results for name in c.parts))
    labels = [PART_LABELS.get(name, name) for name in parts]
    rows = [("config", "arch", "params (M)", *labels, f"GFLOPs @{height}x{width}", *labels, "ROI heads at")]
    for path, arch, c in results:
        def split(field, scale):
            return [f"{getattr(c.parts[n], field) / scale:.1f}" if n in c.parts else "-" for n in parts]

        regions = f"{c.num_proposals} regions" if c.num_proposals is not None else "-"
        rows.append((path, arch, f"{c.params / 1e6:.1f}", *split("params", 1e6),
                     f"{c.flops / 1e9:.1f}", *split("flops", 1e9), regions))
    return rows


def print_table(rows):
    widths = [max(len(str(r[i])) for r in rows) for i in range(len(rows[0]))]
    for i, row in enumerate(rows):
        print("  ".join(str(v).ljust(w) for v, w in zip(row, widths)).rstrip())
        if i == 0:
            print("  ".join("-" * w for w in widths))


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--backbones", nargs="*", default=resnext_det.list_backbones(),
                        help="names (default: all); 'none' for no backbone table")
    parser.add_argument("--configs", nargs="*", default=[], help="detector config files")
    parser.add_argument("--image-size", nargs=2, type=int, default=[800, 1333], metavar=("H", "W"),
                        help="detector input size (default: 800 1333, COCO's test size)")
    parser.add_argument("--opts", nargs="+", default=[], metavar="KEY VALUE",
                        help="config overrides for every config file, e.g. --opts MODEL.RESNEXT.ARCH resnet50")
    args = parser.parse_args(argv)
    try:
        names = [] if args.backbones == ["none"] else args.backbones
        for name in names:
            resnext_det.archs.get_arch(name)
        if names:
            print_table(backbone_table(names))
        if args.configs:
            print()
            print_table(detector_table(args.configs, *args.image_size, opts=args.opts))
            print(REGIONS_NOTE)
    except ConfigError as e:
        sys.exit(f"error: {e}")


if __name__ == "__main__":
    main()
