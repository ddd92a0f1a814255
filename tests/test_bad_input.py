"""Bad input: a one-line error naming the problem, or a warning with counts where the data is usable.

Datasets are tiny COCO files written here (64x64 PNGs); training runs 2 iterations on CPU.
"""
import json
import logging
import math
import os
import re

import pytest
import torch
from detectron2.data import DatasetCatalog, MetadataCatalog
from detectron2.data.datasets import register_coco_instances
from PIL import Image, ImageDraw

from conftest import ROOT, load_tool, run_python
from resnext_det import load_config
from resnext_det.checkpoint import CheckpointError
from resnext_det.checkpoint.model_weights import _model_shapes, check_model_weights
from resnext_det.data import DatasetError, check_datasets
from resnext_det.data.validate import build_train_loader

DEMO_CONFIG = os.path.join(ROOT, "configs", "demo", "shapes_faster_rcnn_X50_FPN.yaml")
SMALL = ["INPUT.MIN_SIZE_TRAIN", "(64,)", "INPUT.MAX_SIZE_TRAIN", "64", "INPUT.MIN_SIZE_TEST", "64",
         "INPUT.MAX_SIZE_TEST", "64", "MODEL.ROI_HEADS.NUM_CLASSES", "1", "DATALOADER.NUM_WORKERS", "0",
         "SOLVER.IMS_PER_BATCH", "2", "SOLVER.MAX_ITER", "2", "TEST.EVAL_PERIOD", "0", "DATASETS.TEST", "()"]
FAST = ["MODEL.RESNEXT.ARCH", "resnet50"]  # grouped 3x3s are slow on CPU: ~10x ResNet-50's step time
GOOD = [{"boxes": [[8, 8, 24, 20]]}, {"boxes": [[30, 20, 20, 30]]}]


def write_coco(root, images):
    """PNGs and a COCO json under ``root``. Each image: {"boxes": [[x, y, w, h], ...], "mode": "RGB",
    "size": (w, h)}; the boxes are drawn as filled rectangles (the parts inside the image)."""
    os.makedirs(root, exist_ok=True)
    coco = {"images": [], "annotations": [], "categories": [{"id": 1, "name": "box"}]}
    for i, spec in enumerate(images):
        w, h = spec.get("size", (64, 64))
        image = Image.new("RGB", (w, h), (40, 90, 160))
        draw = ImageDraw.Draw(image)
        for x, y, bw, bh in spec.get("boxes", []):
            if bw > 0 and bh > 0:
                draw.rectangle([x, y, x + bw - 1, y + bh - 1], fill=(230, 200, 30))
        file_name = f"{i:03d}.png"
        image.convert(spec.get("mode", "RGB")).save(os.path.join(root, file_name))
        coco["images"].append({"id": i + 1, "file_name": file_name, "width": w, "height": h})
        for box in spec.get("boxes", []):
            coco["annotations"].append({"id": len(coco["annotations"]) + 1, "image_id": i + 1, "category_id": 1,
                                        "bbox": list(box), "area": float(box[2] * box[3]), "iscrowd": 0})
    path = os.path.join(root, "instances.json")
    with open(path, "w") as f:
        json.dump(coco, f)
    return path


@pytest.fixture
def dataset(tmp_path, request):
    """dataset(images) -> the name of a registered COCO dataset of those images; unregistered after."""
    names = []

    def make(images, tag="d"):
        name = re.sub(r"\W", "_", f"bad_{request.node.name}_{tag}")
        root = str(tmp_path / name)
        register_coco_instances(name, {}, write_coco(root, images), root)
        names.append(name)
        return name

    yield make
    for name in names:
        DatasetCatalog.remove(name)
        MetadataCatalog.remove(name)


def cfg_for(train=(), test=(), opts=()):
    return load_config(DEMO_CONFIG, SMALL + ["DATASETS.TRAIN", str(tuple(train)), "DATASETS.TEST", str(tuple(test))]
                       + list(opts))


def load_checked(name, train=True, opts=()):
    check_datasets(cfg_for(train=[name] if train else [], test=[] if train else [name], opts=opts))
    return DatasetCatalog.get(name)


def one_line(message):
    assert "\n" not in message and "Traceback" not in message, message
    return message


# ---------------------------------------------------------------------------------------------
# Annotation files
# ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize("text, message", [
    ('{"images": [], "annotations": [\n  {"id": 1,,}]}', r"instances.json is not valid JSON: Expecting property name "
                                                        r"enclosed in double quotes at line 2, column 12"),
    ("[1, 2]", r"instances.json holds a JSON list, not a COCO object"),
    ('{"annotations": [], "categories": [{"id": 1, "name": "box"}]}', r"instances.json has no 'images' list"),
    ('{"images": [{"id": 1, "file_name": "000.png", "width": 64, "height": 64}], '
     '"categories": [{"id": 1, "name": "box"}]}',
     r"none of its 1 images has a valid non-crowd box to train on: .*instances.json has no annotations; "
     r"DATALOADER.FILTER_EMPTY_ANNOTATIONS would drop them all$"),
    ('{"images": [{"id": 1, "file_name": "000.png", "width": 64, "height": 64}], "annotations": []}',
     r"instances.json has no 'categories' list"),
])
def test_annotation_file_problems_are_named(dataset, text, message):
    name = dataset(GOOD)
    with open(MetadataCatalog.get(name).json_file, "w") as f:
        f.write(text)
    with pytest.raises(DatasetError, match=f"^dataset '{name}'.*{message}") as err:
        load_checked(name)
    one_line(str(err.value))


def test_missing_annotation_file_fails_before_the_model(dataset):
    from resnext_det.engine import check_inputs

    name = dataset(GOOD)
    os.remove(MetadataCatalog.get(name).json_file)
    with pytest.raises(FileNotFoundError, match=f"Dataset '{name}' is not available: its annotation file .*"
                                                "instances.json does not exist"):
        check_inputs(cfg_for(train=[name]))


# ---------------------------------------------------------------------------------------------
# Boxes and empty images
# ---------------------------------------------------------------------------------------------


def test_bad_boxes_are_dropped_or_clipped_with_one_warning(dataset, caplog):
    name = dataset([{"boxes": [[8, 8, 24, 20], [0, 0, 0, 10], [5, 5, 10, -3]]},  # zero and negative size
                    {"boxes": [[-30, -30, 20, 20], [64, 10, 5, 5], [50, 40, 30, 40], [-4, 2, 10, 10]]}])
    with caplog.at_level(logging.WARNING, logger="resnext_det"):
        records = load_checked(name)
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING and name in r.getMessage()]
    assert warnings == [f"dataset '{name}': dropped 4 of 7 boxes (2 with zero or negative width or height, "
                        "2 entirely outside their image) and clipped 2 partly outside boxes to the image"]
    assert [a["bbox"] for a in records[0]["annotations"]] == [[8, 8, 24, 20]]
    assert [a["bbox"] for a in records[1]["annotations"]] == [[50.0, 40.0, 14.0, 24.0], [0.0, 2.0, 6.0, 10.0]]


@pytest.mark.parametrize("filter_empty, then", [(True, "DATALOADER.FILTER_EMPTY_ANNOTATIONS would drop them all"),
                                                (False, "training would only see background")])
def test_training_set_without_annotations_is_an_error(dataset, filter_empty, then):
    name = dataset([{"boxes": []}, {"boxes": [[70, 70, 5, 5]]}])  # the only box is outside its image
    opts = ["DATALOADER.FILTER_EMPTY_ANNOTATIONS", str(filter_empty)]
    with pytest.raises(DatasetError, match=f"^dataset '{name}': none of its 2 images has a valid non-crowd box to "
                                           f"train on; {then}$") as err:
        load_checked(name, opts=opts)
    one_line(str(err.value))
    assert len(load_checked(name, train=False)) == 2  # a test set may have no annotations
    if not filter_empty:  # background-only images next to an annotated training set: kept
        other = dataset(GOOD, tag="annotated")
        check_datasets(cfg_for(train=[other, name], opts=opts))
        assert len(DatasetCatalog.get(name)) == 2


# ---------------------------------------------------------------------------------------------
# Image files
# ---------------------------------------------------------------------------------------------


def test_missing_images_are_counted_and_named(dataset):
    name = dataset(GOOD + GOOD)
    root = MetadataCatalog.get(name).image_root
    os.remove(os.path.join(root, "001.png"))
    os.remove(os.path.join(root, "003.png"))
    with pytest.raises(DatasetError, match=f"^dataset '{name}': 2 of its 4 images do not exist, "
                                           f"e.g. {re.escape(root)}/001.png; is the image folder"):
        load_checked(name)


def _first_batch(name, opts=()):
    cfg = cfg_for(train=[name], opts=opts)
    check_datasets(cfg)
    return next(iter(build_train_loader(cfg)))


def test_image_that_pil_cannot_open_is_found_before_training(dataset):
    name = dataset(GOOD)
    path = os.path.join(MetadataCatalog.get(name).image_root, "001.png")
    with open(path, "wb") as f:
        f.write(os.urandom(300))
    with pytest.raises(DatasetError, match=f"^dataset '{name}': 1 of its 2 images are not in an image format PIL can "
                                           f"read, e.g. {re.escape(path)}; replace them or remove them") as err:
        load_checked(name)
    one_line(str(err.value))


def _truncate(path):
    """Keep the first half of an image file: its header still reads, its pixels do not."""
    with open(path, "rb") as f:
        data = f.read()
    with open(path, "wb") as f:
        f.write(data[: len(data) // 2])


def test_truncated_image_is_named_with_its_dataset_when_read(dataset):
    name = dataset(GOOD)
    path = os.path.join(MetadataCatalog.get(name).image_root, "001.png")
    _truncate(path)
    with pytest.raises(DatasetError, match=f"^image {re.escape(path)} of dataset '{name}' could not be read "
                                           "\\(.*(image file is truncated|broken data stream|Truncated).*\\); "
                                           "replace it or remove it") as err:
        _first_batch(name)
    one_line(str(err.value))


def test_worker_errors_stay_one_line(dataset):
    """A DataLoader worker's error comes back with its traceback as message; str() keeps one line.
    (Re-raised here as the DataLoader does; the end-to-end test below runs a real worker.)"""
    import sys

    from torch._utils import ExceptionWrapper

    name = dataset(GOOD)
    _truncate(os.path.join(MetadataCatalog.get(name).image_root, "000.png"))
    with pytest.raises(DatasetError) as err:
        try:
            _first_batch(name)
        except DatasetError:
            ExceptionWrapper(sys.exc_info(), where="in DataLoader worker process 0").reraise()
    assert "Original Traceback" in err.value.args[0]
    assert one_line(str(err.value)).startswith("image ") and "000.png of dataset" in str(err.value)


def test_image_size_differing_from_the_annotation_is_named(dataset):
    name = dataset(GOOD)
    Image.new("RGB", (48, 64)).save(os.path.join(MetadataCatalog.get(name).image_root, "000.png"))
    with pytest.raises(DatasetError, match=f"^dataset '{name}': Mismatched image shape for image .*000.png, "
                                           r"got \(48, 64\), expect \(64, 64\)"):
        _first_batch(name)


def test_grayscale_palette_and_rgba_images_give_three_channels(dataset):
    name = dataset([{"mode": "L", "boxes": [[8, 8, 24, 20]]}, {"mode": "RGBA", "boxes": [[30, 20, 20, 30]]},
                    {"mode": "P", "boxes": [[5, 30, 20, 20]]}])
    batch = _first_batch(name, ["SOLVER.IMS_PER_BATCH", "3"])
    assert sorted(os.path.basename(b["file_name"]) for b in batch) == ["000.png", "001.png", "002.png"]
    for b in batch:
        assert b["image"].shape == (3, 64, 64) and len(b["instances"]) == 1


# ---------------------------------------------------------------------------------------------
# MODEL.WEIGHTS
# ---------------------------------------------------------------------------------------------


def _zeros_like_model(cfg, keep=lambda k: True):
    """The model's tensor names and shapes, as zeros broadcast from one element (tiny files)."""
    return {k: torch.zeros(()).expand(s) for k, s in _model_shapes(cfg).items() if keep(k)}


@pytest.fixture(scope="module")
def weights(tmp_path_factory):
    """Weights files: good, other architectures, corrupt, ImageNet layout, another class count."""
    folder = tmp_path_factory.mktemp("weights")
    x50 = cfg_for()
    files = {
        "x50": {"model": _zeros_like_model(x50)},
        "r50": {"model": _zeros_like_model(cfg_for(opts=["MODEL.RESNEXT.ARCH", "resnet50"]))},
        "r50_backbone": {"model": _zeros_like_model(cfg_for(opts=["MODEL.RESNEXT.ARCH", "resnet50"]),
                                                    lambda k: k.startswith("backbone.bottom_up."))},
        "x50_6_classes": {"model": _zeros_like_model(cfg_for(opts=["MODEL.ROI_HEADS.NUM_CLASSES", "6"]))},
        "imagenet": {"conv1.weight": torch.zeros(64, 3, 7, 7), "fc.weight": torch.zeros(1000, 2048)},
    }
    paths = {}
    for key, obj in files.items():
        paths[key] = str(folder / f"{key}.pth")
        torch.save(obj, paths[key])
    paths["random"] = str(folder / "random.pth")
    with open(paths["random"], "wb") as f:
        f.write(os.urandom(2000).replace(b"\x80", b"\x00"))
    paths["truncated"] = str(folder / "truncated.pth")
    with open(paths["x50"], "rb") as src, open(paths["truncated"], "wb") as dst:
        dst.write(src.read()[:700])
    paths["safetensors"] = str(folder / "x50.safetensors")
    with open(paths["safetensors"], "wb") as f:
        f.write(b"{}")
    return paths


@pytest.mark.parametrize("key, opts, message", [
    ("random", [], r"random.pth' is corrupt or truncated: not a file torch.save writes; copy or download it again"),
    ("truncated", [], r"truncated.pth' is corrupt or truncated"),
    ("safetensors", [], r"x50.safetensors': Detectron2 reads .pth and .pkl files, not .safetensors; convert it"),
    ("imagenet", [], r"has none of the model's tensor names \(2 tensors, e.g. conv1.weight\); ImageNet weights "
                     r"must be converted first"),
    ("r50", [], r"does not fit the model: 176 backbone tensors have another shape, e.g. "
                r"backbone.bottom_up.res2.0.conv1.weight: \(64, 64, 1, 1\) in the file, \(128, 64, 1, 1\) in the "
                r"model; are the weights for MODEL.RESNEXT.ARCH='resnext50_32x4d'\?"),
    ("r50_backbone", ["MODEL.RESNEXT.ARCH", "resnet101"],
     r"does not fit the model: 255 backbone tensors are missing, e.g. backbone.bottom_up.res4.6.conv1.weight"),
])
def test_weights_that_do_not_fit_are_an_error(weights, key, opts, message):
    with pytest.raises(CheckpointError, match=message) as err:
        check_model_weights(cfg_for(opts=opts), weights[key])
    assert one_line(str(err.value)).startswith(f"MODEL.WEIGHTS={weights[key]!r}")


def test_fitting_weights_pass_including_another_class_count(weights):
    check_model_weights(cfg_for(), weights["x50"])
    check_model_weights(cfg_for(), weights["x50_6_classes"])  # fine-tuning: Detectron2 skips the predictor
    check_model_weights(cfg_for(opts=["MODEL.RESNEXT.ARCH", "resnet50"]), weights["r50_backbone"])


# ---------------------------------------------------------------------------------------------
# tools/train_net.py, in this process
# ---------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def train_net():
    return load_tool("train_net")


def run_cli(train_net, tmp_path, opts):
    return train_net.cli(["--config-file", DEMO_CONFIG] + SMALL + list(opts) + ["OUTPUT_DIR", str(tmp_path / "out")])


@pytest.mark.parametrize("filter_empty", [True, False])
def test_train_net_trains_on_gray_rgba_empty_images_and_bad_boxes(train_net, dataset, tmp_path, filter_empty):
    name = dataset([{"mode": "L", "boxes": [[8, 8, 24, 20], [70, 0, 5, 5]]},
                    {"mode": "RGBA", "boxes": [[30, 20, 20, 30], [50, 50, 30, 30]]},
                    {"boxes": []}, {"mode": "LA", "boxes": [[4, 4, 0, 9]]}])
    run_cli(train_net, tmp_path, FAST + ["DATASETS.TRAIN", f"('{name}',)",
                                         "DATALOADER.FILTER_EMPTY_ANNOTATIONS", str(filter_empty)])
    records = [json.loads(line) for line in open(tmp_path / "out" / "metrics.json")]
    losses = [r["total_loss"] for r in records if "total_loss" in r]
    assert losses and all(map(math.isfinite, losses))


def test_train_net_stops_on_nan_loss_naming_iteration_and_losses(train_net, dataset, tmp_path, monkeypatch):
    from detectron2.modeling.proposal_generator.rpn import RPN

    losses = RPN.losses

    def nan_objectness(self, *args, **kwargs):
        out = losses(self, *args, **kwargs)
        out["loss_rpn_cls"] = out["loss_rpn_cls"] * float("nan")
        return out

    monkeypatch.setattr(RPN, "losses", nan_objectness)
    name = dataset(GOOD)
    with pytest.raises(SystemExit) as exit_:
        run_cli(train_net, tmp_path, FAST + ["DATASETS.TRAIN", f"('{name}',)", "SOLVER.MAX_ITER", "3"])
    assert exit_.value.code == ("error: loss became NaN or infinite at iteration 0 (loss_rpn_cls=nan); lower "
                                "SOLVER.BASE_LR (now 0.001), and check the dataset's boxes")


@pytest.mark.parametrize("case, opts, message", [
    ("combination", ["MODEL.RESNEXT.ARCH", "resnest50", "MODEL.RESNEXT.ATTENTION", "se"],
     "MODEL.RESNEXT.ATTENTION='se' is invalid: split attention"),
    ("other-arch weights", ["MODEL.WEIGHTS", "{r50}"], "does not fit the model: 176 backbone tensors"),
    ("test set image missing", ["DATASETS.TEST", "('{name}',)", "REMOVE"], "1 of its 2 images do not exist"),
    ("corrupt image", ["CORRUPT"], "dataset '{name}': 1 of its 2 images are not in an image format PIL can read"),
])
def test_train_net_bad_input_is_one_line(train_net, dataset, weights, tmp_path, case, opts, message):
    name = dataset(GOOD)
    image = os.path.join(MetadataCatalog.get(name).image_root, "001.png")
    opts = [o.format(name=name, r50=weights["r50"]) for o in opts]
    if "REMOVE" in opts:
        opts.remove("REMOVE")
        os.remove(image)
    if "CORRUPT" in opts:
        opts.remove("CORRUPT")
        with open(image, "wb") as f:
            f.write(b"\x89PNG broken")
    with pytest.raises(SystemExit) as exit_:
        run_cli(train_net, tmp_path, ["DATASETS.TRAIN", f"('{name}',)"] + opts)
    assert exit_.value.code.startswith("error: ") and message.format(name=name) in exit_.value.code, exit_.value.code
    one_line(exit_.value.code)


# ---------------------------------------------------------------------------------------------
# tools/train_net.py end to end: the user's script registers a dataset and runs the tool
# ---------------------------------------------------------------------------------------------

RUNNER = """import runpy, sys
from detectron2.data.datasets import register_coco_instances
register_coco_instances(sys.argv[1], {}, sys.argv[2], sys.argv[3])
sys.argv = ["tools/train_net.py"] + sys.argv[4:]
runpy.run_path("tools/train_net.py", run_name="__main__")
"""


@pytest.mark.parametrize("case, opts, message", [
    ("nan", FAST + ["SOLVER.BASE_LR", "1e30", "SOLVER.MAX_ITER", "4"], "at iteration 1 ("),
    ("truncated image", ["DATALOADER.NUM_WORKERS", "1"], "001.png of dataset 'user_set' could not be read"),
    ("corrupt weights", ["MODEL.WEIGHTS", "{random}"], "random.pth' is corrupt or truncated"),
])
def test_train_net_end_to_end_errors_have_no_traceback(tmp_path, weights, case, opts, message):
    root = str(tmp_path / "data")
    json_file = write_coco(root, GOOD * 2)
    if case == "truncated image":
        _truncate(os.path.join(root, "001.png"))
    runner = tmp_path / "run.py"
    runner.write_text(RUNNER)
    opts = [o.format(random=weights["random"]) for o in opts]
    result = run_python([str(runner), "user_set", json_file, root, "--config-file", DEMO_CONFIG] + SMALL
                        + ["DATASETS.TRAIN", "('user_set',)", "OUTPUT_DIR", str(tmp_path / "out")] + opts)
    assert result.returncode != 0
    last = result.stderr.strip().splitlines()[-1]
    assert last.startswith("error: ") and message in last, result.stderr[-3000:]
    assert "Traceback" not in result.stderr
