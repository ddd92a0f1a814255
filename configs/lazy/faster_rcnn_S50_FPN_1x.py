# Faster R-CNN FPN, ResNeSt-50, COCO 2017, 1x schedule, trained as the ResNeSt authors did: SyncBN in
# backbone, FPN and a 4conv1fc box head, short side 640-800; configs/faster_rcnn_S50_FPN_1x.yaml as a LazyConfig.
from detectron2.config import LazyCall as L
from detectron2.data import transforms as T

from .common.faster_rcnn_fpn import dataloader, lr_multiplier, model, optimizer, train

model.backbone.bottom_up.update(name="resnest50", norm="SyncBN", freeze_at=0)  # SyncBN trains every norm
model.backbone.norm = "SyncBN"
model.roi_heads.box_head.update(conv_dims=[256, 256, 256, 256], fc_dims=[1024], conv_norm="SyncBN")
dataloader.train.mapper.augmentations[0] = L(T.ResizeShortestEdge)(
    short_edge_length=(640, 800), sample_style="range", max_size=1333)
train.init_checkpoint = "resnest://resnest50"
