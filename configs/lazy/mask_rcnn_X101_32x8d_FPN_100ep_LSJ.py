# Mask R-CNN FPN, ResNeXt-101 32x8d, COCO 2017, 100 epochs with large-scale jitter (LSJ): Detectron2's
# new_baselines/mask_rcnn_R_50_FPN_100ep_LSJ.py recipe with this backbone swapped in, as its RegNet
# variants swap theirs: trained from scratch, SyncBN everywhere, 1024x1024 crops of images scaled by
# 0.1-2.0, 64 images per batch at LR 0.1 for 184,375 iterations, mixed precision (CUDA only).
# To fine-tune from ImageNet weights instead: train.init_checkpoint=torchvision://resnext101_32x8d
from detectron2.config import LazyCall as L
from detectron2.model_zoo import get_config

from resnext_det import create_backbone
from resnext_det.engine.resumable import resumable_train_loader
from resnext_det.evaluation import FastCOCOEvaluator

_lsj = get_config("new_baselines/mask_rcnn_R_50_FPN_100ep_LSJ.py")
dataloader, lr_multiplier, model, optimizer, train = (
    _lsj.dataloader, _lsj.lr_multiplier, _lsj.model, _lsj.optimizer, _lsj.train)

model.backbone.bottom_up = L(create_backbone)(
    name="resnext101_32x8d",
    norm="SyncBN",
    freeze_at=0,  # from scratch: everything trains
    stride_in_1x1=False,  # the layout of torchvision's ImageNet weights, should you start from them
    out_features=["res2", "res3", "res4", "res5"],
)
model.input_format = "RGB"  # with the ImageNet statistics, as torchvision's weights expect
model.pixel_mean = [123.675, 116.28, 103.53]
model.pixel_std = [58.395, 57.12, 57.375]

dataloader.train._target_ = resumable_train_loader  # build_detection_train_loader that --resume continues
dataloader.train.mapper.image_format = "RGB"
dataloader.evaluator._target_ = FastCOCOEvaluator  # COCOEvaluator, metrics in C++ (faster-coco-eval)
