"""Checks of the datasets a config trains and evaluates on, with one-line errors naming the problem.

What happens to each kind of bad input (the datasets are checked each time Detectron2 loads them;
docs/reliability.md has the table):

* a COCO annotation file (a dataset whose metadata names a local ``json_file``): every field
  Detectron2 reads is checked by the table of rules in coco_fields.py before Detectron2 loads it:
  a file that cannot be used stops with a DatasetError naming the file, the field and an example;
  unusable annotations are dropped (and an invalid ``area`` set from the box) with one warning that
  counts them. Detectron2 then loads the cleaned content (from a temporary copy; the file itself is
  never changed), and COCO evaluation uses it as ground truth;
* image files that are missing, not regular files, empty (0 bytes), not readable as images, or
  16-bit / floating-point (Detectron2 would clip them to 255): DatasetError with their count and the
  first one, before training (a stat per image; non-JPEG files also have their header read);
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
INPUT.FORMAT's three channels (the alpha channel is dropped, not composited). 16-bit color PNGs are
read by Pillow as 8-bit (the high byte of each value); 16-bit grayscale ones are refused (see above).
"""
from __future__ import annotations

import json
import logging
import math
import os
import stat
import tempfile
import traceback
from collections import Counter
from typing import Callable, Iterable, List, NamedTuple, Optional, Sequence, Tuple

from detectron2.data import DatasetCatalog, MetadataCatalog, build_detection_test_loader, \
    build_detection_train_loader
from detectron2.data.dataset_mapper import DatasetMapper
from detectron2.data.datasets import load_coco_json
from detectron2.data.detection_utils import SizeMismatchError
from detectron2.structures import BoxMode
from PIL import Image, UnidentifiedImageError

from .coco_fields import CocoCheck, CocoFileError, check_coco_file, read_coco

__all__ = ["DatasetError", "NamedImageErrors", "check_datasets", "check_dataset_names", "clean_records",
           "cleaned_ground_truth", "train_mapper", "build_train_loader", "build_test_loader"]

logger = logging.getLogger(__name__)


class _Use(NamedTuple):
    """How a config uses a dataset: what its records are checked against when loaded."""

    train: bool  # a training set
    only_train: bool  # the only training set
    filter_empty: bool  # DATALOADER.FILTER_EMPTY_ANNOTATIONS or its kin
    test: bool  # a test set
    num_classes: Optional[Tuple[int, str]] = None  # the model's class count and its config key
    mask_format: Optional[Tuple[str, str]] = None  # when the mapper reads masks: their format and its config key
    masks_trained: bool = False  # the model has a mask head


_NOT_CONFIGURED = _Use(train=False, only_train=False, filter_empty=True, test=False)
_SETTINGS = {}  # dataset name -> _Use
_WARNED = set()  # warnings already logged: a test set is loaded again at each evaluation
# Test set name -> the cleaned content of its annotation file, the ground truth of its evaluation.
_CLEANED_GT = {}


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
    head. The annotation files of the training sets are checked now (their records are checked when
    the trainer loads them, after building the model); the test sets are loaded (and checked) now, so
    that a broken dataset stops the run before training rather than at the first evaluation.
    """
    train, test = list(train), list(test)
    for name in train + [n for n in test if n not in train]:
        _SETTINGS[name] = _Use(name in train, train == [name], bool(filter_empty), name in test, num_classes,
                               mask_format, masks_trained)
        _install(name)
    for name in train:
        json_file = _json_file(name)
        if json_file:
            _prepare(DatasetCatalog[name])
            _check_json(name, json_file)  # found clean: remembered, not parsed again when loaded
    for name in test:
        if name not in train:
            DatasetCatalog.get(name)


def _prepare(load) -> None:
    """Have a loader make its files if it does that (the shapes datasets draw theirs on first use)."""
    load = getattr(load, "_load", load)
    if hasattr(load, "_prepare"):
        load._prepare()


def cleaned_ground_truth(name: str) -> Optional[dict]:
    """The cleaned annotation file content of test set ``name`` if checking it dropped or filled
    anything (evaluate against it, not the file), else None."""
    return _CLEANED_GT.get(name)


def _install(name: str) -> None:
    """Replace the catalog's function of ``name`` by one that checks what it returns (idempotent)."""
    load = DatasetCatalog[name]  # KeyError if unregistered: check_dataset_available says it first
    if getattr(load, "_checked", False):
        return

    def checked():
        return _checked_records(name, load)

    checked._checked, checked._load = True, load
    DatasetCatalog.remove(name)
    DatasetCatalog.register(name, checked)


def _json_file(name: str) -> Optional[str]:
    path = MetadataCatalog.get(name).get("json_file")
    return path if path and "://" not in str(path) else None


def _warn_once(message: str) -> None:
    if message not in _WARNED:
        _WARNED.add(message)
        logger.warning(message)


def _checked_records(name: str, load) -> List[dict]:
    json_file = _json_file(name)
    _CLEANED_GT.pop(name, None)
    _prepare(load)
    check = _check_json(name, json_file) if json_file else None
    if check is not None and check.changed:
        _warn_once(f"dataset '{name}': {check.summary()}")
        records = _load_cleaned(name, load, check)
    else:
        try:
            records = load()
        except Exception as e:
            if json_file and isinstance(e, (AssertionError, KeyError, ValueError, TypeError)):
                raise DatasetError(f"dataset '{name}': {json_file} could not be loaded: {_one_line(e)}") from None
            raise
    if not records:
        raise DatasetError(f"dataset '{name}' has no images: "
                           f"{f'{json_file} lists none' if json_file else 'its loader returned an empty list'}")
    fitted = clean_records(records, name)
    use = _SETTINGS.get(name, _NOT_CONFIGURED)
    if use.train:
        _check_classes(name, records, use.num_classes)
        _check_masks(name, records, use.mask_format, use.masks_trained)
    if use.test and check is not None and (fitted["empty"] or fitted["outside"] or fitted["clipped"]):
        _CLEANED_GT[name] = _fit_ground_truth(check.cleaned or read_coco(json_file))
    # Without the filter, an image set with no boxes may be added on purpose (background only).
    if use.train and (use.filter_empty or use.only_train) and not any(_usable(r) for r in records):
        why = f"{json_file} has no annotations" if check is not None and not check.annotations else ""
        then = ("DATALOADER.FILTER_EMPTY_ANNOTATIONS would drop them all" if use.filter_empty
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


def _check_json(name: str, json_file: str) -> CocoCheck:
    if not os.path.isfile(json_file):
        raise DatasetError(f"dataset '{name}': annotation file {json_file} does not exist")
    try:
        return check_coco_file(json_file)
    except CocoFileError as e:
        raise DatasetError(f"dataset '{name}': {e}") from None
    except OSError as e:
        raise DatasetError(f"dataset '{name}': annotation file {json_file} cannot be read ({e.strerror})") from None


def _is_load_coco_json(load: Callable) -> bool:
    """Is ``load`` ``load_coco_json(json_file, image_root, name)`` of the dataset's metadata: the
    function ``register_coco_instances`` registers, or one marked ``_coco_json`` (the shapes sets)."""
    code = getattr(load, "__code__", None)
    return getattr(load, "_coco_json", False) or (
        code is not None and code.co_filename == load_coco_json.__code__.co_filename
        and getattr(load, "__qualname__", "").startswith("register_coco_instances."))


def _load_cleaned(name: str, load, check: CocoCheck) -> List[dict]:
    """Detectron2's load_coco_json on the cleaned content (a temporary copy of the file)."""
    if not _is_load_coco_json(load):
        raise DatasetError(f"dataset '{name}': {check.summary()}; its loader is not Detectron2's load_coco_json, "
                           "so they cannot be left out for it: fix the file")
    with tempfile.TemporaryDirectory(prefix="resnext_det-") as folder:
        path = os.path.join(folder, os.path.basename(check.json_file))
        with open(path, "w", encoding="utf-8") as f:
            json.dump(check.cleaned, f)
        records = load_coco_json(path, MetadataCatalog.get(name).image_root, name)
    if _SETTINGS.get(name, _NOT_CONFIGURED._replace(test=True)).test:
        _CLEANED_GT[name] = check.cleaned
    return records


def _usable(record: dict) -> bool:
    """What Detectron2's FILTER_EMPTY_ANNOTATIONS keeps: an image with a non-crowd annotation."""
    return any(a.get("iscrowd", 0) == 0 for a in record.get("annotations", ()))


def _one_line(e: Exception) -> str:
    text = " ".join(str(e).split()) or type(e).__name__
    return text.strip("'\"") if isinstance(e, KeyError) else text


# Pixel modes Detectron2's read_image would clip to 0..255 when converting to RGB.
_WIDE_MODES = {"I", "I;16", "I;16B", "I;16L", "I;16N", "F"}
_JPEG = (".jpg", ".jpeg", ".jpe", ".jfif")


_REPLACE = "replace them or remove them from the annotations"


def _image_file_problem(path: str) -> Optional[Tuple[str, str]]:
    """(what is wrong with an image file before decoding it, the fix), or None. A stat, and for files
    that are not JPEGs (always 8-bit) a read of the header."""
    try:
        st = os.stat(path)
    except (FileNotFoundError, NotADirectoryError):
        return "do not exist", "is the image folder it was registered with right?"
    except OSError as e:
        return f"cannot be looked at ({e.strerror})", "check the permissions of the image folder"
    if not stat.S_ISREG(st.st_mode):
        return "are not files (folders or devices)", _REPLACE
    if st.st_size == 0:
        return "are empty (0 bytes)", _REPLACE
    if path.lower().endswith(_JPEG):
        return None
    try:
        with Image.open(path) as image:
            mode = image.mode
    except UnidentifiedImageError:
        return "are not in an image format PIL can read", _REPLACE
    except OSError as e:
        return f"cannot be read ({e.strerror or e})", _REPLACE
    if mode in _WIDE_MODES:
        return (f"have {'floating-point' if mode == 'F' else '16- or 32-bit'} pixels (PIL mode {mode}), which "
                "Detectron2's read_image would clip to 255",
                "convert them to 8-bit, e.g. (numpy.asarray(image) // 257).astype('uint8') for 16-bit ones")
    return None


def _check_image_files(records: List[dict], name: str) -> None:
    """DatasetError naming the count and the first file of the first problem found (see above)."""
    problems = {}
    for record in records:
        path = str(record.get("file_name", ""))
        if "://" in path:
            continue
        problem = _image_file_problem(path)
        if problem:
            problems.setdefault(problem, []).append(path)
    for (problem, fix), paths in problems.items():
        raise DatasetError(f"dataset '{name}': {len(paths)} of its {len(records)} images {problem}, "
                           f"e.g. {paths[0]}; {fix}")


def fit_box(box, xywh: bool, width, height) -> Tuple[str, Optional[list]]:
    """("empty" | "outside" | "clipped" | "kept", the box to keep or None) for an absolute box of an
    image of ``width`` x ``height``: empty (zero or negative size, not finite) and entirely outside:
    dropped; partly outside: clipped to the image."""
    x0, y0, a, b = (float(v) for v in box)
    x1, y1 = (x0 + a, y0 + b) if xywh else (a, b)
    if not all(map(math.isfinite, (x0, y0, x1, y1))) or x1 <= x0 or y1 <= y0:
        return "empty", None
    inside = max(x0, 0.0), max(y0, 0.0), min(x1, float(width)), min(y1, float(height))
    if inside[2] <= inside[0] or inside[3] <= inside[1]:
        return "outside", None
    if inside == (x0, y0, x1, y1):
        return "kept", box
    x0, y0, x1, y1 = inside
    return "clipped", [x0, y0, x1 - x0, y1 - y0] if xywh else list(inside)


def clean_records(records: List[dict], name: str) -> Counter:
    """Check the image files; drop boxes that are empty or outside their image, clip the ones partly
    outside (:func:`fit_box`, in place), and log one warning with the counts. Returns the counts.

    Only absolute XYWH / XYXY boxes of records with ``height`` and ``width`` are checked.
    """
    _check_image_files(records, name)
    counts = Counter()
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
            outcome, fitted = fit_box(box, mode == BoxMode.XYWH_ABS, width, height)
            counts[outcome] += 1
            if fitted is not None:
                kept.append(ann if fitted is box else dict(ann, bbox=fitted))
        record["annotations"] = kept
    if counts["empty"] or counts["outside"] or counts["clipped"]:
        _warn_once(f"dataset '{name}': dropped {counts['empty'] + counts['outside']} of {sum(counts.values())} boxes "
                   f"({counts['empty']} with zero or negative width or height, {counts['outside']} entirely outside "
                   f"their image) and clipped {counts['clipped']} partly outside boxes to the image")
    return counts


def _fit_ground_truth(data: dict) -> dict:
    """A COCO file's content with :func:`fit_box` applied to its annotations, as to the loaded records:
    the ground truth of an evaluation is what the loader gave the model."""
    sizes = {image["id"]: (image["width"], image["height"]) for image in data["images"]}
    annotations = []
    for ann in data.get("annotations", []):
        outcome, fitted = fit_box(ann["bbox"], True, *sizes[ann["image_id"]])
        if fitted is not None:
            annotations.append(ann if fitted is ann["bbox"] else dict(ann, bbox=fitted))
    return dict(data, annotations=annotations)


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
