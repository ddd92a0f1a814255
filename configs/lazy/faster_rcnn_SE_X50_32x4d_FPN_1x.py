# Faster R-CNN FPN, SE-ResNeXt-50 32x4d, COCO 2017, 1x schedule (90k iterations at 16 images);
# configs/faster_rcnn_SE_X50_32x4d_FPN_1x.yaml as a LazyConfig.
from .common.faster_rcnn_fpn import dataloader, lr_multiplier, model, optimizer, train

model.backbone.bottom_up.name = "seresnext50_32x4d"
train.init_checkpoint = "timm://seresnext50_32x4d.gluon_in1k"
