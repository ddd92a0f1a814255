"""Every field of a COCO file that Detectron2 reads: each rule of resnext_det/data/coco_fields.py, broken
once, through the real loading path (register_coco_instances, the plugin's checks, load_coco_json)."""
import copy
import json
import logging
import os
import re

import numpy as np
import pytest
from detectron2.data import DatasetCatalog, MetadataCatalog
from detectron2.data.datasets import register_coco_instances
from PIL import Image

from resnext_det import load_config
from resnext_det.data import DatasetError, check_datasets
from resnext_det.data.coco_fields import DROP, FILL, RULES, STOP
from test_bad_input import write_coco

# 2 images, 4 annotations (image 1: ids 1, 2; image 2: ids 3, 4), 2 categories.
IMAGES = [{"boxes": [[8, 8, 24, 20], [30, 30, 10, 10]]}, {"boxes": [[30, 20, 20, 30], [4, 4, 12, 12]]}]


@pytest.fixture
def coco(tmp_path, request):
    """coco(mutate, train=True) -> (records or the DatasetError, the warnings logged): the 2-image dataset
    with ``mutate(data)`` applied to its json, registered and loaded as a training (or test) set."""
    root = str(tmp_path / "data")
    path = write_coco(root, IMAGES)
    base = json.load(open(path))
    base["categories"].append({"id": 2, "name": "other"})
    for ann in base["annotations"]:
        ann["segmentation"] = [[ann["bbox"][0], ann["bbox"][1], ann["bbox"][0] + 4, ann["bbox"][1],
                                ann["bbox"][0], ann["bbox"][1] + 4]]
    names = []

    def load(mutate, train=True, caplog=None):
        data = copy.deepcopy(base)
        mutate(data)
        with open(path, "w") as f:
            json.dump(data, f)
        name = re.sub(r"\W", "_", f"fields_{request.node.name}_{len(names)}")
        register_coco_instances(name, {}, path, root)
        names.append(name)
        split = (f"('{name}',)", "()") if train else ("()", f"('{name}',)")
        cfg = load_config(None, ["DATASETS.TRAIN", split[0], "DATASETS.TEST", split[1]])
        try:
            check_datasets(cfg)
            return name, DatasetCatalog.get(name)
        except DatasetError as e:
            return name, e

    yield load
    for name in names:
        DatasetCatalog.remove(name)
        MetadataCatalog.remove(name)


TARGETED = set()  # (section, field) that a case breaks


def _set(section, index, field, value):
    TARGETED.add((section, field))

    def mutate(data):
        if value is _DELETE:
            del data[section][index][field]
        else:
            data[section][index][field] = value
    return mutate


_DELETE = object()

# One case per rule (and a few more per kind of wrong value): (mutation, action, message)
CASES = {
    "image id duplicate": (_set("images", 1, "id", 1), STOP, r"1 of its 2 images have the same id as an earlier "
                                                             r"entry, e.g. images\[1\].id = 1, as images\[0\]"),
    "image id string": (_set("images", 0, "id", "1"), STOP, r"an id that is not a whole number >= 0, e.g. "
                                                            r"images\[0\].id = '1'"),
    "image id negative": (_set("images", 0, "id", -1), STOP, r"images\[0\].id = -1"),
    "image file_name missing": (_set("images", 1, "file_name", _DELETE), STOP, r"images\[1\] \(id 2\) has no "
                                                                               r"file_name"),
    "image file_name duplicate": (_set("images", 1, "file_name", "000.png"), STOP, r"the same file_name as an "
                                                                                   r"earlier entry"),
    "image width string": (_set("images", 1, "width", "64"), STOP, r"a width that is not a positive whole number, "
                                                                   r"e.g. images\[1\] \(id 2\).width = '64'"),
    "image height zero": (_set("images", 0, "height", 0), STOP, r"a height that is not a positive whole number"),
    "image height NaN": (_set("images", 0, "height", float("nan")), STOP, r"height = nan"),
    "category id duplicate": (_set("categories", 1, "id", 1), STOP, r"1 of its 2 categories have the same id"),
    "category id float": (_set("categories", 1, "id", 2.0), STOP, r"categories\[1\].id = 2.0"),
    "category name missing": (_set("categories", 1, "name", _DELETE), STOP, r"1 of its 2 categories have no name, "
                                                                            r"e.g. categories\[1\] \(id 2\) has no name"),
    "category name number": (_set("categories", 1, "name", 3), STOP, r"a name that is not a non-empty string"),
    "category name duplicate": (_set("categories", 1, "name", "box"), STOP, r"the same name as an earlier entry"),
    "annotation id missing": (_set("annotations", 2, "id", _DELETE), STOP, r"annotations\[2\] has no id; every "
                                                                           r"annotation needs a unique id"),
    "annotation id duplicate": (_set("annotations", 3, "id", 1), STOP, r"the same id as an earlier entry"),
    "category_id unknown": (_set("annotations", 0, "category_id", 7), STOP,
                            r"1 of its 4 annotations have a category_id that names no category, e.g. annotations\[0\] "
                            r"\(id 1\).category_id = 7; add the category to 'categories'"),
    "category_id missing": (_set("annotations", 0, "category_id", _DELETE), STOP, r"has no category_id"),
    "ignore flag": (_set("annotations", 1, "ignore", 1), STOP, r"an 'ignore' flag, which Detectron2 does not support"),
    "image_id unknown": (_set("annotations", 3, "image_id", 9), DROP, r"1 with an image_id that names no image, "
                                                                      r"e.g. annotations\[3\] \(id 4\).image_id = 9"),
    "image_id string": (_set("annotations", 3, "image_id", "2"), DROP, r"image_id = '2'"),
    "bbox 3 numbers": (_set("annotations", 0, "bbox", [1, 2, 3]), DROP, r"a bbox that is not 4 finite numbers"),
    "bbox empty": (_set("annotations", 0, "bbox", []), DROP, r"bbox = \[\]"),
    "bbox infinite": (_set("annotations", 0, "bbox", [1, 2, float("inf"), 3]), DROP, r"bbox = \[1, 2, inf, 3\]"),
    "bbox strings": (_set("annotations", 0, "bbox", ["1", "2", "3", "4"]), DROP, r"bbox = \['1'"),
    "bbox missing": (_set("annotations", 0, "bbox", _DELETE), DROP, r"has no bbox"),
    "iscrowd string": (_set("annotations", 2, "iscrowd", "0"), DROP, r"an iscrowd that is not 0 or 1"),
    "iscrowd 2": (_set("annotations", 2, "iscrowd", 2), DROP, r"iscrowd = 2"),
    "segmentation number": (_set("annotations", 1, "segmentation", 3), DROP, r"a segmentation that is neither"),
    "segmentation 2-point polygon": (_set("annotations", 1, "segmentation", [[1, 1, 5, 5]]), DROP, r"segmentation"),
    "segmentation RLE of another size": (_set("annotations", 1, "segmentation", {"counts": "abc", "size": [32, 32]}),
                                         DROP, r"RLE mask of the image's size"),
    "keypoints not triples": (_set("annotations", 1, "keypoints", [1, 2]), DROP, r"keypoints that are not finite"),
    "annotation not an object": (lambda d: d["annotations"].append("box"), DROP, r"an entry that is not an object"),
    "area negative": (_set("annotations", 0, "area", -5), FILL, r"set the area of 1 annotations to their box's area, "
                                                                r"as COCO evaluation needs one \(an area that is not "
                                                                r"a finite number >= 0, e.g. annotations\[0\] \(id "
                                                                r"1\).area = -5\)"),
    "area missing": (_set("annotations", 0, "area", _DELETE), FILL, r"\(no area, e.g. annotations\[0\] \(id 1\) has "
                                                                    r"no area\)"),
    "iscrowd missing": (_set("annotations", 2, "iscrowd", _DELETE), FILL, r"set the iscrowd of 1 annotations to 0, as "
                                                                          r"Detectron2 trains on a missing one"),
}


def test_every_rule_has_a_case():
    assert {(r.section, r.field) for r in RULES} <= TARGETED | {("annotations", "")}  # "": not an object


@pytest.mark.parametrize("case", list(CASES))
def test_rule(coco, case, caplog):
    mutate, action, message = CASES[case]
    with caplog.at_level(logging.WARNING, logger="resnext_det"):
        name, result = coco(mutate)
    if action == STOP:
        assert isinstance(result, DatasetError), result
        text = str(result)
        assert "\n" not in text and text.startswith(f"dataset '{name}': ") and "instances.json: " in text
        assert re.search(message, text), text
        return
    assert not isinstance(result, DatasetError), result
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING and name in r.getMessage()
                and "classes and MODEL.ROI_HEADS.NUM_CLASSES" not in r.getMessage()]  # the class-count check's
    assert len(warnings) == 1 and re.search(message, warnings[0]), warnings
    annotations = [a for r in result for a in r["annotations"]]
    assert len(annotations) == (4 - (action == DROP) + (case == "annotation not an object"))
    for a in annotations:  # what is left is valid
        assert len(a["bbox"]) == 4 and all(isinstance(v, (int, float)) for v in a["bbox"])
        assert a["category_id"] in (0, 1) and a.get("iscrowd", 0) in (0, 1)


def test_no_annotation_left_stops(coco):
    name, error = coco(lambda d: [a.update(bbox=[]) for a in d["annotations"]])
    assert isinstance(error, DatasetError)
    assert re.search(r"dropped 4 of its 4 annotations \(4 with a bbox that is not 4 finite numbers .*\): no "
                     r"annotation is left", str(error)), error


def test_a_file_without_annotations_is_a_test_set(coco):
    name, records = coco(lambda d: d.pop("annotations"), train=False)
    assert len(records) == 2 and all(r["annotations"] == [] for r in records)


def test_evaluation_uses_the_cleaned_ground_truth(coco):
    """A test set with dropped annotations (one not an object: pycocotools could not even index the file) and
    a missing area (pycocotools' COCOeval would fail on it) evaluates with both backends; the ground truth is
    what was loaded."""
    from resnext_det.evaluation import FastCOCOEvaluator

    def mutate(data):
        data["annotations"][3]["bbox"] = "wide"
        del data["annotations"][0]["area"]
        data["annotations"].append(["not", "an", "object"])
    name, records = coco(mutate, train=False)
    assert sum(len(r["annotations"]) for r in records) == 3
    for backend in ("pycocotools", "faster-coco-eval"):
        evaluator = FastCOCOEvaluator(name, backend=backend, tasks=("bbox",))
        assert sorted(evaluator._coco_api.anns) == [1, 2, 3]
        assert evaluator._coco_api.anns[1]["area"] == 24 * 20
        evaluator.reset()
        evaluator._predictions = [{"image_id": r["image_id"], "instances": [
            {"image_id": r["image_id"], "category_id": a["category_id"], "bbox": list(map(float, a["bbox"])),
             "score": 0.9}
            for a in r["annotations"]]} for r in records]
        result = evaluator.evaluate()
        assert result["bbox"]["AP"] == pytest.approx(100.0), (backend, result)


# ---- image files -------------------------------------------------------------------------------------


def test_empty_image_file_is_found_before_training(coco):
    name, records = coco(lambda d: None)  # registered once, to know the folder
    folder = os.path.dirname(MetadataCatalog.get(name).json_file)
    open(os.path.join(folder, "001.png"), "wb").close()
    name, error = coco(lambda d: None)
    assert isinstance(error, DatasetError)
    assert str(error) == (f"dataset '{name}': 1 of its 2 images are empty (0 bytes), e.g. {folder}/001.png; "
                          "replace them or remove them from the annotations")


def test_16_bit_grayscale_image_is_refused_before_training(coco):
    name, _ = coco(lambda d: None)
    folder = os.path.dirname(MetadataCatalog.get(name).json_file)
    Image.fromarray((np.arange(64 * 64).reshape(64, 64) * 16).astype(np.uint16)).save(os.path.join(folder, "000.png"))
    name, error = coco(lambda d: None)
    assert isinstance(error, DatasetError)
    assert str(error) == (f"dataset '{name}': 1 of its 2 images have 16- or 32-bit pixels (PIL mode I;16), which "
                          f"Detectron2's read_image would clip to 255, e.g. {folder}/000.png; convert them to 8-bit, "
                          "e.g. (numpy.asarray(image) // 257).astype('uint8') for 16-bit ones")


def test_the_docs_table_is_the_rules_table():
    """docs/reliability.md lists each rule with the actions the code takes."""
    from resnext_det.data.coco_fields import SAME

    from conftest import ROOT

    documented = {}
    for line in open(os.path.join(ROOT, "docs", "reliability.md"), encoding="utf-8"):
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if len(cells) == 5 and cells[0] in ("images", "categories", "annotations") and cells[1].startswith("`"):
            for field in re.findall(r"`(\w+)`", cells[1]):
                documented[(cells[0], field)] = (cells[3].split()[0].rstrip(":"), cells[4].split()[0].rstrip(":"))
    actual = {(r.section, r.field): ("fine" if r.missing is None else r.action if r.missing == SAME else r.missing,
                                     r.action) for r in RULES}
    assert documented == actual
