"""A small, deterministic, COCO-format detection dataset of synthetic shapes.

Every image is a cluttered background (smooth gradient or low-frequency colour noise, plus thin
lines, small blobs and short strokes that are *not* annotated) with a few objects of six shape
classes. Objects get random colours, so a detector has to learn the shape, not the colour.
Objects may overlap: later objects occlude earlier ones, and every annotation (box, mask, area)
describes the *visible* pixels only.

Layout written by :func:`generate_shapes_dataset`::

    <root>/spec.json                         the spec the files were made from (cache marker)
    <root>/<split>/000000.png ...            lossless RGB images
    <root>/annotations/instances_<split>.json

Each image is drawn from its own random stream, seeded by (seed, split, image index), so an
image does not depend on how many images were generated before it, and the same spec always
gives byte-identical files.
"""
from __future__ import annotations

import dataclasses
import hashlib
import json
import os
import shutil
import tempfile
import zlib
from dataclasses import dataclass
from pathlib import Path
from typing import Dict, Iterable, List, Optional, Sequence, Tuple

import numpy as np
from PIL import Image, ImageDraw
from pycocotools import mask as mask_util

__all__ = ["SHAPE_CLASSES", "ShapesSpec", "generate_shapes_dataset", "render_shapes_image"]

# Bump when the drawing code changes what a spec produces: it is part of the cache key.
GENERATOR_VERSION = 1

SHAPE_CLASSES: Tuple[str, ...] = ("circle", "square", "triangle", "star", "ring", "cross")
SPLITS: Tuple[str, ...] = ("train", "val")


@dataclass(frozen=True)
class ShapesSpec:
    """Every knob of the synthetic shapes dataset. Equal specs give identical datasets."""

    image_size: int = 128  # side of the square RGB images, in pixels
    num_train: int = 2000  # images in the "train" split
    num_val: int = 200  # images in the "val" split
    objects_per_image: Tuple[int, int] = (2, 6)  # inclusive range of objects placed per image
    object_size: Tuple[int, int] = (12, 64)  # outer diameter range in px, sampled log-uniformly
    classes: Tuple[str, ...] = SHAPE_CLASSES  # shape classes used, category ids 1.. in this order
    clutter: int = 8  # at most this many unannotated distractors (lines, blobs, strokes) per image
    max_occlusion: float = 0.6  # objects with a larger hidden fraction are not annotated
    seed: int = 0  # base seed of all random streams

    def __post_init__(self):
        # Accept lists from callers but store tuples, so the spec stays hashable and comparable.
        for name in ("objects_per_image", "object_size", "classes"):
            object.__setattr__(self, name, tuple(getattr(self, name)))
        lo, hi = self.objects_per_image
        if not 0 <= lo <= hi:
            raise ValueError(f"objects_per_image must be 0 <= min <= max, got {self.objects_per_image}")
        smin, smax = self.object_size
        if not 4 <= smin <= smax:
            raise ValueError(f"object_size must be 4 <= min <= max, got {self.object_size}")
        if self.image_size < 32:
            raise ValueError(f"image_size must be at least 32, got {self.image_size}")
        unknown = [c for c in self.classes if c not in SHAPE_CLASSES]
        if not self.classes or unknown or len(set(self.classes)) != len(self.classes):
            raise ValueError(
                f"classes must be distinct names from {SHAPE_CLASSES}, got {self.classes}"
            )
        if not 0.0 <= self.max_occlusion < 1.0:
            raise ValueError(f"max_occlusion must be in [0, 1), got {self.max_occlusion}")
        if self.num_train < 0 or self.num_val < 0 or self.clutter < 0:
            raise ValueError("num_train, num_val and clutter must not be negative")

    def num_images(self, split: str) -> int:
        if split not in SPLITS:
            raise ValueError(f"unknown split {split!r}; the shapes dataset has {SPLITS}")
        return self.num_train if split == "train" else self.num_val

    def to_json(self) -> str:
        """Canonical text of the spec (with the generator version): the cache marker."""
        payload = {"generator_version": GENERATOR_VERSION, "spec": dataclasses.asdict(self)}
        return json.dumps(payload, sort_keys=True)

    def short_hash(self) -> str:
        """10 hex digits that change whenever the spec or the generator version changes."""
        return hashlib.sha1(self.to_json().encode()).hexdigest()[:10]


# ----------------------------------------------------------------------------------------------
# Drawing
# ----------------------------------------------------------------------------------------------


def _rng_for(spec: ShapesSpec, split: str, index: int) -> np.random.Generator:
    """The independent random stream of one image."""
    return np.random.default_rng([spec.seed, zlib.crc32(split.encode()), index])


def _rotate(points: np.ndarray, angle: float) -> np.ndarray:
    c, s = np.cos(angle), np.sin(angle)
    return points @ np.array([[c, s], [-s, c]])


def _regular_polygon(n: int, radius: float, angle: float) -> np.ndarray:
    t = angle + 2 * np.pi * np.arange(n) / n
    return radius * np.stack([np.cos(t), np.sin(t)], axis=1)


def _shape_outline(kind: str, radius: float, angle: float) -> np.ndarray:
    """Polygon vertices (relative to the centre) of a shape whose farthest point is `radius`."""
    if kind == "square":
        return _regular_polygon(4, radius, angle)
    if kind == "triangle":
        return _regular_polygon(3, radius, angle)
    if kind == "star":
        tips = _regular_polygon(10, 1.0, angle)
        return tips * np.where(np.arange(10) % 2 == 0, radius, 0.42 * radius)[:, None]
    if kind == "cross":
        arm = radius / np.hypot(1.0, 0.32)  # far corners of the arms lie on the radius
        w = 0.32 * arm
        quarter = np.array([[arm, -w], [arm, w], [w, w]])  # one arm tip and inner corner, CCW
        pts = np.concatenate([_rotate(quarter, k * np.pi / 2) for k in range(4)])
        return _rotate(pts, angle)
    raise ValueError(kind)


def _shape_mask(kind: str, diameter: float, angle: float, hole: float) -> np.ndarray:
    """Boolean mask of one shape, centred in a square patch just large enough to hold it."""
    side = int(np.ceil(diameter)) + 2
    c, r = side / 2.0, diameter / 2.0
    canvas = Image.new("L", (side, side), 0)
    draw = ImageDraw.Draw(canvas)
    if kind in ("circle", "ring"):
        draw.ellipse([c - r, c - r, c + r, c + r], fill=1)
        if kind == "ring":
            ri = r * hole
            draw.ellipse([c - ri, c - ri, c + ri, c + ri], fill=0)
    else:
        pts = _shape_outline(kind, r, angle) + c
        draw.polygon([tuple(p) for p in pts], fill=1)
    return np.asarray(canvas, dtype=bool)


def _random_colour(rng: np.random.Generator) -> Tuple[int, int, int]:
    return tuple(int(v) for v in rng.integers(0, 256, size=3))


def _background(rng: np.random.Generator, size: int) -> np.ndarray:
    """A smooth float RGB background: a two-colour linear gradient or upsampled colour noise."""
    if rng.random() < 0.5:
        a, b = rng.uniform(0, 255, size=(2, 3))
        theta = rng.uniform(0, 2 * np.pi)
        yy, xx = np.mgrid[0:size, 0:size] / (size - 1)
        t = np.cos(theta) * xx + np.sin(theta) * yy
        t = (t - t.min()) / max(t.max() - t.min(), 1e-6)
        return a + (b - a) * t[..., None]
    cells = int(rng.integers(2, 7))
    coarse = rng.uniform(0, 255, size=(cells, cells, 3)).astype(np.uint8)
    smooth = Image.fromarray(coarse).resize((size, size), Image.BICUBIC)
    return np.asarray(smooth, dtype=np.float64)


def _draw_distractor(draw: ImageDraw.ImageDraw, rng: np.random.Generator, size: int, fill) -> None:
    """One unannotated distractor: a long thin line, a small blob or a short stroke."""
    kind = rng.integers(3)
    if kind == 0:  # thin line across a good part of the image
        x0, y0, x1, y1 = rng.uniform(0, size, size=4)
        draw.line([(x0, y0), (x1, y1)], fill=fill, width=int(rng.integers(1, 3)))
    elif kind == 1:  # small irregular blob, clearly smaller than the smallest object
        cx, cy = rng.uniform(0, size, size=2)
        rx, ry = rng.uniform(1.5, 5.0, size=2)
        draw.ellipse([cx - rx, cy - ry, cx + rx, cy + ry], fill=fill)
    else:  # short curved stroke (polyline with a few random turns)
        pts = [rng.uniform(0, size, size=2)]
        heading = rng.uniform(0, 2 * np.pi)
        for _ in range(int(rng.integers(2, 5))):
            heading += rng.uniform(-1.0, 1.0)
            step = rng.uniform(5, 14)
            pts.append(pts[-1] + step * np.array([np.cos(heading), np.sin(heading)]))
        draw.line([tuple(p) for p in pts], fill=fill, width=int(rng.integers(1, 4)))


def _paste_box(top: int, left: int, patch: np.ndarray, size: int):
    """Image slices and patch slices of a patch placed at (top, left), clipped to the image."""
    h, w = patch.shape
    y0, x0 = max(top, 0), max(left, 0)
    y1, x1 = min(top + h, size), min(left + w, size)
    if y0 >= y1 or x0 >= x1:
        return None
    return (slice(y0, y1), slice(x0, x1)), (slice(y0 - top, y1 - top), slice(x0 - left, x1 - left))


class _Canvas:
    """An image being drawn, with the id of the object that owns each pixel (-1: none)."""

    def __init__(self, pixels: np.ndarray):
        self.size = pixels.shape[0]
        self.pixels = pixels  # float RGB
        self.owner = np.full(pixels.shape[:2], -1, dtype=np.int32)
        self.full_area: List[int] = []  # pixels of each object's whole shape (incl. off-image)
        self.visible: List[int] = []  # pixels each object still shows

    def try_place(self, mask: np.ndarray, top: int, left: int, min_visible: float):
        """Where a new object would go: (image slices, its mask clipped to them, its full
        area), or None if it, or an older object, would be hidden by more than allowed."""
        boxes = _paste_box(top, left, mask, self.size)
        if boxes is None:
            return None
        (iy, ix), (py, px) = boxes
        area = int(mask.sum())
        local = mask[py, px]
        if local.sum() < min_visible * area:  # mostly outside the image
            return None
        if self.visible:
            covered = self.owner[iy, ix][local]
            lost = np.bincount(covered[covered >= 0], minlength=len(self.visible))
            left_visible = np.asarray(self.visible) - lost
            if np.any(left_visible < min_visible * np.asarray(self.full_area)):
                return None
        return (iy, ix), local, area

    def paint(self, placed, colour: np.ndarray, rng: np.random.Generator) -> None:
        """Paint a placed object with its colour and a gentle shading ramp (no pixel noise:
        nothing else in the image has any, so texture never gives an object away)."""
        (iy, ix), local, area = placed
        k = len(self.visible)
        region_owner = self.owner[iy, ix]
        if len(self.visible):
            lost = np.bincount(region_owner[local][region_owner[local] >= 0], minlength=k)
            self.visible = [int(v) for v in np.asarray(self.visible) - lost]
        h, w = local.shape
        yy, xx = np.mgrid[0:h, 0:w]
        gx, gy = rng.uniform(-25, 25, size=2) / max(h, w)
        ramp = gx * (xx - w / 2) + gy * (yy - h / 2)
        fill = colour + ramp[..., None]
        self.pixels[iy, ix][local] = fill[local]
        region_owner[local] = k
        self.full_area.append(area)
        self.visible.append(int(local.sum()))

    def paint_over(self, mask: np.ndarray, colour) -> None:
        """Draw an unannotated distractor on top: its pixels belong to no object any more."""
        self.pixels[mask] = colour
        self.owner[mask] = -1


def _pick_colour(rng: np.random.Generator, under: np.ndarray) -> np.ndarray:
    """A random colour that differs enough from the mean colour it will cover."""
    mean = under.reshape(-1, 3).mean(axis=0) if under.size else np.full(3, 127.0)
    colour = np.asarray(_random_colour(rng), dtype=np.float64)
    for _ in range(10):
        if np.linalg.norm(colour - mean) >= 90:
            break
        colour = np.asarray(_random_colour(rng), dtype=np.float64)
    return colour


def render_shapes_image(spec: ShapesSpec, split: str, index: int):
    """Draw image `index` of `split`.

    Returns (uint8 HxWx3 image, list of objects), one object per annotation: a dict with
    `category_id` (1-based index into spec.classes) and `mask` (HxW bool, visible pixels).
    """
    rng = _rng_for(spec, split, index)
    size = spec.image_size
    min_visible = 1.0 - spec.max_occlusion

    # 1. background with distractors under the objects
    bg = Image.fromarray(np.clip(_background(rng, size), 0, 255).astype(np.uint8))
    draw = ImageDraw.Draw(bg)
    n_clutter = int(rng.integers(0, spec.clutter + 1))
    on_top = rng.random(n_clutter) < 0.25  # a quarter of the distractors cross over objects
    for _ in range(int((~on_top).sum())):
        _draw_distractor(draw, rng, size, _random_colour(rng))
    canvas = _Canvas(np.asarray(bg, dtype=np.float64).copy())

    # 2. objects, each placed where it leaves itself and older objects visible enough
    labels: List[int] = []
    lo, hi = spec.objects_per_image
    smin, smax = spec.object_size
    for _ in range(int(rng.integers(lo, hi + 1))):
        label = int(rng.integers(len(spec.classes)))
        for _attempt in range(10):
            diameter = float(np.exp(rng.uniform(np.log(smin), np.log(smax))))
            mask = _shape_mask(
                spec.classes[label], diameter, rng.uniform(0, 2 * np.pi), rng.uniform(0.45, 0.65)
            )
            cy, cx = rng.uniform(0, size, size=2)
            top, left = int(round(cy - mask.shape[0] / 2)), int(round(cx - mask.shape[1] / 2))
            placed = canvas.try_place(mask, top, left, min_visible)
            if placed is not None:
                (iy, ix), local, _ = placed
                colour = _pick_colour(rng, canvas.pixels[iy, ix][local])
                canvas.paint(placed, colour, rng)
                labels.append(label)
                break

    # 3. distractors over the objects: they may hide a few object pixels
    for _ in range(int(on_top.sum())):
        layer = Image.new("L", (size, size), 0)
        _draw_distractor(ImageDraw.Draw(layer), rng, size, 1)
        canvas.paint_over(np.asarray(layer, dtype=bool), np.asarray(_random_colour(rng)))

    # 4. keep only the objects that are still visible enough
    image = np.clip(np.rint(canvas.pixels), 0, 255).astype(np.uint8)
    objects = []
    for k, label in enumerate(labels):
        mask = canvas.owner == k
        visible = int(mask.sum())
        if visible < min_visible * canvas.full_area[k]:
            continue
        x, y, w, h = _mask_box(mask)
        if w < 4 or h < 4:
            continue
        objects.append({"category_id": label + 1, "mask": mask})
    return image, objects


def _mask_box(mask: np.ndarray) -> Tuple[int, int, int, int]:
    """Tight [x, y, w, h] box, in pixel-edge coordinates, of the True pixels of a mask."""
    ys = np.flatnonzero(mask.any(axis=1))
    xs = np.flatnonzero(mask.any(axis=0))
    if len(xs) == 0:
        return 0, 0, 0, 0
    return int(xs[0]), int(ys[0]), int(xs[-1] - xs[0] + 1), int(ys[-1] - ys[0] + 1)


# ----------------------------------------------------------------------------------------------
# COCO files
# ----------------------------------------------------------------------------------------------


def _coco_annotation(obj: dict, ann_id: int, image_id: int) -> dict:
    """COCO record of one object. `area` is the visible pixel count (= the mask's area)."""
    rle = mask_util.encode(np.asfortranarray(obj["mask"].astype(np.uint8)))
    x, y, w, h = _mask_box(obj["mask"])
    return {
        "id": ann_id,
        "image_id": image_id,
        "category_id": obj["category_id"],
        "bbox": [float(x), float(y), float(w), float(h)],
        "area": float(obj["mask"].sum()),
        "iscrowd": 0,
        "segmentation": {"size": [int(s) for s in rle["size"]], "counts": rle["counts"].decode("ascii")},
    }


def _write_split(root: Path, spec: ShapesSpec, split: str) -> Path:
    """Draw and save every image of one split; return its annotation file."""
    image_dir = root / split
    image_dir.mkdir(parents=True)
    images, annotations = [], []
    for index in range(spec.num_images(split)):
        image, objects = render_shapes_image(spec, split, index)
        file_name = f"{index:06d}.png"
        Image.fromarray(image).save(image_dir / file_name, format="PNG", compress_level=3)
        image_id = index + 1
        images.append(
            {"id": image_id, "file_name": file_name, "width": spec.image_size, "height": spec.image_size}
        )
        for obj in objects:
            annotations.append(_coco_annotation(obj, len(annotations) + 1, image_id))
    coco = {
        "info": {
            "description": f"resnext_det synthetic shapes, {split} split",
            "version": str(GENERATOR_VERSION),
            "spec": dataclasses.asdict(spec),
        },
        "licenses": [],
        "images": images,
        "annotations": annotations,
        "categories": [
            {"id": i + 1, "name": name, "supercategory": "shape"} for i, name in enumerate(spec.classes)
        ],
    }
    json_path = root / "annotations" / f"instances_{split}.json"
    json_path.parent.mkdir(exist_ok=True)
    json_path.write_text(json.dumps(coco), encoding="utf-8")
    return json_path


def _marker_text(spec: ShapesSpec, splits: Sequence[str]) -> str:
    payload = json.loads(spec.to_json())
    payload["splits"] = list(splits)
    return json.dumps(payload, sort_keys=True, indent=1)


def _existing_splits(root: Path, spec: ShapesSpec) -> Optional[List[str]]:
    """Splits of a complete dataset made from `spec` at root, or None if there is none."""
    try:
        marker = json.loads((root / "spec.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    splits = marker.pop("splits", None)
    if json.dumps(marker, sort_keys=True) != spec.to_json() or not isinstance(splits, list):
        return None
    if not all((root / "annotations" / f"instances_{s}.json").is_file() for s in splits):
        return None
    return splits


def _json_paths(root: Path, splits: Iterable[str]) -> Dict[str, Path]:
    return {s: root / "annotations" / f"instances_{s}.json" for s in splits}


def generate_shapes_dataset(
    root, spec: ShapesSpec = ShapesSpec(), splits: Sequence[str] = SPLITS
) -> Dict[str, Path]:
    """Write the shapes dataset of `spec` to `root`, unless it is already there.

    A dataset already at `root` is reused only if its spec.json records the same spec (and
    generator version) and it has every requested split; otherwise it is replaced. The files are
    drawn in a temporary folder next to `root` that is renamed to `root` at the end, so an
    interrupted run never leaves a half dataset under `root`.

    Returns {split: path of instances_<split>.json}.
    """
    root = Path(root)
    splits = list(dict.fromkeys(splits))  # unique, order kept
    for split in splits:
        spec.num_images(split)  # raises on an unknown split name
    have = _existing_splits(root, spec)
    if have is not None and set(splits) <= set(have):
        return _json_paths(root, splits)

    root.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{root.name}.tmp-", dir=root.parent))
    try:
        tmp.chmod(0o755)  # mkdtemp makes it private; the dataset it becomes need not be
        for split in splits:
            _write_split(tmp, spec, split)
        (tmp / "spec.json").write_text(_marker_text(spec, splits), encoding="utf-8")
        _move_into_place(tmp, root, spec, splits)
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)
    return _json_paths(root, splits)


def _move_into_place(tmp: Path, root: Path, spec: ShapesSpec, splits: Sequence[str]) -> None:
    """Rename the finished `tmp` to `root`, replacing a stale dataset there."""
    if root.exists():
        have = _existing_splits(root, spec)
        if have is not None and set(splits) <= set(have):
            return  # another process finished the same dataset first: keep it
        stale = Path(tempfile.mkdtemp(prefix=f".{root.name}.old-", dir=root.parent))
        os.replace(root, stale / "data")
        shutil.rmtree(stale, ignore_errors=True)
    try:
        os.rename(tmp, root)
    except OSError:
        # Lost a race with another process writing the same root; use its copy if it is whole.
        have = _existing_splits(root, spec)
        if have is None or not set(splits) <= set(have):
            raise
