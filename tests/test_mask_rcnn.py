"""Mask R-CNN on the embedded shapes dataset: its RLE instance masks load as Detectron2 bitmasks and
evaluate with COCO mask AP; a reduced Mask R-CNN run trains and reaches box and mask AP floors (e2e)."""
import json
import os

import numpy as np
import pytest
import torch
from detectron2.data import DatasetCatalog, DatasetMapper
from detectron2.structures import Boxes, Instances
from pycocotools import mask as mask_util

from conftest import ROOT, run_python
from resnext_det import load_config
from resnext_det.evaluation import FastCOCOEvaluator

MASK_DEMO = os.path.join(ROOT, "configs", "demo", "shapes_mask_rcnn_X50_FPN.yaml")


def test_shapes_masks_load_as_bitmasks_and_evaluate_to_full_mask_ap(tiny_shapes):
    cfg = load_config(MASK_DEMO, ["DATASETS.TRAIN", "('tiny_shapes_val',)"])
    assert cfg.MODEL.MASK_ON and cfg.INPUT.MASK_FORMAT == "bitmask"
    mapper = DatasetMapper(cfg, is_train=True, augmentations=[])  # the training mapper, without the random flip
    records = DatasetCatalog.get("tiny_shapes_val")  # draws the files on first use
    evaluator = FastCOCOEvaluator("tiny_shapes_val")
    evaluator.reset()
    for record in records:
        instances = mapper(dict(record))["instances"]
        masks = instances.gt_masks.tensor.numpy()
        expected = np.stack([mask_util.decode(a["segmentation"]) for a in record["annotations"]]).astype(bool)
        assert np.array_equal(masks, expected)
        for box, mask in zip(instances.gt_boxes.tensor, masks):  # each box is its mask's pixel extent
            ys, xs = np.nonzero(mask)
            assert box.tolist() == [xs.min(), ys.min(), xs.max() + 1, ys.max() + 1]
        # The ground truth as predictions: COCO box and mask AP 100.
        prediction = Instances(instances.image_size, pred_boxes=Boxes(instances.gt_boxes.tensor),
                               scores=torch.ones(len(instances)), pred_classes=instances.gt_classes,
                               pred_masks=torch.from_numpy(masks))
        evaluator.process([{"image_id": record["image_id"]}], [{"instances": prediction}])
    results = evaluator.evaluate()
    assert results["bbox"]["AP"] == pytest.approx(100.0) and results["segm"]["AP"] == pytest.approx(100.0)
