"""resnext_det: ResNeXt-family backbones for Detectron2.

Importing the package registers ``build_resnext_backbone``, ``build_resnext_fpn_backbone`` and
``build_resnext_retinanet_fpn_backbone`` in Detectron2's ``BACKBONE_REGISTRY``, the C4 box head
``ResNeXtRes5ROIHeads`` in its ``ROI_HEADS_REGISTRY``, the embedded ``shapes_train`` / ``shapes_val``
datasets in its ``DatasetCatalog``, and the ``torchvision://``, ``timm://`` and ``resnest://`` weights
URIs with its ``PathManager`` (``register_weights`` adds names).
"""
from . import data  # noqa: F401  (registers the shapes datasets)
from .archs import ARCHS, ArchSpec, list_backbones
from .checkpoint import CheckpointError, convert_state_dict, register_weights, resolve_weights
from .config import add_resnext_config, load_config
from .errors import ConfigError
from .compile import compile_for_inference
from .fuse import fuse_for_inference
from .modeling import BackboneOptions, ResNeXt, build_model, build_resnext, create_backbone

__version__ = "0.1.0"
__all__ = ["ARCHS", "ArchSpec", "list_backbones", "add_resnext_config", "load_config", "ConfigError",
           "BackboneOptions", "ResNeXt", "build_model", "build_resnext", "create_backbone", "CheckpointError",
           "convert_state_dict", "fuse_for_inference", "compile_for_inference", "register_weights",
           "resolve_weights"]
