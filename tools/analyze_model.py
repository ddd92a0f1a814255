#!/usr/bin/env python
"""Parameters and FLOPs of every backbone (224x224, with a 1000-class classifier) beside the papers'
figures, and of whole detectors (800x1333) from config files, split into their parts.

    python tools/analyze_model.py                      # every backbone
    python tools/analyze_model.py --backbones resnet50 resnext50_32x4d
    python tools/analyze_model.py --backbones none --configs configs/faster_rcnn_X101_32x8d_FPN.yaml
    # an architecture card (PNG): stem, stages, block, per-stage table; of a preset or a config's backbone
    python tools/analyze_model.py --card resnext50_32x4d --output card.png
    python tools/analyze_model.py --card configs/faster_rcnn_X101_32x4d_FPN_dconv_c3-c5_1x.yaml --output dcn.png
    # the paper's C4 detectors; the reduced C4 demo at its own image size, with ResNet-50
    python tools/analyze_model.py --backbones none --configs configs/faster_rcnn_{R50,X50_32x4d}_C4_1x.yaml
    python tools/analyze_model.py --backbones none --image-size 256 256 \
        --configs configs/demo/shapes_faster_rcnn_X50_C4.yaml --opts MODEL.RESNEXT.ARCH resnet50

FLOPs are fvcore's count: one multiply-add of a convolution or linear layer is one FLOP, as in
the papers' tables. A backbone whose paper counts it with the stride on the first 1x1 (the SENet
paper's ResNets) is counted so, and marked "stride on 1x1". A detector's ROI heads are counted at
exactly MODEL.RPN.POST_NMS_TOPK_TEST regions (in C4, res5 runs once per region).
"""
import argparse
import os
import sys

import resnext_det
from resnext_det import ConfigError
from resnext_det.complexity import PAPER_FIGURES, PaperFigure, backbone_complexity, detector_complexity
from resnext_det.engine.exits import error_message


REGIONS_NOTE = ("\nROI heads are counted at exactly MODEL.RPN.POST_NMS_TOPK_TEST regions per image (fixed boxes fed "
                "to them; the RPN, counted too, keeps a weight- and image-dependent number on a blank image). "
                "In C4 (ResNeXtRes5ROIHeads) the ROI heads are res5, once per region.")


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
    parser.add_argument("--image-size", nargs=2, type=int, default=[800, 1333], metavar=("H", "W"),
                        help="detector input size (default: 800 1333, COCO's test size)")
    parser.add_argument("--opts", nargs="+", default=[], metavar="KEY VALUE",
                        help="config overrides for every config file, e.g. --opts MODEL.RESNEXT.ARCH resnet50")
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
            print_table(detector_table(args.configs, *args.image_size, opts=args.opts))
            print(REGIONS_NOTE)
    except (ConfigError, OSError) as e:
        sys.exit(f"error: {error_message(e)}")


if __name__ == "__main__":
    main()
