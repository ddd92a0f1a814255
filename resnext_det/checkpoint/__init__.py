"""Foreign ImageNet weights: safe reading, one remap per source, checks against the architecture,
and weights by name (torchvision://, timm://, resnest:// URIs, resolved through Detectron2's PathManager)."""
from .convert import ConversionResult, check_state_dict, convert_state_dict, input_settings
from .io import CheckpointError, read_state_dict, save_detectron2_checkpoint
from .remap import REMAPS
from .sources import BUILTIN_WEIGHTS, TIMM_ARCHS, WeightsEntry, lookup_weights, register_weights
from .uri import check_weights_uri, resolve_weights  # (registers the URI handler with Detectron2's PathManager)

SOURCES = tuple(REMAPS)
__all__ = ["ConversionResult", "check_state_dict", "convert_state_dict", "input_settings", "CheckpointError",
           "read_state_dict", "save_detectron2_checkpoint", "SOURCES", "BUILTIN_WEIGHTS", "TIMM_ARCHS",
           "WeightsEntry", "lookup_weights", "register_weights", "check_weights_uri", "resolve_weights"]
