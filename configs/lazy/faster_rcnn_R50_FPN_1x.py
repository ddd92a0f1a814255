# Faster R-CNN FPN, ResNet-50, COCO 2017, 1x schedule (90k iterations at 16 images);
# configs/faster_rcnn_R50_FPN_1x.yaml as a LazyConfig.
from .common.faster_rcnn_fpn import dataloader, lr_multiplier, model, optimizer, train

model.backbone.bottom_up.name = "resnet50"
train.init_checkpoint = "torchvision://resnet50"
