#!/usr/bin/env python
"""The paper-style comparison of finished runs: AP, AP50, AP75, APs/m/l, params, FLOPs, speed.

    python tools/compare_results.py output/compare/R50 output/compare/X50 --plot comparison.png

Each OUTPUT_DIR is a Detectron2 run of tools/train_net.py or tools/demo.py: config.yaml gives the
backbone and seed, metrics.json the last COCO evaluation and the training seconds per iteration,
log.txt the inference seconds per image. Params and FLOPs are the backbone's as an ImageNet
classifier at 224x224. Runs of one backbone with several seeds are also summarized: mean, standard
deviation and range of each AP, and each backbone's AP minus the first backbone's, paired by seed,
with a 95% t interval (give the runs of one config at a time: runs are grouped by backbone).
"""
import argparse
import functools
import json
import os
import re
import statistics
import sys

import yaml

from resnext_det.comparison import group_runs, metric_summary, paired_difference
from resnext_det.complexity import backbone_complexity
from resnext_det.engine.exits import error_message
from resnext_det.engine.report import final_eval, read_metrics
from resnext_det.paths import existing_dir, writable_file_path

AP_KEYS = ("AP", "AP50", "AP75", "APs", "APm", "APl")
_INFERENCE = re.compile(r"Total inference pure compute time: .*\(([\d.]+) s / iter per device")


@functools.lru_cache(maxsize=None)
def _complexity(arch):  # once per backbone, however many seeds
    return backbone_complexity(arch)


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
    complexity = _complexity(arch)
    return {"run": run_dir, "arch": arch, "seed": cfg.get("SEED"), **{k: box.get(k) for k in AP_KEYS},
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


def seed_statistics(rows):
    """Per backbone: the spread of each AP key over its runs; per backbone after the first: its AP
    minus the first backbone's, paired by seed."""
    groups = group_runs(rows)
    baseline = next(iter(groups))
    spread = {arch: {k: v for k in AP_KEYS for v in [metric_summary(runs, k)] if v is not None}
              for arch, runs in groups.items()}
    paired = {arch: {k: paired_difference(runs, groups[baseline], k) for k in ("AP", "AP50", "AP75")}
              for arch, runs in groups.items() if arch != baseline}
    return {"baseline": baseline, "per_backbone": spread, "paired_difference": paired}


def _mean_std(summary, digits=1):
    if summary["std"] is None:
        return _fmt(summary["mean"], digits)
    return f"{_fmt(summary['mean'], digits)} ± {_fmt(summary['std'], digits)}"


def seed_table(stats):
    """Markdown: mean ± standard deviation (and range of AP) per backbone; the paired differences."""
    lines = ["| backbone | runs | AP | AP range | AP50 | AP75 | APs | APm |", "|" + "---|" * 8]
    for arch, spread in stats["per_backbone"].items():
        ap = spread.get("AP")
        cells = ["0", "-", "-"] if ap is None else [str(ap["n"]), _mean_std(ap), f"{_fmt(ap['min'])}-{_fmt(ap['max'])}"]
        cells += [_mean_std(spread[k]) if k in spread else "-" for k in ("AP50", "AP75", "APs", "APm")]
        lines.append(f"| {arch} | " + " | ".join(cells) + " |")
    lines += ["", "| difference, paired by seed | pairs | AP | AP 95% interval | AP50 | AP75 |", "|" + "---|" * 6]
    for arch, paired in stats["paired_difference"].items():
        ap = paired["AP"]
        if ap is None:
            lines.append(f"| {arch} - {stats['baseline']} | 0 | - | - | - | - |")
            continue
        interval = "-" if ap["ci95"] is None else f"{_fmt(ap['mean'] - ap['ci95'])} to {_fmt(ap['mean'] + ap['ci95'])}"
        others = [_mean_std(paired[k]) if paired[k] else "-" for k in ("AP50", "AP75")]
        lines.append(f"| {arch} - {stats['baseline']} | {ap['n']} | {_mean_std(ap)} | {interval} | "
                     + " | ".join(others) + " |")
    return "\n".join(lines)


def plot(rows, path):
    """Bar chart of the mean AP per backbone, the standard deviation over seeds as an error bar and
    each run as a dot."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    groups = group_runs(rows)
    fig, ax = plt.subplots(figsize=(1.6 + 1.4 * len(groups), 3.5))
    summaries = [metric_summary(runs) or {"mean": 0.0, "std": None, "n": 0} for runs in groups.values()]
    bars = ax.bar(list(groups), [s["mean"] for s in summaries], color="tab:blue", alpha=0.8,
                  yerr=[s["std"] or 0 for s in summaries], capsize=6)
    ax.bar_label(bars, fmt="%.1f", label_type="center", color="white")
    for i, runs in enumerate(groups.values()):
        ax.plot([i] * len(runs), [r["AP"] for r in runs], "o", color="black", markersize=4)
    n = sorted({len(runs) for runs in groups.values()})
    ax.set(ylabel="box AP", title=f"box AP per backbone ({'/'.join(map(str, n))} seeds)")
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("runs", nargs="+", metavar="OUTPUT_DIR")
    parser.add_argument("--plot", default="comparison.png", help="bar chart of AP per backbone (PNG)")
    parser.add_argument("--json", help="also write the rows and the seed statistics here")
    args = parser.parse_args(argv)
    try:
        writable_file_path(args.plot, "--plot")
        rows = [summarize(run) for run in args.runs]
        print(table(rows))
        stats = seed_statistics(rows)
        print("\nover seeds (mean ± sample standard deviation; the interval is the mean's, Student's t):\n")
        print(seed_table(stats))
        plot(rows, args.plot)
    except (ValueError, OSError, yaml.YAMLError) as e:  # (ConfigError is a ValueError)
        sys.exit(f"error: {error_message(e)}")
    print(f"\nbar chart: {args.plot}")
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"runs": rows, "seed_statistics": stats}, f, indent=1)
    return rows


if __name__ == "__main__":
    main()
