#!/usr/bin/env python
"""Train and evaluate a config with several backbones and seeds, then compare them (`make compare`).

    python tools/run_comparison.py --config-file configs/demo/shapes_compare_X50_FPN.yaml \
        --archs resnet50 resnext50_32x4d --seeds 3 --output-dir output/compare [KEY VALUE ...]

Each (seed, backbone) is one tools/demo.py run, in its own process, into OUTPUT_DIR/<arch>/seed<k>
with SEED = k (k = 0..N-1; SEED 0 is the demo config's own). Seeds run in turn, every backbone for
one seed before the next seed, so that an interrupted comparison leaves complete pairs. Each run
folder records its request (request.json: the demo's arguments and a SHA-256 of every file of the
config's _BASE_ chain). A run that finished before (summary.json written) with the same request is
kept, not trained again; one with a different request is refused, with one line naming what changed
(--redo trains it again). Then
tools/compare_results.py reports each run, each backbone's mean and standard deviation over seeds
and the paired differences, into OUTPUT_DIR/comparison.json and OUTPUT_DIR/ap.png.
"""
import argparse
import hashlib
import json
import os
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--config-file", required=True, help="the demo-style config every run trains")
    parser.add_argument("--archs", nargs="+", required=True, metavar="ARCH",
                        help="MODEL.RESNEXT.ARCH of each run; the first is the baseline of the differences")
    parser.add_argument("--seeds", type=int, default=1, help="seeds per backbone: SEED 0..N-1")
    parser.add_argument("--output-dir", default="output/compare")
    parser.add_argument("--redo", action="store_true", help="train again runs that already finished")
    parser.add_argument("opts", nargs=argparse.REMAINDER, help="KEY VALUE overrides for every run")
    args = parser.parse_args(argv)
    if args.seeds < 1:
        parser.error(f"--seeds {args.seeds}: give at least 1")
    if len(set(args.archs)) != len(args.archs):
        parser.error(f"--archs {' '.join(args.archs)}: each backbone once")
    return args


def run_dir(args, arch, seed):
    return os.path.join(args.output_dir, arch, f"seed{seed}")


def config_file_hashes(config_file):
    """{path: SHA-256} of ``config_file`` and every file of its _BASE_ chain (a bad chain: ConfigError)."""
    from resnext_det.config_checks import check_yaml_chain

    files = {}
    for path in check_yaml_chain(config_file):
        with open(path, "rb") as f:
            files[os.path.relpath(path)] = hashlib.sha256(f.read()).hexdigest()
    return files


def request(args, arch, seed, config_files):
    """What a run is trained from: the demo's arguments (but the output folder) and the hashes of the
    config's files, so that an edited config file counts as a change."""
    return {"arguments": ["--config-file", args.config_file, "MODEL.RESNEXT.ARCH", arch, "SEED", str(seed),
                          *args.opts], "config_files": config_files}


def recorded_request(path):
    """The request a run folder recorded, or None where its request.json is not one."""
    try:
        with open(path, encoding="utf-8") as f:
            recorded = json.load(f)
    except (OSError, UnicodeDecodeError, json.JSONDecodeError):
        return None
    valid = isinstance(recorded, dict) and isinstance(recorded.get("arguments"), list) \
        and isinstance(recorded.get("config_files"), dict)
    return recorded if valid else None


def request_change(recorded, wanted):
    """One phrase naming how ``recorded`` differs from ``wanted`` (two :func:`request` results)."""
    if recorded["arguments"] != wanted["arguments"]:
        return f"arguments {' '.join(recorded['arguments'])!r}, now {' '.join(wanted['arguments'])!r}"
    changed = sorted(set(recorded["config_files"].items()) ^ set(wanted["config_files"].items()))
    return "config file " + ", ".join(dict.fromkeys(path for path, _ in changed)) + " changed since"


def train(args, arch, seed, config_files):
    """One tools/demo.py run; exits with its status if it fails (its 'error:' line is printed)."""
    out = run_dir(args, arch, seed)
    wanted = request(args, arch, seed, config_files)
    request_file = os.path.join(out, "request.json")
    if not args.redo and os.path.isfile(os.path.join(out, "summary.json")):
        if not os.path.isfile(request_file):
            print(f"[compare] {out}: finished before, kept (it records no request, so a change of config since "
                  "cannot be seen; --redo trains it again)", flush=True)
            return
        recorded = recorded_request(request_file)
        if recorded is None:
            sys.exit(f"error: {request_file} is not a request this tool wrote (unreadable or edited), so whether "
                     f"{out} fits this comparison is unknown; pass --redo (make compare REDO=1) to train it again, "
                     "or give another --output-dir")
        if recorded == wanted:
            print(f"[compare] {out}: finished before with the same request, kept", flush=True)
            return
        sys.exit(f"error: {out} finished with another request ({request_change(recorded, wanted)}); pass --redo "
                 "(make compare REDO=1) to train it again, or give another --output-dir")
    os.makedirs(out, exist_ok=True)
    with open(request_file, "w", encoding="utf-8") as f:
        json.dump(wanted, f, indent=1)
    command = [sys.executable, os.path.join(HERE, "demo.py"), "--config-file", args.config_file,
               "--output-dir", out, "MODEL.RESNEXT.ARCH", arch, "SEED", str(seed), *args.opts]
    print(f"[compare] {arch} seed {seed}: {' '.join(command[1:])}", flush=True)
    start = time.perf_counter()
    status = subprocess.call(command)
    if status:
        sys.exit(status)
    print(f"[compare] {arch} seed {seed}: done in {time.perf_counter() - start:.0f} s", flush=True)


def main(argv=None):
    args = parse_args(argv)
    from resnext_det.engine.exits import error_message, one_line_errors

    try:  # a bad config file: one line, before anything trains
        config_files = config_file_hashes(args.config_file)
    except one_line_errors() as e:
        sys.exit(f"error: {error_message(e)}")
    for seed in range(args.seeds):
        for arch in args.archs:
            train(args, arch, seed, config_files)
    sys.path.insert(0, HERE)
    import compare_results

    runs = [run_dir(args, arch, seed) for arch in args.archs for seed in range(args.seeds)]
    return compare_results.main(runs + ["--plot", os.path.join(args.output_dir, "ap.png"),
                                        "--json", os.path.join(args.output_dir, "comparison.json")])


if __name__ == "__main__":
    main()
