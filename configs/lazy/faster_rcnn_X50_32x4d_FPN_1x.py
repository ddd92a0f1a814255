# Faster R-CNN FPN, ResNeXt-50 32x4d, COCO 2017, 1x schedule (90k iterations at 16 images);
# configs/faster_rcnn_X50_32x4d_FPN_1x.yaml as a LazyConfig.
from .common.faster_rcnn_fpn import dataloader, lr_multiplier, model, optimizer, train

model.backbone.bottom_up.name = "resnext50_32x4d"
train.init_checkpoint = "torchvision://resnext50_32x4d"
