"""--resume into a folder whose saved config.yaml differs from the new config.

Detectron2 overwrites OUTPUT_DIR/config.yaml with the new config and loads the last checkpoint into
the new model, skipping (with a log line) every tensor whose shape differs. Here, before anything is
written:

* settings that differ (learning rate, schedule, datasets ...) are listed in one warning: resuming
  with a changed schedule is legitimate, but should not go unnoticed;
* a model of another architecture (any model tensor added, removed or of another shape, found by
  building both models on the meta device) is refused with one line naming the differing keys.
"""
import logging
import os
from typing import Dict, List, Tuple

import yaml

from ..checkpoint import CheckpointError
from ..checkpoint.model_weights import _model_shapes
from ..config import load_config
from ..config_checks import short
from ..errors import ConfigError

__all__ = ["ResumeArchitectureError", "config_differences", "check_resume_config"]

logger = logging.getLogger(__name__)

# Keys that differ between runs without changing what is trained.
_IGNORED = {"OUTPUT_DIR", "MODEL.WEIGHTS", "MODEL.DEVICE"}


class ResumeArchitectureError(CheckpointError):
    """--resume with a config whose model differs from the saved run's."""


def _flat(tree, prefix="") -> Dict[str, object]:
    out = {}
    for key, value in (tree or {}).items():
        if isinstance(value, dict):
            out.update(_flat(value, f"{prefix}{key}."))
        else:
            out[f"{prefix}{key}"] = list(value) if isinstance(value, tuple) else value
    return out


def config_differences(saved: dict, cfg) -> List[Tuple[str, object, object]]:
    """(key, saved value, new value) for every key whose values differ; a key one side lacks has None."""
    new = _flat(yaml.safe_load(cfg.dump()))
    old = _flat(saved)
    return [(k, old.get(k), new.get(k)) for k in sorted(set(old) | set(new))
            if k not in _IGNORED and old.get(k) != new.get(k)]


def _shape_differences(saved_path: str, cfg) -> List[str]:
    """Model tensors that the saved config's model and ``cfg``'s do not share with the same shape."""
    old_cfg = load_config(saved_path, ["MODEL.DEVICE", "cpu"])
    old, new = _model_shapes(old_cfg), _model_shapes(cfg)
    if old is None or new is None:
        return []
    names = sorted(k for k in set(old) | set(new) if not k.endswith("num_batches_tracked")
                   and (k not in old or k not in new or old[k] != new[k]))
    return [f"{k}: {tuple(old[k]) if k in old else 'absent'} -> {tuple(new[k]) if k in new else 'absent'}"
            for k in names]


def check_resume_config(cfg, output_dir: str) -> List[str]:
    """Compare ``cfg`` with OUTPUT_DIR/config.yaml (if any) before resuming. Returns the warning lines
    (none if they match); raises ResumeArchitectureError when the models differ."""
    saved_path = os.path.join(output_dir, "config.yaml")
    if not os.path.isfile(os.path.join(output_dir, "last_checkpoint")) or not os.path.isfile(saved_path):
        return []
    try:
        with open(saved_path, encoding="utf-8") as f:
            saved = yaml.safe_load(f)
    except (OSError, UnicodeDecodeError, yaml.YAMLError) as e:
        return [f"--resume: {saved_path} could not be read ({type(e).__name__}), so the config of the run being "
                "resumed is not compared with this one"]
    if not isinstance(saved, dict):
        return [f"--resume: {saved_path} holds no config; not compared with this one"]
    differences = config_differences(saved, cfg)
    if not differences:
        return []
    listed = ", ".join(f"{k} {short(a, 40)} -> {short(b, 40)}" for k, a, b in differences[:8])
    listed += f", and {len(differences) - 8} more" if len(differences) > 8 else ""
    if any(k.startswith("MODEL.") for k, _, _ in differences):
        try:
            shapes = _shape_differences(saved_path, cfg)
        except ConfigError as e:
            return [f"--resume: the saved {saved_path} could not be loaded to compare models ({e}); it differs from "
                    f"this config in {len(differences)} keys: {listed}"]
        if shapes:
            model_keys = ", ".join(f"{k} {short(a, 40)} -> {short(b, 40)}" for k, a, b in differences
                                   if k.startswith("MODEL."))
            raise ResumeArchitectureError(
                f"--resume: the model of this config differs from the one the run in {output_dir} trained ({model_keys}"
                f"; {len(shapes)} tensors differ, e.g. {shapes[0]}); resume with the model settings of "
                f"{saved_path}, or train into another OUTPUT_DIR")
    return [f"--resume: this config differs from {saved_path} (the run being resumed) in {len(differences)} keys: "
            f"{listed}"]
