"""The embedded synthetic shapes dataset: determinism, COCO validity, registration, errors."""
import contextlib
import io
import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from resnext_det.data import (
    DatasetNotFoundError,
    ShapesSpec,
    check_dataset_available,
    ensure_shapes_generated,
    generate_shapes_dataset,
    register_shapes_datasets,
)

REPO = Path(__file__).resolve().parents[1]
SMALL = ShapesSpec(num_train=8, num_val=4, seed=3)


@pytest.fixture(autouse=True)
def _private_cache(tmp_path, monkeypatch):
    """Never write to the real cache in the home folder."""
    monkeypatch.setenv("RESNEXT_DET_CACHE", str(tmp_path / "cache"))


def _files(root: Path):
    return {p.relative_to(root).as_posix(): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


def _load_coco(json_path):
    from pycocotools.coco import COCO

    with contextlib.redirect_stdout(io.StringIO()):
        return COCO(str(json_path))


def test_same_spec_gives_identical_files_and_other_seed_differs(tmp_path):
    a = _files(Path(generate_shapes_dataset(tmp_path / "a", SMALL)["train"]).parents[1])
    b = _files(Path(generate_shapes_dataset(tmp_path / "b", SMALL)["train"]).parents[1])
    assert a.keys() == b.keys()
    assert "annotations/instances_train.json" in a and "val/000003.png" in a
    assert all(a[k] == b[k] for k in a)

    other = ShapesSpec(num_train=8, num_val=4, seed=4)
    c = _files(Path(generate_shapes_dataset(tmp_path / "c", other)["train"]).parents[1])
    assert c["annotations/instances_train.json"] != a["annotations/instances_train.json"]
    assert c["train/000000.png"] != a["train/000000.png"]


def test_images_do_not_depend_on_split_size(tmp_path):
    small = generate_shapes_dataset(tmp_path / "s", ShapesSpec(num_train=2, num_val=1, seed=3))
    big = generate_shapes_dataset(tmp_path / "b", SMALL)
    for split in ("train", "val"):
        name = f"{split}/000000.png"
        assert (Path(small[split]).parents[1] / name).read_bytes() == (
            Path(big[split]).parents[1] / name
        ).read_bytes()
    # train and val are different random streams
    root = Path(big["train"]).parents[1]
    assert (root / "train/000000.png").read_bytes() != (root / "val/000000.png").read_bytes()


def test_coco_json_is_valid_and_matches_images(tmp_path):
    paths = generate_shapes_dataset(tmp_path / "d", SMALL)
    for split, json_path in paths.items():
        coco = _load_coco(json_path)
        data = coco.dataset
        assert set(data) >= {"info", "licenses", "images", "annotations", "categories"}
        cat_ids = [c["id"] for c in data["categories"]]
        assert cat_ids == list(range(1, len(SMALL.classes) + 1))
        assert [c["name"] for c in data["categories"]] == list(SMALL.classes)
        assert all(c["supercategory"] == "shape" for c in data["categories"])
        image_ids = [im["id"] for im in data["images"]]
        ann_ids = [a["id"] for a in data["annotations"]]
        assert len(set(image_ids)) == len(image_ids) == SMALL.num_images(split)
        assert len(set(ann_ids)) == len(ann_ids) > 0
        for im in data["images"]:
            with Image.open(Path(json_path).parents[1] / split / im["file_name"]) as pil:
                assert pil.size == (im["width"], im["height"]) and pil.mode == "RGB"
        for ann in data["annotations"]:
            assert ann["category_id"] in cat_ids and ann["image_id"] in image_ids
            assert ann["iscrowd"] == 0
            mask = coco.annToMask(ann)  # the RLE decodes to the visible pixels
            assert mask.shape == (SMALL.image_size, SMALL.image_size)
            assert mask.sum() == ann["area"]
            ys, xs = np.nonzero(mask)
            x, y, w, h = ann["bbox"]
            assert (x, y, w, h) == (xs.min(), ys.min(), xs.max() - xs.min() + 1, ys.max() - ys.min() + 1)


def test_boxes_inside_images_and_every_class_appears(tmp_path):
    spec = ShapesSpec(num_train=40, num_val=0, seed=1)
    json_path = generate_shapes_dataset(tmp_path / "e", spec, splits=("train",))["train"]
    data = json.loads(Path(json_path).read_text())
    size = spec.image_size
    for ann in data["annotations"]:
        x, y, w, h = ann["bbox"]
        assert w >= 4 and h >= 4
        assert 0 <= x and 0 <= y and x + w <= size and y + h <= size
    lo, hi = spec.object_size
    sides = [max(a["bbox"][2:]) for a in data["annotations"]]
    assert max(sides) <= hi + 2 and max(sides) > 3 * min(sides)  # sizes really vary
    assert {a["category_id"] for a in data["annotations"]} == set(range(1, len(spec.classes) + 1))
    per_image = np.bincount([a["image_id"] for a in data["annotations"]], minlength=41)[1:]
    assert per_image.min() >= 1 and per_image.max() <= spec.objects_per_image[1]


def test_cache_marker_reuses_only_the_same_spec(tmp_path):
    root = tmp_path / "f"
    generate_shapes_dataset(root, SMALL)
    marker = json.loads((root / "spec.json").read_text())
    assert marker["spec"]["seed"] == SMALL.seed and marker["splits"] == ["train", "val"]
    stamp = (root / "train/000000.png").stat().st_mtime_ns
    generate_shapes_dataset(root, SMALL)  # same spec: reused as is
    assert (root / "train/000000.png").stat().st_mtime_ns == stamp

    other = ShapesSpec(num_train=3, num_val=2, seed=9)
    generate_shapes_dataset(root, other)  # different spec: replaced
    assert json.loads((root / "spec.json").read_text())["spec"]["seed"] == 9
    assert sorted(p.name for p in (root / "train").iterdir()) == ["000000.png", "000001.png", "000002.png"]
    assert [p.name for p in tmp_path.iterdir()] == ["f"]  # no temporary folders left behind


def test_interrupted_generation_leaves_nothing(tmp_path, monkeypatch):
    from resnext_det.data import synthetic

    def boom(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(synthetic, "_coco_annotation", boom)
    with pytest.raises(KeyboardInterrupt):
        generate_shapes_dataset(tmp_path / "g", SMALL)
    assert not (tmp_path / "g").exists()
    assert not any(p.name.startswith(".g.") for p in tmp_path.iterdir())


def test_spec_validation():
    with pytest.raises(ValueError):
        ShapesSpec(classes=("circle", "hexagon"))
    with pytest.raises(ValueError):
        ShapesSpec(max_occlusion=1.0)
    assert ShapesSpec(classes=["circle", "ring"]).classes == ("circle", "ring")
    assert ShapesSpec().short_hash() == ShapesSpec().short_hash() != SMALL.short_hash()


def test_registration_is_lazy_idempotent_and_loads(tmp_path):
    from detectron2.data import DatasetCatalog, MetadataCatalog
    from detectron2.structures import BoxMode

    names = register_shapes_datasets(SMALL, prefix="test_shapes_reg")
    assert names == ["test_shapes_reg_train", "test_shapes_reg_val"]
    assert register_shapes_datasets(SMALL, prefix="test_shapes_reg") == names  # no error twice
    meta = MetadataCatalog.get("test_shapes_reg_val")
    assert str(tmp_path / "cache") in meta.json_file  # the cache folder of the environment
    assert not os.path.exists(meta.json_file)  # nothing drawn yet

    assert ensure_shapes_generated("test_shapes_reg_val") == meta.json_file
    assert os.path.isfile(meta.json_file) and os.path.isdir(meta.image_root)
    assert meta.evaluator_type == "coco" and meta.thing_classes == list(SMALL.classes)

    dicts = DatasetCatalog.get("test_shapes_reg_val")
    assert len(dicts) == SMALL.num_val
    annos = [a for d in dicts for a in d["annotations"]]
    assert annos and all(a["bbox_mode"] == BoxMode.XYWH_ABS for a in annos)
    assert all(0 <= a["category_id"] < len(SMALL.classes) for a in annos)
    assert all(os.path.isfile(d["file_name"]) for d in dicts)
    # load_coco_json set the same metadata as the registration (a mismatch would have raised)
    assert meta.thing_dataset_id_to_contiguous_id == {i + 1: i for i in range(len(SMALL.classes))}

    # another spec under the same names replaces the registration
    other = ShapesSpec(num_train=2, num_val=1, seed=5)
    register_shapes_datasets(other, prefix="test_shapes_reg")
    assert len(DatasetCatalog.get("test_shapes_reg_val")) == 1


def test_default_registration_exists():
    from detectron2.data import DatasetCatalog, MetadataCatalog

    assert {"shapes_train", "shapes_val"} <= set(DatasetCatalog.list())
    assert MetadataCatalog.get("shapes_val").thing_classes == list(ShapesSpec().classes)


def test_check_dataset_available_generates_shapes():
    from detectron2.data import MetadataCatalog

    register_shapes_datasets(SMALL, prefix="test_shapes_check")
    check_dataset_available("test_shapes_check_train")
    assert os.path.isfile(MetadataCatalog.get("test_shapes_check_train").json_file)


def test_unknown_dataset_names_close_matches():
    with pytest.raises(DatasetNotFoundError) as info:
        check_dataset_available("coco_2017_vall")
    message = str(info.value)
    assert "coco_2017_vall" in message and "coco_2017_val" in message and "\n" not in message
    assert isinstance(info.value, KeyError)


def test_missing_coco_names_path_and_env_var(tmp_path):
    # Detectron2 reads DETECTRON2_DATASETS once, when it is imported: check in a fresh process.
    empty = tmp_path / "datasets"
    empty.mkdir()
    code = (
        "from resnext_det.data import check_dataset_available\n"
        "try:\n"
        "    check_dataset_available('coco_2017_val')\n"
        "except FileNotFoundError as e:\n"
        "    print('MESSAGE:' + str(e))\n"
    )
    env = dict(os.environ, DETECTRON2_DATASETS=str(empty), RESNEXT_DET_CACHE=str(tmp_path / "c"))
    env["PYTHONPATH"] = os.pathsep.join([str(REPO), env.get("PYTHONPATH", "")])
    out = subprocess.run(
        [sys.executable, "-c", code], env=env, cwd=tmp_path, capture_output=True, text=True, timeout=120
    )
    assert out.returncode == 0, out.stderr
    message = out.stdout.split("MESSAGE:", 1)[1].strip()
    assert "coco_2017_val" in message and "DETECTRON2_DATASETS" in message
    assert str(empty / "coco" / "annotations" / "instances_val2017.json") in message
    assert str(empty / "coco") in message and "val2017/" in message
    assert "\n" not in message
