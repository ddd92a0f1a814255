#!/usr/bin/env python
"""Convert ImageNet weights (torchvision, timm, official ResNeSt, Detectron .pkl) for MODEL.WEIGHTS.

    python tools/convert_pretrained.py --source torchvision --arch resnext101_32x8d \\
        resnext101_32x8d.pth X-101-32x8d.pth
    python tools/convert_pretrained.py torchvision://resnext101_32x8d X-101-32x8d.pth

INPUT is a file or a weights URI (torchvision://, timm://, resnest://; docs/weights.md): a URI's file
is downloaded once into the weights cache and its source and arch are known. Reads .pth/.pt (tensors
only), .safetensors and .pkl (arrays only: a pickle that needs code execution is refused). Writes
{"model": ...} with backbone keys under --prefix, and prints the config lines the weights expect
(input format, normalization, stride placement). For a C4 config (res5 is the box head) pass
--prefix backbone. --res5-prefix roi_heads.
"""
import argparse
import sys

import resnext_det
from resnext_det import ConfigError
from resnext_det.checkpoint import (SOURCES, ConversionResult, convert_state_dict, input_settings, read_state_dict,
                                    save_detectron2_checkpoint)
from resnext_det.checkpoint.sources import is_weights_uri, lookup_weights
from resnext_det.checkpoint.uri import expected_input, resolve_weights
from resnext_det.engine.exits import error_message
from resnext_det.paths import readable_file, writable_file_path


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--source", choices=SOURCES, help="layout of INPUT (required for a file)")
    parser.add_argument("--arch", choices=resnext_det.list_backbones(), metavar="ARCH",
                        help="plugin architecture (one of resnext_det.list_backbones(); required for a file)")
    parser.add_argument("--prefix", default="backbone.bottom_up.",
                        help="key prefix in the detector: 'backbone.bottom_up.' for the FPN builders, "
                             "'backbone.' for build_resnext_backbone")
    parser.add_argument("--res5-prefix", default=None,
                        help="key prefix of res5 (default: --prefix); 'roi_heads.' for C4 configs "
                             "(configs/*_C4_*.yaml), whose res5 is the box head, with --prefix backbone.")
    parser.add_argument("input", help="a weights file, or a URI such as torchvision://resnext101_32x8d")
    parser.add_argument("output")
    return parser.parse_args(argv)


def _convert(args):
    """(conversion result, arch, config lines) for a file or a URI."""
    if not is_weights_uri(args.input):
        if not args.source or not args.arch:
            raise ConfigError(f"{args.input} is a file: name its layout and architecture with --source and --arch")
        readable_file(args.input, "input weights")
        result = convert_state_dict(read_state_dict(args.input), args.source, args.arch)
        return result, args.arch, input_settings(args.source, args.arch)
    entry = lookup_weights(args.input)
    for flag, given, known in (("--arch", args.arch, entry.arch), ("--source", args.source, entry.source)):
        if given and given != known:
            raise ConfigError(f"{args.input} holds {known} weights, not {flag} {given}; leave {flag} out for a URI")
    converted = read_state_dict(resolve_weights(args.input))  # the cached conversion: the backbone's own names
    return ConversionResult(converted, {}), entry.arch, expected_input(entry)


def main(argv=None):
    args = parse_args(argv)
    try:
        writable_file_path(args.output, "output")
        result, arch, settings = _convert(args)
        save_detectron2_checkpoint(result.state_dict, args.output, prefix=args.prefix, res5_prefix=args.res5_prefix)
    except (ConfigError, OSError) as e:
        sys.exit(f"error: {error_message(e)}")
    print(f"wrote {args.output}: {len(result.state_dict)} tensors for {arch}")
    for why in sorted(set(result.dropped.values())):
        keys = [k for k, reason in result.dropped.items() if reason == why]
        shown = ", ".join(keys[:3]) + (", ..." if len(keys) > 3 else "")
        print(f"dropped on purpose: {len(keys)} {why} tensors ({shown})")
    if result.added:
        shown = ", ".join(f"{k} from {v}" for k, v in list(result.added.items())[:2])
        print(f"added: {len(result.added)} tensors the source lacks, copied from others ({shown}, ...)")
    print("config lines for these weights:")
    print(f"  MODEL.WEIGHTS: {args.output}" + (f"  (or {args.input})" if is_weights_uri(args.input) else ""))
    print(f"  MODEL.RESNEXT.ARCH: {arch}")
    for key, value in settings.items():
        print(f"  {key}: {value}")


if __name__ == "__main__":
    main()
