#!/usr/bin/env python
"""Parameters and FLOPs of every backbone (224x224, with a 1000-class classifier) beside the papers'
figures, and of whole detectors (800x1333) from config files.

    python tools/analyze_model.py                      # every backbone
    python tools/analyze_model.py --backbones resnet50 resnext50_32x4d
    python tools/analyze_model.py --backbones none --configs configs/faster_rcnn_X101_32x8d_FPN.yaml
    # an architecture card (PNG): stem, stages, block, per-stage table; of a preset or a config's backbone
    python tools/analyze_model.py --card resnext50_32x4d --output card.png
    python tools/analyze_model.py --card configs/faster_rcnn_X101_32x4d_FPN_dconv_c3-c5_1x.yaml --output dcn.png

FLOPs are fvcore's count: one multiply-add of a convolution or linear layer is one FLOP, as in
the papers' tables. A backbone whose paper counts it with the stride on the first 1x1 (the SENet
paper's ResNets) is counted so, and marked "stride on 1x1".
"""
import argparse
import os
import sys

import resnext_det
from resnext_det import ConfigError
from resnext_det.complexity import PAPER_FIGURES, PaperFigure, backbone_complexity, detector_complexity
from resnext_det.engine.exits import error_message


def _relative(ours, paper):
    return f"{100 * (ours - paper) / paper:+.1f}%" if paper else ""


def backbone_table(names):
    rows = [("backbone", "params (M)", "paper", "diff", "GFLOPs", "paper", "diff", "paper source")]
    for name in names:
        paper = PAPER_FIGURES.get(name, PaperFigure(None, None, ""))
        c = backbone_complexity(name, stride_in_1x1=paper.stride_in_1x1)
        params, flops = c.params / 1e6, c.flops / 1e9
        source = paper.source + ("; stride on 1x1" if paper.stride_in_1x1 else "")
        rows.append((name, f"{params:.2f}", paper.params or "", _relative(params, paper.params),
                     f"{flops:.2f}", paper.gflops or "", _relative(flops, paper.gflops), source))
    return rows


def detector_table(config_files):
    rows = [("config", "arch", "params (M)", "GFLOPs @800x1333")]
    for path in config_files:
        cfg = resnext_det.load_config(path, ["MODEL.DEVICE", "cpu", "MODEL.WEIGHTS", ""])
        c = detector_complexity(cfg)
        rows.append((path, cfg.MODEL.RESNEXT.ARCH, f"{c.params / 1e6:.1f}", f"{c.flops / 1e9:.1f}"))
    return rows


def card_backbone(name_or_config):
    """(title, backbone with res2..res5 and trainable norms, so that norm parameters count) of a preset
    name or of a config file's MODEL.RESNEXT backbone."""
    from detectron2.layers import ShapeSpec

    from resnext_det.modeling import build_resnext_backbone

    if not name_or_config.endswith((".yaml", ".yml")):
        resnext_det.archs.get_arch(name_or_config)
        return name_or_config, resnext_det.create_backbone(name_or_config, norm="BN")
    cfg = resnext_det.load_config(name_or_config, [
        "MODEL.DEVICE", "cpu", "MODEL.WEIGHTS", "", "MODEL.RESNEXT.NORM", "BN", "MODEL.BACKBONE.FREEZE_AT", "0",
        "MODEL.RESNEXT.OUT_FEATURES", "['res2', 'res3', 'res4', 'res5']"])
    if not cfg.MODEL.BACKBONE.NAME.startswith("build_resnext"):
        raise ConfigError(f"{name_or_config} builds {cfg.MODEL.BACKBONE.NAME}, not a resnext_det backbone: "
                          "cards draw MODEL.RESNEXT backbones")
    title = f"{os.path.basename(name_or_config)} ({cfg.MODEL.RESNEXT.ARCH})"
    return title, build_resnext_backbone(cfg, ShapeSpec(channels=len(cfg.MODEL.PIXEL_MEAN)))


def write_card(name_or_config, output, size):
    from resnext_det.cards import describe_backbone, draw_card

    title, model = card_backbone(name_or_config)
    card = describe_backbone(title, model, size)
    draw_card(card, output)
    print(f"wrote {output}: {title}, {card.family}")
    print_table([("stage", "blocks", "in -> out", "3x3 width", "stride", "3x3", "params (M)", f"GFLOPs @{size}")] +
                [(r.name, r.blocks, f"{r.in_channels} -> {r.out_channels}", r.width, r.stride, r.transform,
                  f"{r.params / 1e6:.2f}", f"{r.flops / 1e9:.3f}") for r in card.rows])
    print(f"stride 2 in: {card.stride_at}")


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
    parser.add_argument("--card", metavar="NAME_OR_CONFIG",
                        help="draw the architecture card of a backbone name or a config file's backbone (only that)")
    parser.add_argument("--output", help="the card's PNG file (default: NAME.png)")
    parser.add_argument("--size", type=int, default=224, help="the card's input size for FLOPs")
    args = parser.parse_args(argv)
    try:
        if args.card:
            stem = os.path.splitext(os.path.basename(args.card))[0]
            return write_card(args.card, args.output or f"{stem}.png", args.size)
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
