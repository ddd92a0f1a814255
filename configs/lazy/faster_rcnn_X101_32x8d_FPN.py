# Faster R-CNN FPN, ResNeXt-101 32x8d, COCO 2017, 3x schedule (270k iterations at 16 images): the mission
# config configs/faster_rcnn_X101_32x8d_FPN.yaml as a LazyConfig (the same model, tests/test_lazy_config.py),
# the setting of Detectron2's model-zoo X101-FPN baseline (43.0 box AP), with torchvision ImageNet weights.
from detectron2.model_zoo import get_config

from .common.faster_rcnn_fpn import dataloader, model, optimizer, train

model.backbone.bottom_up.name = "resnext101_32x8d"
lr_multiplier = get_config("common/coco_schedule.py").lr_multiplier_3x  # LR /10 at 210k and 250k
train.max_iter = 270000
train.init_checkpoint = "torchvision://resnext101_32x8d"
