"""COCO evaluation through the C++ ``faster-coco-eval`` when it is installed, else pycocotools.

Both compute the same COCO metrics (tests check the AP is identical on the embedded dataset);
faster-coco-eval matches detections to ground truth and accumulates in C++.
"""
import contextlib
import io
import logging
from typing import List, Sequence

import numpy as np
from detectron2.evaluation import COCOEvaluator, coco_evaluation

from .data.validate import cleaned_ground_truth

try:
    from faster_coco_eval import COCO as FastCOCO, COCOeval_faster
except ImportError:  # an optional speed-up: evaluation falls back to pycocotools
    FastCOCO = COCOeval_faster = None

__all__ = ["BACKENDS", "default_backend", "FastCOCOEvaluator", "coco_api", "evaluate_coco"]

BACKENDS = ("faster-coco-eval", "pycocotools")
logger = logging.getLogger(__name__)


def default_backend() -> str:
    return "faster-coco-eval" if FastCOCO is not None else "pycocotools"


def _check_backend(backend: str) -> str:
    if backend not in BACKENDS:
        raise ValueError(f"COCO evaluation backend {backend!r} is invalid: valid: {BACKENDS}")
    if backend == "faster-coco-eval" and FastCOCO is None:
        raise ImportError("faster-coco-eval is not installed: `pip install faster-coco-eval`, "
                          "or use the pycocotools backend")
    return backend


def _has_annotation_id_zero(dataset: dict) -> bool:
    return any(a.get("id") == 0 for a in dataset.get("annotations", ()))


def _annotation_ids_from_one(dataset: dict) -> dict:
    """``dataset`` with its annotations numbered 1..N. Both backends record a match by the ground truth's
    annotation id, 0 meaning none: an object with id 0 would count as missed and its detection as a false
    positive. Nothing in the results refers to ground-truth annotation ids, so renumbering is safe."""
    logger.info("The ground truth has an annotation with id 0, which COCO evaluation reads as 'no match': "
                "evaluating with its annotations numbered from 1")
    annotations = [dict(a, id=i) for i, a in enumerate(dataset.get("annotations", ()), start=1)]
    return dict(dataset, annotations=annotations)


def coco_api(dataset, backend: str):
    """A COCO ground-truth object of ``backend``, from a json path or an already loaded dict (annotation
    ids renumbered from 1 if one of them is 0)."""
    _check_backend(backend)
    if backend == "pycocotools":
        from pycocotools.coco import COCO
    else:
        COCO = FastCOCO
    with contextlib.redirect_stdout(io.StringIO()):
        gt = None if isinstance(dataset, dict) else COCO(dataset)
        content = dataset if gt is None else gt.dataset
        if _has_annotation_id_zero(content):
            content, gt = _annotation_ids_from_one(content), None
        if gt is None:
            gt = COCO()
            gt.dataset = content
            gt.createIndex()
        return gt


def _cocoeval_class(backend: str):
    if backend == "pycocotools":
        from pycocotools.cocoeval import COCOeval
        return COCOeval
    return COCOeval_faster


def evaluate_coco(coco_gt, results: List[dict], iou_type: str = "bbox", backend: str = None,
                  img_ids: Sequence[int] = None) -> np.ndarray:
    """The 12 COCO summary numbers (AP, AP50, AP75, APs, APm, APl, AR1, AR10, AR100, ARs, ARm, ARl)
    of ``results`` (COCO result dicts) against ``coco_gt`` (made by ``coco_api`` with the same backend)."""
    backend = _check_backend(backend or default_backend())
    with contextlib.redirect_stdout(io.StringIO()):
        coco_eval = _cocoeval_class(backend)(coco_gt, coco_gt.loadRes(results), iou_type)
        if img_ids is not None:
            coco_eval.params.imgIds = list(img_ids)
        coco_eval.evaluate()
        coco_eval.accumulate()
        coco_eval.summarize()
    return np.asarray(coco_eval.stats[:12], dtype=np.float64)


class FastCOCOEvaluator(COCOEvaluator):
    """Detectron2's ``COCOEvaluator`` computing its metrics with ``backend`` (default: faster-coco-eval
    when installed). Results, the saved ``coco_instances_results.json`` and the printed tables are
    Detectron2's; only the matching and accumulation run in C++."""

    def __init__(self, dataset_name, *args, backend: str = None, **kwargs):
        self._backend = _check_backend(backend or default_backend())
        cleaned = cleaned_ground_truth(dataset_name)
        if cleaned is not None:  # the file had unusable annotations: evaluate against what was trained and tested on
            logger.info("Evaluating %s against its cleaned annotations (see the dataset's warning)", dataset_name)
        # Detectron2 builds its ground truth by the module-level name COCO: for this call, build it once with
        # coco_api (this backend's class, the cleaned annotations if any, annotation ids from 1).
        saved = coco_evaluation.COCO
        coco_evaluation.COCO = lambda json_file: coco_api(json_file if cleaned is None else cleaned, self._backend)
        try:
            super().__init__(dataset_name, *args, **kwargs)
        finally:
            coco_evaluation.COCO = saved

    def _eval_predictions(self, predictions, img_ids=None):
        if self._backend == "pycocotools":
            return super()._eval_predictions(predictions, img_ids)
        logger.info("Evaluating with faster-coco-eval (C++)")
        # Detectron2 picks its COCOeval class by module-level name; swap in the C++ one for this call.
        saved = coco_evaluation.COCOeval_opt, self._use_fast_impl
        coco_evaluation.COCOeval_opt, self._use_fast_impl = COCOeval_faster, True
        try:
            return super()._eval_predictions(predictions, img_ids)
        finally:
            coco_evaluation.COCOeval_opt, self._use_fast_impl = saved
