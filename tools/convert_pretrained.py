#!/usr/bin/env python
"""Convert ImageNet weights (torchvision, timm, official ResNeSt, Detectron .pkl) for MODEL.WEIGHTS.

    python tools/convert_pretrained.py --source torchvision --arch resnext101_32x8d \\
        resnext101_32x8d.pth X-101-32x8d.pth

Reads .pth/.pt (tensors only), .safetensors and .pkl (arrays only: a pickle that needs code
execution is refused). Writes {"model": ...} with backbone keys under --prefix, and prints the
config lines the weights expect (input format, normalization, stride placement). For a C4 config
(res5 is the box head) pass --prefix backbone. --res5-prefix roi_heads.
"""
import argparse
import sys

import resnext_det
from resnext_det import ConfigError
from resnext_det.checkpoint import SOURCES, convert_state_dict, input_settings, read_state_dict, save_detectron2_checkpoint


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--source", required=True, choices=SOURCES, help="layout of INPUT")
    parser.add_argument("--arch", required=True, choices=resnext_det.list_backbones(), metavar="ARCH",
                        help="plugin architecture (one of resnext_det.list_backbones())")
    parser.add_argument("--prefix", default="backbone.bottom_up.",
                        help="key prefix in the detector: 'backbone.bottom_up.' for the FPN builders, "
                             "'backbone.' for build_resnext_backbone")
    parser.add_argument("--res5-prefix", default=None,
                        help="key prefix of res5 (default: --prefix); 'roi_heads.' for C4 configs "
                             "(configs/*_C4_*.yaml), whose res5 is the box head, with --prefix backbone.")
    parser.add_argument("input")
    parser.add_argument("output")
    return parser.parse_args(argv)


def main(argv=None):
    args = parse_args(argv)
    try:
        result = convert_state_dict(read_state_dict(args.input), args.source, args.arch)
    except ConfigError as e:
        sys.exit(f"error: {e}")
    save_detectron2_checkpoint(result.state_dict, args.output, prefix=args.prefix, res5_prefix=args.res5_prefix)
    print(f"wrote {args.output}: {len(result.state_dict)} tensors for {args.arch}")
    for why in sorted(set(result.dropped.values())):
        keys = [k for k, reason in result.dropped.items() if reason == why]
        shown = ", ".join(keys[:3]) + (", ..." if len(keys) > 3 else "")
        print(f"dropped on purpose: {len(keys)} {why} tensors ({shown})")
    print("config lines for these weights:")
    print(f"  MODEL.WEIGHTS: {args.output}")
    print(f"  MODEL.RESNEXT.ARCH: {args.arch}")
    for key, value in input_settings(args.source, args.arch).items():
        print(f"  {key}: {value}")


if __name__ == "__main__":
    main()
