# Faster R-CNN FPN on a resnext_det backbone, COCO 2017, 1x schedule: Detectron2's LazyConfig model zoo
# (configs/common: the Mask R-CNN FPN model without its mask head, the COCO data, SGD, the 1x schedule)
# with the bottom-up backbone swapped. The settings equal configs/Base-RCNN-FPN.yaml's; children name
# the backbone and its ImageNet weights:
#   model.backbone.bottom_up.name = "resnext50_32x4d"
#   train.init_checkpoint = "torchvision://resnext50_32x4d"
from detectron2.config import LazyCall as L
from detectron2.model_zoo import get_config

from resnext_det import create_backbone
from resnext_det.engine.resumable import resumable_train_loader
from resnext_det.evaluation import FastCOCOEvaluator

model = get_config("common/models/mask_rcnn_fpn.py").model
model.backbone.bottom_up = L(create_backbone)(
    name="resnet50",  # one of resnext_det.list_backbones()
    norm="FrozenBN",
    freeze_at=2,  # the stem and res2 stay as ImageNet trained them
    stride_in_1x1=False,  # torchvision / timm / ResNeSt weights stride on the 3x3
    out_features=["res2", "res3", "res4", "res5"],
)
model.roi_heads.update(mask_in_features=None, mask_pooler=None, mask_head=None)  # boxes only
# Weights converted from torchvision / timm / ResNeSt expect RGB normalized with the ImageNet mean and std.
model.input_format = "RGB"
model.pixel_mean = [123.675, 116.28, 103.53]
model.pixel_std = [58.395, 57.12, 57.375]

dataloader = get_config("common/data/coco.py").dataloader
dataloader.train._target_ = resumable_train_loader  # build_detection_train_loader that --resume continues
dataloader.train.mapper.image_format = "RGB"
dataloader.train.mapper.use_instance_mask = False
dataloader.evaluator._target_ = FastCOCOEvaluator  # COCOEvaluator, metrics in C++ (faster-coco-eval)

optimizer = get_config("common/optim.py").SGD  # LR 0.02, momentum 0.9, weight decay 1e-4 (none on norms)
lr_multiplier = get_config("common/coco_schedule.py").lr_multiplier_1x
train = get_config("common/train.py").train  # 90k iterations at 16 images
train.max_iter = 90000
