"""Reading a run's metrics.json and drawing its curves and predictions."""
import json
import math
import os
from typing import Dict, List

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

__all__ = ["read_metrics", "final_eval", "plot_curves", "draw_predictions"]

LOSS_KEYS = ("total_loss", "loss_cls", "loss_box_reg", "loss_rpn_cls", "loss_rpn_loc")


def read_metrics(path: str) -> List[Dict]:
    """The records of Detectron2's JSONWriter (one JSON object a line), in file order.

    Resumed runs append to the file and may repeat iterations: a later record wins. Non-finite values
    are null (with a note) in files written by this plugin, NaN in older ones.
    """
    if not os.path.isfile(path):
        raise FileNotFoundError(f"{path} does not exist: is this a Detectron2 output directory?")
    by_iter = {}
    with open(path) as f:
        for number, line in enumerate(f, 1):
            if not line.strip():
                continue
            try:
                record = json.loads(line)
            except json.JSONDecodeError as e:
                raise ValueError(f"{path}:{number} is not valid JSON ({e.msg})") from None
            if not isinstance(record, dict):
                raise ValueError(f"{path}:{number} is not a JSON object: is this a Detectron2 metrics.json?")
            by_iter.setdefault(record.get("iteration"), {}).update(record)
    return [by_iter[k] for k in sorted(by_iter, key=lambda i: -1 if i is None else i)]


def final_eval(records: List[Dict], task: str = "bbox") -> Dict[str, float]:
    """The last evaluation's metrics of ``task`` (``{"AP": .., "AP50": ..}``); {} if never evaluated."""
    prefix = f"{task}/"
    for record in reversed(records):
        found = {k[len(prefix):]: v for k, v in record.items() if k.startswith(prefix)}
        if found:
            return found
    return {}


def _finite(value) -> bool:
    """A number to plot: metrics.json writes NaN as null (strict_json.py); older files hold NaN."""
    return isinstance(value, (int, float)) and math.isfinite(value)


def plot_curves(records: List[Dict], path: str, title: str = "") -> None:
    """Training losses (left) and box AP / AP50 at every evaluation (right), as one PNG."""
    fig, (ax_loss, ax_ap) = plt.subplots(1, 2, figsize=(11, 4))
    for key in LOSS_KEYS:
        points = [(r["iteration"], r[key]) for r in records if _finite(r.get(key))]
        if points:
            ax_loss.plot(*zip(*points), label=key, linewidth=2 if key == "total_loss" else 1)
    ax_loss.set(xlabel="iteration", ylabel="loss (median over 20 iterations)", title="training losses")
    ax_loss.legend(fontsize=8)
    for key in ("bbox/AP", "bbox/AP50", "bbox/AP75"):
        points = [(r["iteration"], r[key]) for r in records if _finite(r.get(key))]
        if points:
            ax_ap.plot(*zip(*points), marker="o", label=key)
            if key == "bbox/AP":
                ax_ap.annotate(f"AP {points[-1][1]:.1f}", points[-1], textcoords="offset points", xytext=(-30, 8))
    ax_ap.set(xlabel="iteration", ylabel="COCO box AP (%)", title="validation AP", ylim=(0, 100))
    ax_ap.legend(fontsize=8)
    if title:
        fig.suptitle(title)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


def draw_predictions(images, predictions, class_names, path: str, score_threshold: float = 0.5) -> None:
    """A grid of images (RGB arrays) with their predicted boxes, classes and scores."""
    cols = min(4, len(images))
    rows = math.ceil(len(images) / cols)
    fig, axes = plt.subplots(rows, cols, figsize=(3.2 * cols, 3.2 * rows), squeeze=False)
    colours = plt.get_cmap("tab10")
    for ax in axes.flat:
        ax.axis("off")
    for ax, image, instances in zip(axes.flat, images, predictions):
        kept = instances[instances.scores >= score_threshold]
        ax.imshow(image)
        for (x0, y0, x1, y1), label, score in zip(kept.pred_boxes.tensor.tolist(), kept.pred_classes.tolist(),
                                                  kept.scores.tolist()):
            colour = colours(label % 10)
            ax.add_patch(plt.Rectangle((x0, y0), x1 - x0, y1 - y0, fill=False, edgecolor=colour, linewidth=1.5))
            ax.text(x0, y0, f"{class_names[label]} {score:.2f}", color="white", fontsize=6, va="bottom",
                    bbox=dict(facecolor=colour, alpha=0.8, pad=0.5, linewidth=0))
        ax.set_title(f"{len(kept)} boxes with score >= {score_threshold}", fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
