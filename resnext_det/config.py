"""The plugin's config node, MODEL.RESNEXT. Only the registered builders read it."""
from detectron2.config import CfgNode as CN

# Keys whose "unset" value means "as the ARCH preset says".
ARCH_OVERRIDES = {
    "DEPTH": 0,
    "NUM_GROUPS": 0,
    "WIDTH_PER_GROUP": 0,
    "RADIX": 0,
    "ATTENTION": "",
    "SE_REDUCTION": 0,
}


def add_resnext_config(cfg):
    """Add MODEL.RESNEXT to a Detectron2 config (idempotent). Call before merging a YAML file."""
    if "RESNEXT" in cfg.MODEL:
        return cfg
    r = cfg.MODEL.RESNEXT = CN()
    # Named preset, one of resnext_det.list_backbones(): resnet50, resnext101_32x8d, resnest50, ...
    r.ARCH = "resnext50_32x4d"
    # Overrides of the preset; the unset value (0 or "") keeps the preset's.
    r.DEPTH = 0  # blocks per stage from the depth table: 50, 101, 152, 200, 269
    r.NUM_GROUPS = 0  # cardinality C of the 3x3 (1 for ResNet and ResNeSt)
    r.WIDTH_PER_GROUP = 0  # d; res2's bottleneck width is C*d, doubled in each later stage
    r.RADIX = 0  # split-attention radix (resnest* presets only)
    r.ATTENTION = ""  # after each block's last norm: "none" or "se" (squeeze-excitation)
    r.SE_REDUCTION = 0  # squeeze-excitation channel reduction (preset: 16)
    # Options every preset honours. Stage freezing is Detectron2's MODEL.BACKBONE.FREEZE_AT.
    r.NORM = "FrozenBN"  # FrozenBN, BN, SyncBN or GN
    r.OUT_FEATURES = ["res2", "res3", "res4", "res5"]  # features returned (any of stem, res2..res5)
    # Stride on the first 1x1 of a strided block (MSRA / Caffe2 / Detectron weights) instead of the
    # 3x3 (the ResNeXt paper, torchvision, timm, ResNeSt weights).
    r.STRIDE_IN_1X1 = False
    r.RES5_DILATION = 1  # 1, or 2 for DC5 (res5 at stride 16, dilated)
    r.ZERO_INIT_RESIDUAL = False  # zero-init the last norm of each block (needs BN, SyncBN or GN)
    return cfg
