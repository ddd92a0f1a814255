"""Your own COCO data without code: --register-coco NAME JSON IMAGE_DIR, its one-line errors, and the
dataset checks (validate.py) applying to registered sets, including the class-count and mask checks."""
import json
import logging
import os
import shutil

import pytest
from detectron2.data import DatasetCatalog, MetadataCatalog

from conftest import ROOT, load_tool
from resnext_det.data import DatasetError, check_dataset_available, register_coco
from resnext_det.data.validate import check_dataset_names
from resnext_det.errors import PathError

DEMO_CONFIG = os.path.join(ROOT, "configs", "demo", "shapes_faster_rcnn_X50_FPN.yaml")
SMALL = ["MODEL.RESNEXT.ARCH", "resnet50", "INPUT.MIN_SIZE_TEST", "64", "INPUT.MAX_SIZE_TEST", "64",
         "DATALOADER.NUM_WORKERS", "0"]


@pytest.fixture(scope="module")
def train_net():
    return load_tool("train_net")


@pytest.fixture
def shapes_files(tiny_shapes, tmp_path):
    """A copy of tiny_shapes_val's files: (json path, image folder), free to be damaged."""
    check_dataset_available("tiny_shapes_val")
    meta = MetadataCatalog.get("tiny_shapes_val")
    images = shutil.copytree(meta.image_root, tmp_path / "images")
    annotations = shutil.copy(meta.json_file, tmp_path / "instances.json")
    return str(annotations), str(images)


@pytest.fixture
def registered():
    """Names registered by a test, removed after it."""
    names = []
    yield names
    for name in names:
        if name in DatasetCatalog.list():
            DatasetCatalog.remove(name)
            MetadataCatalog.remove(name)


def _register(registered, name, json_file, image_root):
    register_coco(name, json_file, image_root)
    registered.append(name)  # only once registered: never remove Detectron2's own datasets
    return name


@pytest.mark.parametrize("case, error, message", [
    ("no json", PathError, "--register-coco mine: annotation file {tmp}/none.json does not exist; pass the COCO "
                           "instances JSON file"),
    ("json is a folder", PathError, "--register-coco mine: annotation file {tmp}/images is a folder, not a file; "
                                    "pass the COCO instances JSON file"),
    ("no images", PathError, "--register-coco mine: image folder {tmp}/none does not exist"),
    ("images is a file", PathError, "--register-coco mine: image folder {tmp}/instances.json is a file, not a "
                                    "folder; pass the folder"),
    ("builtin name", DatasetError, "--register-coco coco_2017_val: that name is already registered (for "),
    ("empty name", DatasetError, "--register-coco: dataset name '' is invalid"),
])
def test_bad_registrations_are_one_line_errors(shapes_files, registered, tmp_path, case, error, message):
    json_file, images = shapes_files
    name, args = {
        "no json": ("mine", (str(tmp_path / "none.json"), images)),
        "json is a folder": ("mine", (images, images)),
        "no images": ("mine", (json_file, str(tmp_path / "none"))),
        "images is a file": ("mine", (json_file, json_file)),
        "builtin name": ("coco_2017_val", (json_file, images)),
        "empty name": ("", (json_file, images)),
    }[case]
    with pytest.raises(error) as e:
        _register(registered, name, *args)
    assert message.format(tmp=tmp_path) in str(e.value) and "\n" not in str(e.value)


def test_registering_again_with_the_same_files_is_allowed(shapes_files, registered, tmp_path):
    json_file, images = shapes_files
    assert _register(registered, "mine_twice", json_file, images) == "mine_twice"
    _register(registered, "mine_twice", json_file, os.path.join(images, "."))  # the same folder
    other = shutil.copy(json_file, tmp_path / "other.json")
    with pytest.raises(DatasetError, match=r"mine_twice: that name is already registered \(for .*instances.json\)"):
        _register(registered, "mine_twice", str(other), images)


def test_registered_dataset_is_evaluated_from_the_command_line(train_net, shapes_files, registered):
    json_file, images = shapes_files
    registered += ["mine_val"]
    args = train_net.argument_parser().parse_args(
        ["--config-file", DEMO_CONFIG, "--eval-only", "--register-coco", "mine_val", json_file, images,
         "DATASETS.TRAIN", "('mine_val',)", "DATASETS.TEST", "('mine_val',)", "MODEL.WEIGHTS", ""] + SMALL)
    results = train_net.main(args)
    assert set(results["bbox"]) >= {"AP", "AP50", "AP75"}
    assert MetadataCatalog.get("mine_val").thing_classes == ["circle", "square", "triangle", "star", "ring", "cross"]


def test_dataset_checks_apply_to_registered_sets(train_net, shapes_files, registered, tmp_path, capsys):
    json_file, images = shapes_files
    os.remove(os.path.join(images, "000002.png"))
    registered += ["mine_broken"]
    with pytest.raises(SystemExit) as e:
        train_net.cli(["--config-file", DEMO_CONFIG, "--eval-only", "--register-coco", "mine_broken", json_file,
                       images, "DATASETS.TRAIN", "('mine_broken',)", "DATASETS.TEST", "('mine_broken',)",
                       "OUTPUT_DIR", str(tmp_path)] + SMALL)
    assert str(e.value.code) == (f"error: dataset 'mine_broken': 1 of its 4 images do not exist, e.g. "
                                 f"{images}/000002.png; is the image folder it was registered with right?")


def _load_for_training(name, **settings):
    check_dataset_names([name], [], **settings)
    return DatasetCatalog.get(name)


def test_more_classes_than_the_model_has_is_an_error_fewer_a_warning(shapes_files, registered, caplog):
    _register(registered, "mine_classes", *shapes_files)
    key = "MODEL.ROI_HEADS.NUM_CLASSES"
    with pytest.raises(DatasetError, match=rf"dataset 'mine_classes' has 6 classes, but {key} is 3; set {key} 6$"):
        _load_for_training("mine_classes", num_classes=(3, key))
    with caplog.at_level(logging.WARNING):
        _load_for_training("mine_classes", num_classes=(80, key))
    assert f"dataset 'mine_classes' has 6 classes and {key} is 80: the model's outputs for the other 74 are " \
           "never trained" in caplog.text
    assert len(_load_for_training("mine_classes", num_classes=(6, key))) == 4


def test_mask_checks(shapes_files, registered, tmp_path):
    json_file, images = shapes_files
    _register(registered, "mine_rle", json_file, images)
    rle = ("polygon", "INPUT.MASK_FORMAT")
    with pytest.raises(DatasetError, match=r"dataset 'mine_rle' has RLE masks, which INPUT.MASK_FORMAT='polygon' "
                                           r"cannot read; set INPUT.MASK_FORMAT bitmask$"):
        _load_for_training("mine_rle", mask_format=rle, masks_trained=True)
    assert _load_for_training("mine_rle", mask_format=("bitmask", "INPUT.MASK_FORMAT"), masks_trained=True)

    coco = json.load(open(json_file))
    for annotation in coco["annotations"]:
        del annotation["segmentation"]
    boxes_only = tmp_path / "boxes_only.json"
    boxes_only.write_text(json.dumps(coco))
    _register(registered, "mine_boxes", str(boxes_only), images)
    with pytest.raises(DatasetError, match=r"dataset 'mine_boxes' has no instance masks \('segmentation' in its "
                                           r"annotations\), which this model trains"):
        _load_for_training("mine_boxes", mask_format=rle, masks_trained=True)
    assert _load_for_training("mine_boxes", mask_format=rle, masks_trained=False)  # masks read, none trained
