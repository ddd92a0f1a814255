"""resnext_det: ResNeXt-family backbones for Detectron2.

Importing the package registers ``build_resnext_backbone``, ``build_resnext_fpn_backbone`` and
``build_resnext_retinanet_fpn_backbone`` in Detectron2's ``BACKBONE_REGISTRY``, the C4 box head
``ResNeXtRes5ROIHeads`` in its ``ROI_HEADS_REGISTRY``, and the embedded ``shapes_train`` /
``shapes_val`` datasets in its ``DatasetCatalog``.
"""
from . import data  # noqa: F401  (registers the shapes datasets)
from .archs import ARCHS, ArchSpec, list_backbones
from .checkpoint import CheckpointError, convert_state_dict
from .config import add_resnext_config, load_config
from .errors import ConfigError
from .fuse import fuse_for_inference
from .modeling import BackboneOptions, ResNeXt, build_resnext, create_backbone

__version__ = "0.1.0"
__all__ = ["ARCHS", "ArchSpec", "list_backbones", "add_resnext_config", "load_config", "ConfigError",
           "BackboneOptions", "ResNeXt", "build_resnext", "create_backbone", "CheckpointError",
           "convert_state_dict", "fuse_for_inference"]
