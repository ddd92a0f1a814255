"""Stems, the bottleneck, the backbone, its registered builders, ``build_model`` and the C4 res5 box head."""
from .backbone import BackboneOptions, ResNeXt, build_resnext, build_stage, create_backbone
from .bottleneck import Bottleneck
from .build import (build_model, build_resnext_backbone, build_resnext_fpn_backbone,
                    build_resnext_retinanet_fpn_backbone)
from .roi_heads import ResNeXtRes5ROIHeads
from .stem import BasicStem, DeepStem

__all__ = ["BackboneOptions", "ResNeXt", "build_resnext", "build_stage", "create_backbone", "Bottleneck",
           "build_model", "build_resnext_backbone", "build_resnext_fpn_backbone",
           "build_resnext_retinanet_fpn_backbone", "ResNeXtRes5ROIHeads", "BasicStem", "DeepStem"]
