#!/usr/bin/env python
"""Parameters and FLOPs of every backbone (224x224, with a 1000-class classifier) beside the papers'
figures, and of whole detectors (800x1333) from config files.

    python tools/analyze_model.py                      # every backbone
    python tools/analyze_model.py --backbones resnet50 resnext50_32x4d
    python tools/analyze_model.py --backbones none --configs configs/faster_rcnn_X101_32x8d_FPN.yaml

FLOPs are fvcore's count: one multiply-add of a convolution or linear layer is one FLOP, as in
the papers' tables.
"""
import argparse
import sys

import resnext_det
from resnext_det import ConfigError
from resnext_det.complexity import PAPER_FIGURES, backbone_complexity, detector_complexity
from resnext_det.engine.exits import error_message


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


def detector_table(config_files):
    rows = [("config", "arch", "params (M)", "GFLOPs @800x1333")]
    for path in config_files:
        cfg = resnext_det.load_config(path, ["MODEL.DEVICE", "cpu", "MODEL.WEIGHTS", ""])
        c = detector_complexity(cfg)
        rows.append((path, cfg.MODEL.RESNEXT.ARCH, f"{c.params / 1e6:.1f}", f"{c.flops / 1e9:.1f}"))
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
    args = parser.parse_args(argv)
    try:
        names = [] if args.backbones == ["none"] else args.backbones
        for name in names:
            resnext_det.archs.get_arch(name)
        if names:
            print_table(backbone_table(names))
        if args.configs:
            print()
            print_table(detector_table(args.configs))
    except (ConfigError, OSError) as e:
        sys.exit(f"error: {error_message(e)}")


if __name__ == "__main__":
    main()
