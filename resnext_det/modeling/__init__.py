"""Stems, the bottleneck, the backbone and its registered builders."""
from .backbone import BackboneOptions, ResNeXt, build_resnext, create_backbone
from .bottleneck import Bottleneck
from .build import (build_resnext_backbone, build_resnext_fpn_backbone,
                    build_resnext_retinanet_fpn_backbone)
from .stem import BasicStem, DeepStem

__all__ = ["BackboneOptions", "ResNeXt", "build_resnext", "create_backbone", "Bottleneck",
           "build_resnext_backbone", "build_resnext_fpn_backbone", "build_resnext_retinanet_fpn_backbone",
           "BasicStem", "DeepStem"]
