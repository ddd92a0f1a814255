"""faster-coco-eval gives the same COCO metrics as pycocotools, and Detectron2's evaluator uses it."""
import json

import numpy as np
import pytest
import torch
from detectron2.data import DatasetCatalog, MetadataCatalog
from detectron2.structures import Boxes, Instances

from resnext_det.evaluation import FastCOCOEvaluator, coco_api, default_backend, evaluate_coco

pytest.importorskip("faster_coco_eval")


def noisy_detections(gt: dict, seed=0, per_image=20):
    """Per image: every ground-truth box jittered (sometimes with the wrong class), plus random boxes."""
    rng = np.random.default_rng(seed)
    sizes = {im["id"]: (im["width"], im["height"]) for im in gt["images"]}
    categories = [c["id"] for c in gt["categories"]]
    results = []
    for ann in gt["annotations"]:
        x, y, w, h = ann["bbox"]
        jitter = rng.normal(0, 0.15, 4) * [w, h, w, h]
        wrong = rng.random() < 0.2
        results.append({"image_id": ann["image_id"], "bbox": [x + jitter[0], y + jitter[1],
                        max(1.0, w + jitter[2]), max(1.0, h + jitter[3])],
                        "category_id": int(rng.choice(categories)) if wrong else ann["category_id"],
                        "score": float(rng.random())})
    for image_id, (width, height) in sizes.items():
        for _ in range(per_image):
            x, y = rng.random(2) * [width, height]
            results.append({"image_id": image_id, "bbox": [x, y, rng.random() * width / 2 + 1,
                            rng.random() * height / 2 + 1], "category_id": int(rng.choice(categories)),
                            "score": float(rng.random() * 0.5)})
    return results


@pytest.fixture(scope="module")
def shapes_val_gt(tiny_shapes):
    DatasetCatalog.get(tiny_shapes[1])  # generates the files
    with open(MetadataCatalog.get(tiny_shapes[1]).json_file) as f:
        return json.load(f)


def test_faster_coco_eval_is_the_default_when_installed():
    assert default_backend() == "faster-coco-eval"


@pytest.mark.parametrize("seed", [0, 1])
def test_backends_give_identical_metrics(shapes_val_gt, seed):
    results = noisy_detections(shapes_val_gt, seed)
    stats = {b: evaluate_coco(coco_api(shapes_val_gt, b), results, "bbox", backend=b)
             for b in ("pycocotools", "faster-coco-eval")}
    assert 0.05 < stats["pycocotools"][0] < 0.95  # a meaningful AP, neither empty nor perfect
    # Detectron2 prints AP x 100 with 3 decimals: equal to that precision and beyond.
    np.testing.assert_allclose(stats["faster-coco-eval"], stats["pycocotools"], rtol=0, atol=1e-9)


def test_unknown_backend_is_named():
    with pytest.raises(ValueError, match="backend 'cocoapi' is invalid"):
        evaluate_coco(None, [], backend="cocoapi")


def _instances_from(results, image_id, size):
    mine = [r for r in results if r["image_id"] == image_id]
    inst = Instances(size)
    inst.pred_boxes = Boxes(torch.tensor([[x, y, x + w, y + h] for x, y, w, h in (r["bbox"] for r in mine)],
                                         dtype=torch.float32).reshape(-1, 4))
    inst.scores = torch.tensor([r["score"] for r in mine], dtype=torch.float32)
    inst.pred_classes = torch.tensor([r["category_id"] - 1 for r in mine], dtype=torch.int64)
    return inst


def test_detectron2_evaluator_matches_pycocotools(tiny_shapes, shapes_val_gt, tmp_path, monkeypatch):
    """The whole evaluator path (Detectron2's result conversion, then the C++ backend) equals
    Detectron2's own evaluator with pycocotools."""
    from faster_coco_eval import COCOeval_faster

    calls = []
    original = COCOeval_faster.evaluate
    monkeypatch.setattr(COCOeval_faster, "evaluate", lambda self: calls.append(1) or original(self))
    results = noisy_detections(shapes_val_gt, seed=2)
    name = tiny_shapes[1]
    metrics = {}
    for backend in ("pycocotools", "faster-coco-eval"):
        evaluator = FastCOCOEvaluator(name, output_dir=str(tmp_path / backend), backend=backend)
        evaluator.reset()
        for im in shapes_val_gt["images"]:
            inst = _instances_from(results, im["id"], (im["height"], im["width"]))
            evaluator.process([{"image_id": im["id"]}], [{"instances": inst}])
        metrics[backend] = evaluator.evaluate()["bbox"]
    assert calls == [1]  # the C++ evaluation ran once, for the faster-coco-eval evaluator only
    assert metrics["pycocotools"]["AP"] > 5
    for key, value in metrics["pycocotools"].items():
        assert metrics["faster-coco-eval"][key] == pytest.approx(value, abs=1e-6, nan_ok=True), key


def test_without_faster_coco_eval_pycocotools_is_used(tiny_shapes, shapes_val_gt, tmp_path, monkeypatch):
    """Where faster-coco-eval is not installed, evaluation falls back to pycocotools."""
    import resnext_det.evaluation as evaluation

    monkeypatch.setattr(evaluation, "FastCOCO", None)
    monkeypatch.setattr(evaluation, "COCOeval_faster", None)
    assert evaluation.default_backend() == "pycocotools"
    with pytest.raises(ImportError, match="faster-coco-eval is not installed: `pip install faster-coco-eval`"):
        evaluation.coco_api(shapes_val_gt, "faster-coco-eval")
    evaluator = evaluation.FastCOCOEvaluator(tiny_shapes[1], output_dir=str(tmp_path))
    evaluator.reset()
    results = noisy_detections(shapes_val_gt, seed=3)
    for im in shapes_val_gt["images"]:
        inst = _instances_from(results, im["id"], (im["height"], im["width"]))
        evaluator.process([{"image_id": im["id"]}], [{"instances": inst}])
    expected = evaluate_coco(coco_api(shapes_val_gt, "pycocotools"), results, backend="pycocotools")
    assert evaluator.evaluate()["bbox"]["AP"] == pytest.approx(100 * expected[0])


@pytest.mark.parametrize("backend", ["pycocotools", "faster-coco-eval"])
def test_an_annotation_with_id_0_is_scored_like_any_other(tmp_path, backend):
    """Both backends mark a match by the ground truth's annotation id, 0 meaning none: left as it is, an
    object with id 0 counts as missed and its exact detection as a false positive (AP 44.2 here, not 100).
    Found by the COCO fuzz test (a file whose annotation ids start at 0)."""
    from detectron2.data.datasets import register_coco_instances
    from test_bad_input import write_coco

    path = write_coco(str(tmp_path), [{"boxes": [[8, 8, 24, 20], [30, 30, 10, 10]]}, {"boxes": [[4, 4, 12, 12]]}])
    with open(path) as f:
        gt = json.load(f)
    for ann in gt["annotations"]:
        ann["id"] -= 1  # ids 0, 1, 2
    with open(path, "w") as f:
        json.dump(gt, f)
    perfect = [{"image_id": a["image_id"], "category_id": 1, "bbox": a["bbox"], "score": 1.0}
               for a in gt["annotations"]]
    assert evaluate_coco(coco_api(path, backend), perfect, backend=backend)[0] == pytest.approx(1.0)
    assert evaluate_coco(coco_api(gt, backend), perfect, backend=backend)[0] == pytest.approx(1.0)
    assert gt["annotations"][0]["id"] == 0  # the caller's dict is left as it was

    name = f"ids_from_zero_{backend}"
    register_coco_instances(name, {}, path, str(tmp_path))
    try:
        DatasetCatalog.get(name)  # sets the category id mapping the evaluator reads
        evaluator = FastCOCOEvaluator(name, backend=backend, tasks=("bbox",))
        evaluator._predictions = [{"image_id": image_id, "instances": [
            dict(r, category_id=0) for r in perfect if r["image_id"] == image_id]} for image_id in (1, 2)]
        assert evaluator.evaluate()["bbox"]["AP"] == pytest.approx(100.0)
    finally:
        DatasetCatalog.remove(name)
        MetadataCatalog.remove(name)
