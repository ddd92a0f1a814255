# The CPU demo (configs/demo/shapes_faster_rcnn_X50_FPN.yaml) as a LazyConfig: Faster R-CNN FPN with
# ResNeXt-50 32x4d, trained from scratch on the embedded synthetic shapes dataset (128x128 images,
# 6 classes). The same model, data and schedule; one difference: LazyConfig has no gradient clipping.
#   python tools/train_net.py --config-file configs/lazy/demo/shapes_faster_rcnn_X50_FPN.py
from detectron2.config import LazyCall as L
from detectron2.data import transforms as T
from detectron2.layers import ShapeSpec
from detectron2.model_zoo import get_config
from detectron2.solver import WarmupParamScheduler
from fvcore.common.param_scheduler import MultiStepParamScheduler

from ..common.faster_rcnn_fpn import dataloader, model, train

model.backbone.bottom_up.update(
    name="resnext50_32x4d",
    norm="BN",  # batch statistics: trains from scratch at 4 images per batch
    freeze_at=0,  # nothing is pretrained, so everything trains
    zero_init_residual=True,  # blocks start as identities: from-scratch training learns much faster
)
model.backbone.out_channels = 128  # half of COCO's 256: the CPU budget goes to the backbone
model.proposal_generator.head.in_channels = 128
model.proposal_generator.anchor_generator.sizes = [[16], [32], [64], [128], [256]]  # objects are 12-64 px
model.proposal_generator.update(pre_nms_topk=(1000, 500), post_nms_topk=(500, 250))
model.roi_heads.update(num_classes=6, batch_size_per_image=128)
model.roi_heads.box_pooler.sampling_ratio = 1  # one sample per bin: a cheaper RoIAlign backward
model.roi_heads.box_head.update(input_shape=ShapeSpec(channels=128, height=7, width=7), fc_dims=[512, 512])
model.roi_heads.box_predictor.input_shape = ShapeSpec(channels=512)
# The shapes are drawn, not photographed: BGR with the ImageNet statistics, no ImageNet weights.
model.input_format = "BGR"
model.pixel_mean = [103.53, 116.28, 123.675]
model.pixel_std = [57.375, 57.12, 58.395]

dataloader.train.dataset.names = "shapes_train"
dataloader.test.dataset.names = "shapes_val"
dataloader.train.mapper.image_format = "BGR"
dataloader.train.mapper.augmentations = [
    L(T.ResizeShortestEdge)(short_edge_length=(128,), max_size=128, sample_style="choice"),
    L(T.RandomFlip)(horizontal=True),
]
dataloader.test.mapper.augmentations = [L(T.ResizeShortestEdge)(short_edge_length=128, max_size=128)]
dataloader.train.total_batch_size = 4
dataloader.train.num_workers = dataloader.test.num_workers = 1

optimizer = get_config("common/optim.py").AdamW  # from scratch in 1200 steps: AdamW learns far faster than SGD
optimizer.update(lr=0.001, weight_decay=0.05)
lr_multiplier = L(WarmupParamScheduler)(
    scheduler=L(MultiStepParamScheduler)(values=[1.0, 0.1, 0.01], milestones=[1000, 1150, 1200]),
    warmup_length=100 / 1200,
    warmup_factor=0.001,
)
train.update(
    max_iter=1200, eval_period=600, checkpointer=dict(period=100000, max_to_keep=100),
    init_checkpoint="", device="cpu", seed=0, output_dir="output/demo_lazy",
)
