"""The registered backbone builders, the only code that reads MODEL.RESNEXT, and ``build_model``:
Detectron2's, after the checks of the whole model (config_checks.check_roi_heads)."""
import logging

from detectron2.layers import ShapeSpec
from detectron2.modeling import BACKBONE_REGISTRY
from detectron2.modeling import build_model as detectron2_build_model
from detectron2.modeling.backbone.fpn import FPN, LastLevelMaxPool, LastLevelP6P7

from ..archs import get_arch
from ..config import ARCH_OVERRIDES
from ..config_checks import check_roi_heads
from ..errors import ConfigError
from .backbone import ResNeXt, build_resnext, split_overrides

__all__ = ["build_model", "build_resnext_backbone", "build_resnext_fpn_backbone",
           "build_resnext_retinanet_fpn_backbone"]

logger = logging.getLogger(__name__)

# What Detectron2's own ResNet keys mean for this backbone when a user sets them.
_IGNORED_RESNETS_KEYS = {"DEPTH": 50, "NUM_GROUPS": 1, "WIDTH_PER_GROUP": 64,
                         "DEFORM_ON_PER_STAGE": [False] * 4, "DEFORM_MODULATED": False, "DEFORM_NUM_GROUPS": 1}


def _config_key(field: str) -> str:
    if field == "freeze_at":
        return "MODEL.BACKBONE.FREEZE_AT"
    if field == "in_channels":
        return "input channels (len(MODEL.PIXEL_MEAN))"
    return f"MODEL.RESNEXT.{field.upper()}"


def _check_config_node(cfg):
    if "RESNEXT" not in cfg.MODEL:
        raise ConfigError("the config has no MODEL.RESNEXT node: call resnext_det.add_resnext_config(cfg) "
                          "before cfg.merge_from_file(...)")
    changed = [f"MODEL.RESNETS.{k}={cfg.MODEL.RESNETS[k]}" for k, default in _IGNORED_RESNETS_KEYS.items()
               if cfg.MODEL.RESNETS.get(k, default) != default]
    if changed:
        logger.warning("%s ignored by %s: this backbone is set by MODEL.RESNEXT (ARCH %s)",
                       ", ".join(changed), cfg.MODEL.BACKBONE.NAME, cfg.MODEL.RESNEXT.ARCH)


def spec_and_options(cfg, input_channels: int):
    """The ArchSpec and BackboneOptions that MODEL.RESNEXT (and MODEL.BACKBONE.FREEZE_AT) describe."""
    _check_config_node(cfg)
    r = cfg.MODEL.RESNEXT
    overrides = {k.lower(): r[k] for k, unset in ARCH_OVERRIDES.items() if r[k] != unset}
    overrides.update(
        norm=r.NORM, out_features=tuple(r.OUT_FEATURES), stride_in_1x1=r.STRIDE_IN_1X1,
        res5_dilation=r.RES5_DILATION, zero_init_residual=r.ZERO_INIT_RESIDUAL,
        deform_on_per_stage=tuple(r.DEFORM_ON_PER_STAGE), deform_modulated=r.DEFORM_MODULATED,
        deform_num_groups=r.DEFORM_NUM_GROUPS,
        freeze_at=cfg.MODEL.BACKBONE.FREEZE_AT, in_channels=input_channels,
    )
    return split_overrides(get_arch(r.ARCH, key="MODEL.RESNEXT.ARCH"), overrides, _config_key)


def build_model(cfg):
    """Detectron2's ``build_model(cfg)`` (on MODEL.DEVICE), after one-line ConfigErrors for ROI heads
    that do not fit this plugin's backbone (Detectron2's Res5ROIHeads over ``build_resnext_backbone``)."""
    check_roi_heads(cfg)
    return detectron2_build_model(cfg)


@BACKBONE_REGISTRY.register()
def build_resnext_backbone(cfg, input_shape: ShapeSpec) -> ResNeXt:
    """The bottom-up backbone named by MODEL.RESNEXT.ARCH, with MODEL.RESNEXT's overrides."""
    return build_resnext(*spec_and_options(cfg, input_shape.channels))


def _fpn(cfg, input_shape, top_block_for, default_in_features):
    bottom_up = build_resnext(*spec_and_options(cfg, input_shape.channels))
    # Empty (Detectron2's default): the levels this builder is for.
    in_features = list(cfg.MODEL.FPN.IN_FEATURES) or list(default_in_features)
    available = bottom_up.output_shape()
    missing = [f for f in in_features if f not in available]
    if missing:
        raise ConfigError(f"MODEL.FPN.IN_FEATURES={in_features} needs {missing}, which "
                          f"MODEL.RESNEXT.OUT_FEATURES={list(cfg.MODEL.RESNEXT.OUT_FEATURES)} does not "
                          "produce; add them to MODEL.RESNEXT.OUT_FEATURES")
    return FPN(bottom_up=bottom_up, in_features=in_features, out_channels=cfg.MODEL.FPN.OUT_CHANNELS,
               norm=cfg.MODEL.FPN.NORM, top_block=top_block_for(bottom_up, cfg),
               fuse_type=cfg.MODEL.FPN.FUSE_TYPE)


@BACKBONE_REGISTRY.register()
def build_resnext_fpn_backbone(cfg, input_shape: ShapeSpec) -> FPN:
    """FPN for R-CNN: p2..p5 from MODEL.FPN.IN_FEATURES (empty: res2..res5), p6 by max-pooling p5."""
    return _fpn(cfg, input_shape, lambda bottom_up, cfg: LastLevelMaxPool(), ("res2", "res3", "res4", "res5"))


def _p6p7(bottom_up, cfg):
    if "res5" not in bottom_up.output_shape():
        raise ConfigError("RetinaNet's P6/P7 are computed from res5: add res5 to MODEL.RESNEXT.OUT_FEATURES")
    return LastLevelP6P7(bottom_up.output_shape()["res5"].channels, cfg.MODEL.FPN.OUT_CHANNELS)


@BACKBONE_REGISTRY.register()
def build_resnext_retinanet_fpn_backbone(cfg, input_shape: ShapeSpec) -> FPN:
    """FPN for RetinaNet: p3..p5 from MODEL.FPN.IN_FEATURES (empty: res3..res5), p6 and p7 from res5."""
    return _fpn(cfg, input_shape, _p6p7, ("res3", "res4", "res5"))
