#!/usr/bin/env python
"""The paper-style comparison of finished runs: AP, AP50, AP75, APs/m/l, params, FLOPs, speed.

    python tools/compare_results.py output/compare/R50 output/compare/X50 --plot comparison.png

Each OUTPUT_DIR is a Detectron2 run of tools/train_net.py or tools/demo.py: config.yaml gives the
backbone, metrics.json the last COCO evaluation and the training seconds per iteration, log.txt the
inference seconds per image. Params and FLOPs are the backbone's as an ImageNet classifier at 224x224.
"""
import argparse
import os
import re
import statistics
import sys

import yaml

from resnext_det.complexity import backbone_complexity
from resnext_det.engine.exits import error_message
from resnext_det.engine.report import final_eval, read_metrics
from resnext_det.paths import existing_dir, writable_file_path

AP_KEYS = ("AP", "AP50", "AP75", "APs", "APm", "APl")
_INFERENCE = re.compile(r"Total inference pure compute time: .*\(([\d.]+) s / iter per device")


def summarize(run_dir):
    """One row of the table for a run directory."""
    existing_dir(run_dir, "run folder", "pass the OUTPUT_DIR of a finished run")
    config_path = os.path.join(run_dir, "config.yaml")
    if not os.path.isfile(config_path):
        raise FileNotFoundError(f"{config_path} does not exist: {run_dir} is not a finished run directory")
    with open(config_path) as f:
        cfg = yaml.safe_load(f)
    try:
        arch = cfg["MODEL"].get("RESNEXT", {}).get("ARCH")
    except (TypeError, KeyError, AttributeError):  # not a Detectron2 config
        arch = None
    if not arch:
        raise ValueError(f"{config_path} has no MODEL.RESNEXT.ARCH: not a resnext_det run")
    records = read_metrics(os.path.join(run_dir, "metrics.json"))
    box = final_eval(records)
    if not box:
        raise ValueError(f"{run_dir}/metrics.json holds no bbox evaluation: was the run evaluated?")
    times = [r["time"] for r in records if "time" in r]
    inference = None
    log_path = os.path.join(run_dir, "log.txt")
    if os.path.isfile(log_path):
        found = _INFERENCE.findall(open(log_path).read())
        inference = float(found[-1]) if found else None
    complexity = backbone_complexity(arch)
    return {"run": run_dir, "arch": arch, **{k: box.get(k) for k in AP_KEYS},
            "params_M": complexity.params / 1e6, "GFLOPs": complexity.flops / 1e9,
            "train_s_per_iter": statistics.median(times) if times else None,
            "inference_s_per_img": inference}


def _fmt(value, digits=1):
    if value is None or value != value:  # None or NaN
        return "-"
    return f"{value:.{digits}f}"


def table(rows):
    header = ["run", "backbone", *AP_KEYS, "params (M)", "GFLOPs", "train s/iter", "infer s/img"]
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    for r in rows:
        cells = [r["run"], r["arch"], *(_fmt(r[k]) for k in AP_KEYS), _fmt(r["params_M"]), _fmt(r["GFLOPs"], 2),
                 _fmt(r["train_s_per_iter"], 3), _fmt(r["inference_s_per_img"], 4)]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def plot(rows, path):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(1.6 + 1.4 * len(rows), 3.5))
    labels = [f"{r['arch']}\n{os.path.basename(os.path.normpath(r['run']))}" for r in rows]
    bars = ax.bar(labels, [r["AP"] for r in rows], color="tab:blue")
    ax.bar_label(bars, fmt="%.1f")
    ax.set(ylabel="box AP", title="box AP per backbone")
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("runs", nargs="+", metavar="OUTPUT_DIR")
    parser.add_argument("--plot", default="comparison.png", help="bar chart of AP per backbone (PNG)")
    args = parser.parse_args(argv)
    try:
        writable_file_path(args.plot, "--plot")
        rows = [summarize(run) for run in args.runs]
        print(table(rows))
        plot(rows, args.plot)
    except (ValueError, OSError, yaml.YAMLError) as e:  # (ConfigError is a ValueError)
        sys.exit(f"error: {error_message(e)}")
    print(f"\nbar chart: {args.plot}")
    return rows


if __name__ == "__main__":
    main()
