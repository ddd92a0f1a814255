"""The C4 box head: Detectron2's Res5ROIHeads with the plugin's res5 instead of a plain ResNet's."""
from detectron2.modeling.roi_heads import ROI_HEADS_REGISTRY, Res5ROIHeads
from torch import nn

from ..errors import ConfigError
from .backbone import build_stage
from .build import spec_and_options

__all__ = ["ResNeXtRes5ROIHeads"]


def _check_c4_inputs(cfg, input_shape):
    """One-line errors for the settings Detectron2's Res5ROIHeads would assert on or build wrong."""
    in_features = list(cfg.MODEL.ROI_HEADS.IN_FEATURES)
    if len(in_features) != 1 or in_features[0] not in input_shape:
        raise ConfigError(f"MODEL.ROI_HEADS.IN_FEATURES={in_features} is invalid for ResNeXtRes5ROIHeads: name the "
                          f"one backbone feature it pools, one of {list(input_shape)} (C4: [res4])")
    if "res5" in input_shape and "res5" not in cfg.MODEL.RPN.IN_FEATURES:
        raise ConfigError("MODEL.RESNEXT.OUT_FEATURES includes res5, but with ResNeXtRes5ROIHeads res5 is the box "
                          "head: the backbone's would be computed and never used; set MODEL.RESNEXT.OUT_FEATURES [res4]")
    if cfg.MODEL.RESNEXT.RES5_DILATION != 1:
        raise ConfigError(f"MODEL.RESNEXT.RES5_DILATION={cfg.MODEL.RESNEXT.RES5_DILATION} is for DC5 backbones; the "
                          "C4 head's res5 halves the pooled regions as Detectron2's does: set it to 1")
    if spec_and_options(cfg, len(cfg.MODEL.PIXEL_MEAN))[0].preact:
        raise ConfigError(f"MODEL.RESNEXT.ARCH={cfg.MODEL.RESNEXT.ARCH!r} is pre-activation (ResNet-v2), whose returned maps "
                          "are normalized once more: it has no C4 head here; use it with FPN (StandardROIHeads)")
    if cfg.MODEL.KEYPOINT_ON:
        raise ConfigError("MODEL.KEYPOINT_ON=True: ResNeXtRes5ROIHeads (like Detectron2's Res5ROIHeads) has no "
                          "keypoint head; use StandardROIHeads with an FPN backbone")


@ROI_HEADS_REGISTRY.register()
class ResNeXtRes5ROIHeads(Res5ROIHeads):
    """Faster / Mask R-CNN C4's ROI heads (RoI pooling on res4, res5 per region, then the box and mask
    predictors), with res5 made by the backbone's own stage builder from MODEL.RESNEXT: the arch,
    cardinality, width, transform, attention, norm and stride placement ``build_resnext_backbone``'s
    res5 would have. Module names are Detectron2's (``roi_heads.res5.0.conv1`` ...), so its C4
    checkpoints load unchanged.
    """

    @classmethod
    def from_config(cls, cfg, input_shape):
        _check_c4_inputs(cfg, input_shape)
        ret = super().from_config(cfg, input_shape)
        feature, res5_in = cfg.MODEL.ROI_HEADS.IN_FEATURES[0], ret["res5"][0].in_channels
        if input_shape[feature].channels != res5_in:
            raise ConfigError(f"MODEL.ROI_HEADS.IN_FEATURES=[{feature}] has {input_shape[feature].channels} channels, "
                              f"but the res5 of MODEL.RESNEXT.ARCH={cfg.MODEL.RESNEXT.ARCH!r} takes {res5_in}: "
                              "pool a res4 of the same family (MODEL.BACKBONE.NAME build_resnext_backbone)")
        return ret

    @classmethod
    def _build_res5_block(cls, cfg):
        # Res5ROIHeads.from_config builds its res5 through this hook; Detectron2's reads MODEL.RESNETS.
        spec, options = spec_and_options(cfg, len(cfg.MODEL.PIXEL_MEAN))
        blocks = build_stage(spec, options, "res5")
        return nn.Sequential(*blocks), blocks[-1].out_channels
