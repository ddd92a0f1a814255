"""Stems, the bottleneck, the backbone, its registered builders and the C4 res5 box head."""
from .backbone import BackboneOptions, ResNeXt, build_resnext, build_stage, create_backbone
from .bottleneck import Bottleneck
from .build import (build_resnext_backbone, build_resnext_fpn_backbone,
                    build_resnext_retinanet_fpn_backbone)
from .roi_heads import ResNeXtRes5ROIHeads
from .stem import BasicStem, DeepStem

__all__ = ["BackboneOptions", "ResNeXt", "build_resnext", "build_stage", "create_backbone", "Bottleneck",
           "build_resnext_backbone", "build_resnext_fpn_backbone", "build_resnext_retinanet_fpn_backbone",
           "ResNeXtRes5ROIHeads", "BasicStem", "DeepStem"]
