"""Checks of the datasets a config trains and evaluates on, with one-line errors naming the problem.

What happens to each kind of bad input (the datasets are checked each time Detectron2 loads them):

* annotation file that is not valid JSON, not a JSON object, or lacks ``images`` / ``annotations`` /
  ``categories``: DatasetError naming the file (and line and column for invalid JSON);
* image files missing on disk: DatasetError with their count and the first one (a stat per image);
* boxes with zero or negative width or height, or entirely outside their image: dropped; boxes
  partly outside: clipped to the image. One warning per dataset gives the counts;
* a training set in which no image keeps a non-crowd box: DatasetError when
  DATALOADER.FILTER_EMPTY_ANNOTATIONS is on (Detectron2 would stop on an assertion) or when it is
  the only training set (training would see nothing but background);
* a training set with more classes than the model's class count (MODEL.ROI_HEADS.NUM_CLASSES or
  its kin), which would stop training with an index error: DatasetError naming the key to set;
  fewer classes than the model has: a warning;
* a training set without instance masks ("segmentation") for a model that trains masks, or with RLE
  masks where INPUT.MASK_FORMAT is "polygon": DatasetError naming the fix;
* an image that cannot be decoded, or whose size differs from the annotation's: DatasetError naming
  the file and the dataset, raised by the data loader when it reaches that image (decoding every
  image up front would cost a pass over the whole dataset).

Grayscale (L, LA), palette (P) and RGBA images need nothing: Detectron2's ``read_image`` converts them to
INPUT.FORMAT's three channels (the alpha channel is dropped, not composited).
"""
from __future__ import annotations

import json
import logging
import math
import os
import traceback
from typing import Iterable, List, NamedTuple, Optional, Sequence, Tuple

from detectron2.data import DatasetCatalog, MetadataCatalog, build_detection_test_loader, \
    build_detection_train_loader
from detectron2.data.dataset_mapper import DatasetMapper
from detectron2.data.detection_utils import SizeMismatchError
from detectron2.structures import BoxMode
from PIL import UnidentifiedImageError

__all__ = ["DatasetError", "NamedImageErrors", "check_datasets", "check_dataset_names", "clean_records",
           "train_mapper", "build_train_loader", "build_test_loader"]

logger = logging.getLogger(__name__)

_COCO_KEYS = ("images", "annotations", "categories")


class _Use(NamedTuple):
    """How a config uses a dataset: what its records are checked against when loaded."""

    train: bool  # a training set
    only: bool  # the only training set
    filter_empty: bool  # DATALOADER.FILTER_EMPTY_ANNOTATIONS or its kin
    num_classes: Optional[Tuple[int, str]]  # the model's class count and its config key
    mask_format: Optional[Tuple[str, str]]  # when the mapper reads masks: their format and its config key
    masks_trained: bool  # the model has a mask head


_SETTINGS = {}  # dataset name -> _Use
_WARNED = set()  # warnings already logged: a test set is loaded again at each evaluation


class DatasetError(ValueError):
    """A dataset that cannot be used as it is. Its message is one line, also when the error was
    raised in a DataLoader worker (PyTorch re-raises it with the worker's traceback as message)."""

    def __str__(self) -> str:
        text = super().__str__()
        if "\nOriginal Traceback" in text:  # keep the original message: the traceback's last line
            text = text.strip().splitlines()[-1].split(": ", 1)[-1]
        return text


def check_datasets(cfg) -> None:
    """Have every dataset of a YAML config's DATASETS.TRAIN and DATASETS.TEST checked whenever it is
    loaded (:func:`check_dataset_names` with the config's settings)."""
    key = {"GeneralizedRCNN": "MODEL.ROI_HEADS.NUM_CLASSES", "RetinaNet": "MODEL.RETINANET.NUM_CLASSES"}.get(
        cfg.MODEL.META_ARCHITECTURE)
    num_classes = (cfg.MODEL[key.split(".")[1]].NUM_CLASSES, key) if key else None
    masks = (cfg.INPUT.MASK_FORMAT, "INPUT.MASK_FORMAT") if cfg.MODEL.MASK_ON else None
    check_dataset_names(cfg.DATASETS.TRAIN, cfg.DATASETS.TEST, filter_empty=cfg.DATALOADER.FILTER_EMPTY_ANNOTATIONS,
                        num_classes=num_classes, mask_format=masks, masks_trained=cfg.MODEL.MASK_ON)


def check_dataset_names(train: Sequence[str], test: Sequence[str], *, filter_empty: bool = True,
                        num_classes: Optional[Tuple[int, str]] = None,
                        mask_format: Optional[Tuple[str, str]] = None, masks_trained: bool = False) -> None:
    """Have the datasets ``train`` and ``test`` checked whenever they are loaded.

    ``num_classes``: (the model's class count, its config key); ``mask_format``: when the mapper
    reads masks, (their format, its config key); ``masks_trained``: whether the model has a mask
    head. The training sets are then checked when the trainer loads them, right after building the
    model; the test sets are loaded (and checked) once now, so that a broken test set stops the run
    before training rather than at the first evaluation.
    """
    train, test = list(train), list(test)
    for name in train + [n for n in test if n not in train]:
        _SETTINGS[name] = _Use(name in train, train == [name], bool(filter_empty), num_classes, mask_format,
                               masks_trained)
        _install(name)
    for name in test:
        if name not in train:
            DatasetCatalog.get(name)


def _install(name: str) -> None:
    """Replace the catalog's function of ``name`` by one that checks what it returns (idempotent)."""
    load = DatasetCatalog[name]  # KeyError if unregistered: check_dataset_available says it first
    if getattr(load, "_checked", False):
        return

    def checked():
        return _checked_records(name, load)

    checked._checked = True
    DatasetCatalog.remove(name)
    DatasetCatalog.register(name, checked)


def _json_file(name: str) -> Optional[str]:
    path = MetadataCatalog.get(name).get("json_file")
    return path if path and "://" not in str(path) else None


def _checked_records(name: str, load) -> List[dict]:
    json_file = _json_file(name)
    try:
        records = load()
    except Exception as e:
        problem = _json_problem(json_file)
        if problem:
            raise DatasetError(f"dataset '{name}': {problem}") from None
        if json_file and isinstance(e, (AssertionError, KeyError, ValueError)):  # load_coco_json's checks
            raise DatasetError(f"dataset '{name}': {json_file} could not be loaded: {_one_line(e)}") from None
        raise
    if not records:
        raise DatasetError(f"dataset '{name}' has no images: "
                           f"{_json_problem(json_file) or 'its loader returned an empty list'}")
    records = clean_records(records, name)
    use = _SETTINGS.get(name, _Use(False, False, True, None, None, False))
    train, only, filter_empty = use.train, use.only, use.filter_empty
    if train:
        _check_classes(name, records, use.num_classes)
        _check_masks(name, records, use.mask_format, use.masks_trained)
    # Without the filter, an image set with no boxes may be added on purpose (background only).
    if train and (filter_empty or only) and not any(_usable(r) for r in records):
        why = _json_problem(json_file)
        then = ("DATALOADER.FILTER_EMPTY_ANNOTATIONS would drop them all" if filter_empty
                else "training would only see background")
        raise DatasetError(f"dataset '{name}': none of its {len(records)} images has a valid non-crowd box to "
                           f"train on{f': {why}' if why else ''}; {then}")
    return records


def _check_classes(name: str, records: List[dict], num_classes: Optional[Tuple[int, str]]) -> None:
    """More classes than the model has stop training deep in a loss; fewer waste outputs (a warning)."""
    if num_classes is None:
        return
    classes = MetadataCatalog.get(name).get("thing_classes")
    ids = [a["category_id"] for r in records for a in r.get("annotations", ()) if "category_id" in a]
    count = max(len(classes or ()), max(ids, default=-1) + 1)
    wanted, key = num_classes
    if count > wanted:
        raise DatasetError(f"dataset '{name}' has {count} classes, but {key} is {wanted}; set {key} {count}")
    if count < wanted:
        _warn_once(f"dataset '{name}' has {count} classes and {key} is {wanted}: the model's outputs for "
                   f"the other {wanted - count} are never trained")


def _check_masks(name: str, records: List[dict], mask_format: Optional[Tuple[str, str]], trained: bool) -> None:
    """A model that trains masks needs them, in a form its mapper reads."""
    if mask_format is None:
        return
    segmentations = [a["segmentation"] for r in records for a in r.get("annotations", ())
                     if "segmentation" in a and not a.get("iscrowd", 0)]  # the mapper drops crowd regions
    if not segmentations and trained:
        raise DatasetError(f"dataset '{name}' has no instance masks ('segmentation' in its annotations), which "
                           "this model trains; add them, or train a model without a mask head")
    value, key = mask_format
    if value == "polygon" and any(isinstance(s, dict) for s in segmentations):
        raise DatasetError(f"dataset '{name}' has RLE masks, which {key}='polygon' cannot read; set {key} bitmask")


def _warn_once(message: str) -> None:
    if message not in _WARNED:
        _WARNED.add(message)
        logger.warning(message)


def _usable(record: dict) -> bool:
    """What Detectron2's FILTER_EMPTY_ANNOTATIONS keeps: an image with a non-crowd annotation."""
    return any(a.get("iscrowd", 0) == 0 for a in record.get("annotations", ()))


def _one_line(e: Exception) -> str:
    text = " ".join(str(e).split()) or type(e).__name__
    return text.strip("'\"") if isinstance(e, KeyError) else text


def _json_problem(json_file: Optional[str]) -> Optional[str]:
    """What is wrong with a COCO annotation file's structure, or None. Parses the file: only
    called when loading failed or gave nothing to train on."""
    if not json_file:
        return None
    if not os.path.isfile(json_file):
        return f"annotation file {json_file} does not exist"
    try:
        with open(json_file, encoding="utf-8") as f:
            data = json.load(f)
    except json.JSONDecodeError as e:
        return f"{json_file} is not valid JSON: {e.msg} at line {e.lineno}, column {e.colno}"
    except UnicodeDecodeError:
        return f"{json_file} is not UTF-8 text; is it a JSON file?"
    if not isinstance(data, dict):
        return f"{json_file} holds a JSON {type(data).__name__}, not a COCO object with keys {list(_COCO_KEYS)}"
    missing = [k for k in _COCO_KEYS if not isinstance(data.get(k), list)]
    if missing:
        return f"{json_file} has no {' / '.join(repr(k) for k in missing)} list"
    if not data["images"]:
        return f"{json_file} has an empty 'images' list"
    if not data["annotations"]:
        return f"{json_file} has an empty 'annotations' list"
    return None


def clean_records(records: List[dict], name: str) -> List[dict]:
    """Check that each image exists; drop boxes that are empty or outside their image, clip the
    ones partly outside (in place), and log one warning with the counts. Returns ``records``.

    Only absolute XYWH / XYXY boxes of records with ``height`` and ``width`` are checked.
    """
    missing = [r["file_name"] for r in records
               if "://" not in str(r.get("file_name", "")) and not os.path.isfile(r.get("file_name", ""))]
    if missing:
        raise DatasetError(f"dataset '{name}': {len(missing)} of its {len(records)} images do not exist, "
                           f"e.g. {missing[0]}; is the image folder it was registered with right?")
    total = empty = outside = clipped = 0
    for record in records:
        height, width = record.get("height"), record.get("width")
        annotations = record.get("annotations")
        if not annotations or not height or not width:
            continue
        kept = []
        for ann in annotations:
            mode, box = ann.get("bbox_mode"), ann.get("bbox")
            if box is None or mode not in (BoxMode.XYWH_ABS, BoxMode.XYXY_ABS) or len(box) != 4:
                kept.append(ann)
                continue
            total += 1
            x0, y0, a, b = (float(v) for v in box)
            x1, y1 = (x0 + a, y0 + b) if mode == BoxMode.XYWH_ABS else (a, b)
            if not all(map(math.isfinite, (x0, y0, x1, y1))) or x1 <= x0 or y1 <= y0:
                empty += 1
                continue
            inside = max(x0, 0.0), max(y0, 0.0), min(x1, float(width)), min(y1, float(height))
            if inside[2] <= inside[0] or inside[3] <= inside[1]:
                outside += 1
                continue
            if inside != (x0, y0, x1, y1):
                clipped += 1
                x0, y0, x1, y1 = inside
                ann = dict(ann, bbox=[x0, y0, x1 - x0, y1 - y0] if mode == BoxMode.XYWH_ABS else list(inside))
            kept.append(ann)
        record["annotations"] = kept
    if empty or outside or clipped:
        _warn_once(f"dataset '{name}': dropped {empty + outside} of {total} boxes ({empty} with zero or negative "
                   f"width or height, {outside} entirely outside their image) and clipped {clipped} "
                   "partly outside boxes to the image")
    return records


class NamedImageErrors:
    """A mapper whose image read errors become DatasetErrors naming the file and the dataset."""

    def __init__(self, mapper, datasets: Iterable[str]):
        self.mapper = mapper
        self.datasets = ", ".join(repr(n) for n in datasets)

    def __call__(self, record):
        try:
            return self.mapper(record)
        except SizeMismatchError as e:
            raise DatasetError(f"dataset {self.datasets}: {_one_line(e)}") from None
        except Exception as e:
            path = _read_image_file(e)
            if path is None:
                raise
            why = "not an image format PIL can read" if isinstance(e, UnidentifiedImageError) else _one_line(e)
            raise DatasetError(f"image {path} of dataset {self.datasets} could not be read "
                               f"({type(e).__name__}: {why}); replace it or remove it from the annotations") from None


def _read_image_file(error: Exception) -> Optional[str]:
    """The file Detectron2's read_image was reading when ``error`` was raised, if it was."""
    for frame, _ in traceback.walk_tb(error.__traceback__):
        if frame.f_code.co_name == "read_image" and "file_name" in frame.f_locals:
            return str(frame.f_locals["file_name"])
    return None


def train_mapper(cfg):
    """Detectron2's training DatasetMapper, with image read errors naming the file and the dataset."""
    return NamedImageErrors(DatasetMapper(cfg, is_train=True), cfg.DATASETS.TRAIN)


def build_train_loader(cfg):
    """Detectron2's training loader, with image read errors naming the file and the dataset."""
    return build_detection_train_loader(cfg, mapper=train_mapper(cfg))


def build_test_loader(cfg, dataset_name: str):
    """Detectron2's test loader, with image read errors naming the file and the dataset."""
    mapper = NamedImageErrors(DatasetMapper(cfg, is_train=False), [dataset_name])
    return build_detection_test_loader(cfg, dataset_name, mapper=mapper)
