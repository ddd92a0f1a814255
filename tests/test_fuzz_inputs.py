"""Generated bad input (hypothesis): corruptions of a small COCO file, and config override lists and YAML
files. The property: the input loads correctly, or it raises one of the plugin's error types with a
one-line message; never another exception, never silently wrong data.

A COCO file goes through the real path: register_coco_instances, the plugin's checks, Detectron2's
load_coco_json, and for test sets COCO evaluation against the ground truth. "Loads correctly" means
every loaded record and annotation is valid, and every annotation of the file is either loaded or
counted in a warning.

The fast suite runs a few hundred examples of each; `make test-e2e` runs thousands more. Both are
derandomized, so that CI runs the examples that were run before landing; FUZZ_RANDOM=1 draws new ones
(hypothesis prints a failing example; what it finds becomes a plain test, as in test_evaluation.py).
"""
import copy
import itertools
import json
import logging
import math
import os
import re

import pytest
import yaml
from detectron2.data import DatasetCatalog, MetadataCatalog
from detectron2.data.datasets import register_coco_instances
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from resnext_det import ConfigError, load_config
from resnext_det.config import _all_keys
from resnext_det.config_checks import decode
from resnext_det.data import DatasetError, check_datasets
from resnext_det.evaluation import FastCOCOEvaluator
from test_bad_input import write_coco

_COMMON = dict(deadline=None, database=None, suppress_health_check=list(HealthCheck))
FAST = settings(max_examples=int(os.environ.get("FUZZ_EXAMPLES", 250)), derandomize=True, **_COMMON)
MORE = settings(max_examples=int(os.environ.get("FUZZ_EXAMPLES_E2E", 3000)),
               derandomize=os.environ.get("FUZZ_RANDOM") != "1", **_COMMON)

# ---- values a user's file may hold ----------------------------------------------------------------

scalars = st.one_of(
    st.none(), st.booleans(), st.integers(-3, 70), st.integers(), st.sampled_from([0, 1, 2, 64]),
    st.floats(allow_nan=True, allow_infinity=True), st.sampled_from([0.5, 64.0, -1.0]),
    st.text(max_size=6), st.sampled_from(["000.png", "001.png", "", "64", "box"]))
json_values = st.recursive(scalars, lambda inner: st.one_of(
    st.lists(inner, max_size=6), st.dictionaries(st.sampled_from(["id", "counts", "size", "name", "x"]) | st.text(
        max_size=3), inner, max_size=3)), max_leaves=10)
near_boxes = st.lists(st.one_of(st.integers(-10, 80), st.floats(-10, 80), st.floats()), min_size=0, max_size=6)
FIELDS = {
    "images": ["id", "file_name", "width", "height"],
    "annotations": ["id", "image_id", "category_id", "bbox", "iscrowd", "area", "segmentation", "keypoints", "ignore"],
    "categories": ["id", "name"],
}


@st.composite
def mutations(draw):
    """One corruption of a COCO dict: (description, function applied to the dict)."""
    kind = draw(st.sampled_from(["set"] * 8 + ["delete_field"] * 2 + ["delete_entry", "duplicate_entry", "append_entry"]
                                + ["replace_section", "replace_all"] * (draw(st.integers(0, 9)) == 0)))
    section = draw(st.sampled_from(["annotations"] * 4 + ["images", "categories"]))
    index = draw(st.integers(0, 4))
    field = draw(st.sampled_from(FIELDS[section]) | st.text(max_size=3))
    value = draw(near_boxes if field in ("bbox", "segmentation") and draw(st.booleans()) else json_values)

    def apply(data):
        if kind == "replace_all":
            return value
        if not isinstance(data, dict):
            return data
        entries = data.get(section)
        if kind == "replace_section":
            data[section] = value
            return data
        if not isinstance(entries, list) or not entries:
            return data
        i = index % len(entries)
        if kind == "append_entry":
            entries.append(value)
        elif kind == "duplicate_entry":
            entries.append(copy.deepcopy(entries[i]))
        elif kind == "delete_entry":
            del entries[i]
        elif isinstance(entries[i], dict):
            if kind == "delete_field":
                entries[i].pop(field, None)
            else:
                entries[i][field] = value
        return data

    return f"{kind} {section}[{index}].{field} = {value!r}", apply


# ---- the COCO file property --------------------------------------------------------------------------


@pytest.fixture(scope="module")
def base_coco(tmp_path_factory):
    """Three 64x64 PNGs and a valid COCO dict of them (5 annotations, 2 categories, polygons)."""
    root = str(tmp_path_factory.mktemp("fuzz_coco"))
    path = write_coco(root, [{"boxes": [[8, 8, 24, 20], [30, 30, 10, 10]]}, {"boxes": [[30, 20, 20, 30]]},
                             {"boxes": [[4, 4, 12, 12], [40, 40, 20, 20]]}])
    data = json.load(open(path))
    data["categories"].append({"id": 2, "name": "other"})
    for ann in data["annotations"]:
        x, y, w, h = ann["bbox"]
        ann["segmentation"] = [[x, y, x + w, y, x, y + h]]
    return root, path, data


_counter = itertools.count()
_DROPPED = [re.compile(r"dropped (\d+) of its \d+ annotations"), re.compile(r"dropped (\d+) of \d+ boxes")]


class _Warnings(logging.Handler):
    def __init__(self):
        super().__init__(logging.WARNING)
        self.messages = []

    def emit(self, record):
        self.messages.append(record.getMessage())


def _one_line(error):
    text = str(error)
    assert text and "\n" not in text and "Traceback" not in text, repr(text)


def _valid_record(record, classes):
    assert os.path.isfile(record["file_name"])
    for key in ("height", "width"):
        assert isinstance(record[key], (int, float)) and record[key] > 0 and float(record[key]).is_integer()
    for a in record["annotations"]:
        x, y, w, h = a["bbox"]
        assert all(isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v) for v in a["bbox"])
        assert w > 0 and h > 0 and x >= 0 and y >= 0
        assert x + w <= record["width"] + 1e-6 and y + h <= record["height"] + 1e-6
        assert isinstance(a["category_id"], int) and 0 <= a["category_id"] < classes
        assert a.get("iscrowd", 0) in (0, 1)
        segm = a.get("segmentation")
        if isinstance(segm, list):
            assert all(len(p) >= 6 and len(p) % 2 == 0 and all(map(math.isfinite, p)) for p in segm)
        elif segm is not None:
            assert segm["size"] == [record["height"], record["width"]]


def check_coco_property(base_coco, corruptions, as_test_set, raw_cut=None):
    root, path, base = base_coco
    data = copy.deepcopy(base)
    for _, apply in corruptions:
        data = apply(data)
    text = json.dumps(data)
    if raw_cut is not None:  # a file cut short (a copy interrupted)
        text = text[: raw_cut % (len(text) + 1)]
    with open(path, "w") as f:
        f.write(text)
    name = f"fuzz_{next(_counter)}"
    register_coco_instances(name, {}, path, root)
    cfg = load_config(None, ["DATASETS.TRAIN", "()" if as_test_set else f"('{name}',)",
                             "DATASETS.TEST", f"('{name}',)" if as_test_set else "()"])
    warnings = _Warnings()
    logging.getLogger("resnext_det").addHandler(warnings)
    try:
        check_datasets(cfg)
        records = DatasetCatalog.get(name)
    except DatasetError as e:
        _one_line(e)
        return "stopped"
    finally:
        logging.getLogger("resnext_det").removeHandler(warnings)
        DatasetCatalog.remove(name)
    try:
        classes = len(MetadataCatalog.get(name).thing_classes)
        assert records
        for record in records:
            _valid_record(record, classes)
        loaded = sum(len(r["annotations"]) for r in records)
        dropped = sum(int(m.group(1)) for text in warnings.messages for p in _DROPPED for m in p.finditer(text))
        assert loaded + dropped == len(data.get("annotations", [])), (loaded, dropped, warnings.messages)
        if as_test_set and loaded:  # COCO evaluation of the ground truth itself: AP 100
            evaluator = FastCOCOEvaluator(name, backend="pycocotools", tasks=("bbox",))
            evaluator._predictions = [{"image_id": r["image_id"], "instances": [
                {"image_id": r["image_id"], "category_id": a["category_id"], "bbox": list(map(float, a["bbox"])),
                 "score": 1.0} for a in r["annotations"] if not a.get("iscrowd", 0)]} for r in records]
            if any(p["instances"] for p in evaluator._predictions):
                assert evaluator.evaluate()["bbox"]["AP"] == pytest.approx(100.0)
    finally:
        MetadataCatalog.remove(name)
    return "cleaned" if dropped or warnings.messages else "loaded"


coco_inputs = dict(corruptions=st.lists(mutations(), min_size=1, max_size=4), as_test_set=st.booleans(),
                   raw_cut=st.sampled_from([False] * 9 + [True]).flatmap(
                       lambda cut: st.integers(0, 10 ** 6) if cut else st.none()))


@FAST
@given(**coco_inputs)
def test_corrupt_coco_files_load_correctly_or_stop_with_one_line(base_coco, corruptions, as_test_set, raw_cut):
    check_coco_property(base_coco, corruptions, as_test_set, raw_cut)


@pytest.mark.e2e
@MORE
@given(**coco_inputs)
def test_corrupt_coco_files_more_examples(base_coco, corruptions, as_test_set, raw_cut):
    check_coco_property(base_coco, corruptions, as_test_set, raw_cut)


def test_the_generator_reaches_every_outcome(base_coco):
    """The generated corruptions are not all caught by one rule: some load, some are cleaned (annotations
    dropped or fields filled, with a warning), some stop."""
    outcomes = set()

    @settings(max_examples=60, derandomize=True, **_COMMON)
    @given(**coco_inputs)
    def run(corruptions, as_test_set, raw_cut):
        outcomes.add(check_coco_property(base_coco, corruptions, as_test_set, raw_cut))

    run()
    assert outcomes == {"loaded", "cleaned", "stopped"}


# ---- config overrides and files ------------------------------------------------------------------------


@pytest.fixture(scope="module")
def config_keys():
    cfg = load_config()
    leaves = sorted(_all_keys(cfg))
    return leaves, sorted({k.rsplit(".", 1)[0] for k in leaves if "." in k})


def _typo(key, draw):
    i = draw(st.integers(0, max(0, len(key) - 1)))
    return draw(st.sampled_from([key[:i] + key[i + 1:], key + ".X", key.lower(), key[:i] + "." + key[i:]]))


@st.composite
def override_lists(draw, keys):
    leaves, nodes = keys
    opts = []
    for _ in range(draw(st.integers(0, 4))):
        key = draw(st.sampled_from(leaves))
        kind = draw(st.sampled_from(["leaf", "leaf", "leaf", "node", "typo", "text", "not a string"]))
        key = {"node": lambda: draw(st.sampled_from(nodes)), "typo": lambda: _typo(key, draw),
               "text": lambda: draw(st.text(max_size=12)), "not a string": lambda: draw(scalars)}.get(kind, lambda: key)()
        value = draw(st.one_of(json_values.map(repr), json_values.map(str), st.text(max_size=12),
                               st.sampled_from(["nan", "inf", "1e400", "(1,", "[1, 'a']", "None", "True", "0.5", "3",
                                                "('a',)", "((1,2),)", "[[32], [64.5]]", "(" * 300 + ")" * 300])))
        opts += [key, value]
    if draw(st.integers(0, 5)) == 0:
        opts = opts[:-1]  # an odd list: the last key has no value
    return opts


def check_override_property(opts):
    try:
        cfg = load_config(None, opts)
    except ConfigError as e:
        _one_line(e)
        return
    defaults = load_config()
    for key, text in dict(zip(opts[0::2], opts[1::2])).items():  # the last value of a key wins
        node, leaf = cfg, key
        for part in key.split(".")[:-1]:
            node = node[part]
        leaf = key.split(".")[-1]
        expected = decode(text)
        got = node[leaf]
        if isinstance(got, (list, tuple)):
            assert list(got) == list(expected)
        else:
            assert got == expected or (got != got and expected != expected)
        default = defaults
        for part in key.split("."):
            default = default[part]
        assert default is None or type(got) is type(default) or isinstance(got, (list, tuple))


@FAST
@given(data=st.data())
def test_override_lists_load_correctly_or_stop_with_one_line(config_keys, data):
    check_override_property(data.draw(override_lists(config_keys)))


@pytest.mark.e2e
@MORE
@given(data=st.data())
def test_override_lists_more_examples(config_keys, data):
    check_override_property(data.draw(override_lists(config_keys)))


@st.composite
def config_files(draw, keys):
    """YAML text of a config: a few real or mangled keys with values, maybe a _BASE_; or broken text."""
    leaves, nodes = keys
    tree = {}
    for _ in range(draw(st.integers(0, 4))):
        key = draw(st.sampled_from(leaves) | st.sampled_from(nodes))
        if draw(st.integers(0, 3)) == 0:
            key = _typo(key, draw)
        value = draw(json_values | st.sampled_from(["(800,)", "0.02", "resnet50", "[[32], [64]]"]))
        node = tree
        parts = key.split(".")
        for part in parts[:-1]:
            node = node.setdefault(part, {}) if isinstance(node.get(part, {}), dict) else {}
        node[parts[-1]] = value
    base = draw(st.sampled_from([None, None, "self", "other", "missing", "loop"]) | json_values)
    if base is not None:
        tree["_BASE_"] = base
    form = draw(st.sampled_from(["yaml", "yaml", "yaml", "cut", "text", "empty"]))
    text = yaml.safe_dump(tree) if form in ("yaml", "cut") else draw(st.text(max_size=40)) if form == "text" else ""
    if form == "cut":
        text = text[: draw(st.integers(0, len(text)))]
    return text


def check_config_file_property(folder, text):
    path = os.path.join(folder, "config.yaml")
    with open(path, "w", encoding="utf-8") as f:
        f.write(text)
    with open(os.path.join(folder, "other"), "w") as f:
        f.write("SOLVER:\n  BASE_LR: 0.01\n")
    with open(os.path.join(folder, "loop"), "w") as f:
        f.write("_BASE_: config.yaml\n")
    with open(os.path.join(folder, "self"), "w") as f:
        f.write("_BASE_: self\n")
    try:
        load_config(path)
    except ConfigError as e:
        _one_line(e)


@FAST
@given(data=st.data())
def test_config_files_load_or_stop_with_one_line(config_keys, tmp_path_factory, data):
    folder = str(tmp_path_factory.mktemp("fuzz_cfg", numbered=True))
    check_config_file_property(folder, data.draw(config_files(config_keys)))


@pytest.mark.e2e
@MORE
@given(data=st.data())
def test_config_files_more_examples(config_keys, tmp_path_factory, data):
    folder = str(tmp_path_factory.mktemp("fuzz_cfg", numbered=True))
    check_config_file_property(folder, data.draw(config_files(config_keys)))
