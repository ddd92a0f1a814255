"""Detectron2 registration of the synthetic shapes datasets, and dataset availability checks.

The shapes datasets are registered lazily: nothing is drawn until a split is first asked for
(through ``DatasetCatalog.get``, :func:`ensure_shapes_generated` or
:func:`check_dataset_available`). The files are cached under
``<cache>/shapes-<spec hash>/``, where ``<cache>`` is :func:`default_cache_dir`.
"""
from __future__ import annotations

import difflib
import logging
import os
from pathlib import Path
from typing import Dict, List, NamedTuple, Optional

from detectron2.data import DatasetCatalog, MetadataCatalog
from detectron2.data.datasets import load_coco_json

from ..paths import coco_dataset_paths
from .synthetic import SPLITS, ShapesSpec, generate_shapes_dataset

__all__ = [
    "DatasetNotFoundError",
    "check_dataset_available",
    "default_cache_dir",
    "ensure_shapes_generated",
    "register_shapes_datasets",
    "shapes_dataset_root",
]

logger = logging.getLogger(__name__)


class _ShapesEntry(NamedTuple):
    spec: ShapesSpec
    root: Path  # dataset folder holding every split
    split: str


# Dataset name -> what it was registered with (only the shapes datasets registered here).
_SHAPES: Dict[str, _ShapesEntry] = {}


class DatasetNotFoundError(KeyError):
    """An unknown dataset name. A KeyError whose message prints as one plain line."""

    def __str__(self) -> str:
        return str(self.args[0]) if self.args else ""


def default_cache_dir() -> Path:
    """`$RESNEXT_DET_CACHE` if set, else `~/.cache/resnext_det`."""
    env = os.environ.get("RESNEXT_DET_CACHE")
    return Path(env).expanduser() if env else Path.home() / ".cache" / "resnext_det"


def shapes_dataset_root(spec: ShapesSpec = ShapesSpec(), cache_dir=None) -> Path:
    """Folder of the dataset made from `spec`: `<cache>/shapes-<short hash of spec>`."""
    cache = Path(cache_dir).expanduser() if cache_dir is not None else default_cache_dir()
    return cache / f"shapes-{spec.short_hash()}"


def register_shapes_datasets(
    spec: ShapesSpec = ShapesSpec(), prefix: str = "shapes", cache_dir=None
) -> List[str]:
    """Register `<prefix>_train` and `<prefix>_val` in Detectron2's catalogs; return the names.

    The cache folder is resolved now (from `cache_dir`, else :func:`default_cache_dir`), since
    Detectron2 metadata cannot change once set. Calling again with the same arguments does
    nothing; calling with another spec or cache folder re-registers the names.
    """
    root = shapes_dataset_root(spec, cache_dir)
    names = []
    for split in SPLITS:
        name = f"{prefix}_{split}"
        names.append(name)
        entry = _ShapesEntry(spec, root, split)
        if name in DatasetCatalog.list():
            if _SHAPES.get(name) == entry:
                continue
            logger.info("Re-registering dataset %s (%s)", name, root)
            DatasetCatalog.remove(name)
            MetadataCatalog.remove(name)
        _SHAPES[name] = entry
        DatasetCatalog.register(name, _loader(name))
        MetadataCatalog.get(name).set(
            json_file=str(root / "annotations" / f"instances_{split}.json"),
            image_root=str(root / split),
            evaluator_type="coco",
            thing_classes=list(spec.classes),
            # what load_coco_json computes for category ids 1..N: id -> 0-based index
            thing_dataset_id_to_contiguous_id={i + 1: i for i in range(len(spec.classes))},
        )
    return names


def _loader(name: str):
    """The DatasetCatalog function of one shapes dataset: generate if needed, then load."""

    def load():
        json_file = ensure_shapes_generated(name)
        return load_coco_json(json_file, MetadataCatalog.get(name).image_root, name)

    load._coco_json = True  # validate.py: load_coco_json of the metadata's json_file and image_root
    load._prepare = lambda: ensure_shapes_generated(name)  # makes the json_file (before it is checked)
    return load


def ensure_shapes_generated(name: str) -> str:
    """Draw the files of shapes dataset `name` (all its splits) if missing; return its json."""
    if name not in _SHAPES:
        raise _unknown_dataset(name, sorted(_SHAPES), "registered shapes dataset")
    spec, root, split = _SHAPES[name]
    if not (root / "spec.json").is_file():
        logger.info("Generating synthetic shapes dataset in %s", root)
    return str(generate_shapes_dataset(root, spec, SPLITS)[split])


def check_dataset_available(name: str) -> None:
    """Make sure the files of dataset `name` exist, with a clear error saying how if not.

    Shapes datasets are generated on the spot. For any other dataset whose metadata names a
    `json_file` and an `image_root` (such as Detectron2's builtin `coco_2017_val`), a missing
    file raises FileNotFoundError, one of the wrong kind (a folder for the json ...) or unreadable a
    PathError. An unregistered name raises DatasetNotFoundError (a KeyError).
    """
    if name in _SHAPES:
        ensure_shapes_generated(name)
        return
    registered = DatasetCatalog.list()
    if name not in registered:
        raise _unknown_dataset(name, registered, "registered dataset")
    meta = MetadataCatalog.get(name)
    json_file, image_root = meta.get("json_file"), meta.get("image_root")
    if json_file is None or image_root is None or "://" in str(json_file):
        return  # not a local COCO-style dataset: nothing we know how to check
    for path, what in ((json_file, "annotation file"), (image_root, "image folder")):
        if not os.path.exists(path):
            raise FileNotFoundError(
                f"Dataset '{name}' is not available: its {what} {os.path.abspath(path)} does "
                f"not exist. Fix: {_how_to_provide(json_file, image_root)}"
            )
    coco_dataset_paths(json_file, image_root, name)  # there, but of the wrong kind or unreadable: PathError


def _unknown_dataset(name: str, known: List[str], kind: str) -> DatasetNotFoundError:
    close = difflib.get_close_matches(name, known, n=5, cutoff=0.6)
    hint = f"; did you mean {', '.join(repr(c) for c in close)}?" if close else "."
    return DatasetNotFoundError(f"'{name}' is not a {kind}{hint}")


def _builtin_root() -> Optional[str]:
    """The dataset root Detectron2 registered its builtin datasets under, read once at import."""
    try:
        from detectron2.data.datasets import builtin
    except ImportError:
        return None
    return getattr(builtin, "_root", None)


def _how_to_provide(json_file: str, image_root: str) -> str:
    """One sentence on where the files of a dataset must be put."""
    root = _builtin_root()
    rel_json = os.path.relpath(json_file, root) if root else None
    rel_images = os.path.relpath(image_root, root) if root else None
    if root is None or rel_json.startswith("..") or rel_images.startswith(".."):
        return (
            f"create {os.path.abspath(json_file)} and {os.path.abspath(image_root)}/, or register "
            "the dataset with the paths where its files are."
        )
    top = rel_json.split(os.sep)[0]
    tops = sorted({top, rel_images.split(os.sep)[0]})
    if tops == [top] and top not in (".", rel_json):
        # e.g. coco/annotations/instances_val2017.json and coco/val2017
        label = "COCO" if top == "coco" else top
        where = (
            f"put {label} under $DETECTRON2_DATASETS/{top} (currently "
            f"{os.path.abspath(os.path.join(root, top))}) with {os.path.relpath(rel_json, top)} "
            f"and {os.path.relpath(rel_images, top)}/"
        )
    else:
        where = (
            f"put the files under $DETECTRON2_DATASETS (currently {os.path.abspath(root)}) as "
            f"{rel_json} and {rel_images}/"
        )
    return (
        f"{where}, or set DETECTRON2_DATASETS to the folder that contains "
        f"{' and '.join(t + '/' for t in tops)} before starting Python (Detectron2 reads it "
        "once, at import). The synthetic 'shapes_train' / "
        "'shapes_val' datasets need no download."
    )
