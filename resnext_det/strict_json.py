"""Strict JSON for the files other programs parse: no bare NaN / Infinity (Python's json writes them by
default; JSON itself, JavaScript's JSON.parse, jq and most other parsers refuse them).

A non-finite number is written as null, and the top-level object gets a note naming it by path:
``{"bbox": {"APl": null}, "non_finite_as_null": {"bbox.APl": "NaN"}}`` (COCO's AP is NaN, for example,
for an area range without ground truth).
"""
import json
import math
import os
from typing import Any

__all__ = ["NOTE_KEY", "strict", "dumps", "write_json"]

NOTE_KEY = "non_finite_as_null"


def _non_finite(value) -> bool:
    """A float (Python's or a numpy scalar) that is NaN or infinite."""
    is_float = isinstance(value, float) or (type(value).__module__ == "numpy" and getattr(value, "ndim", 1) == 0
                                            and value.dtype.kind == "f")
    return is_float and not math.isfinite(float(value))


def _name(value) -> str:
    value = float(value)
    return "NaN" if value != value else ("Infinity" if value > 0 else "-Infinity")


def strict(obj: Any) -> Any:
    """A copy of ``obj`` (dicts, lists, tuples, numbers, numpy scalars) with non-finite numbers as None;
    if ``obj`` is a dict, its :data:`NOTE_KEY` entry names each of them by path ("bbox.AP", "b[1]")."""
    notes = {}

    def walk(value, path):
        if _non_finite(value):
            notes[path] = _name(value)
            return None
        if isinstance(value, dict):
            return {k: walk(v, f"{path}.{k}" if path else str(k)) for k, v in value.items()}
        if isinstance(value, (list, tuple)):
            return [walk(v, f"{path}[{i}]") for i, v in enumerate(value)]
        if type(value).__module__ == "numpy" and getattr(value, "ndim", None) == 0:
            return value.item()
        return value

    out = walk(obj, "")
    if notes and isinstance(out, dict):
        out[NOTE_KEY] = dict(out.get(NOTE_KEY) or {}, **notes)
    return out


def dumps(obj: Any, **kwargs) -> str:
    """``json.dumps`` of :func:`strict` ``(obj)``; raises ValueError rather than write NaN."""
    return json.dumps(strict(obj), allow_nan=False, **kwargs)


def write_json(path: str, obj: Any, indent: int = 2) -> None:
    """Write ``obj`` as strict JSON, atomically (a reader sees the old file or the new one)."""
    from .engine.checkpointer import atomic_write

    text = dumps(obj, indent=indent) + "\n"
    atomic_write(os.path.abspath(path), lambda f: f.write(text.encode("utf-8")))
