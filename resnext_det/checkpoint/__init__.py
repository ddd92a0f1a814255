"""Foreign ImageNet weights: safe reading, one remap per source, checks against the architecture."""
from .convert import ConversionResult, check_state_dict, convert_state_dict, input_settings
from .io import CheckpointError, read_state_dict, save_detectron2_checkpoint
from .remap import REMAPS

SOURCES = tuple(REMAPS)
__all__ = ["ConversionResult", "check_state_dict", "convert_state_dict", "input_settings", "CheckpointError",
           "read_state_dict", "save_detectron2_checkpoint", "SOURCES"]
