"""Attention modules, deformable convolution and norm helpers used by the bottleneck."""
from .deform_conv import DeformConv
from .norm import NORMS, attention_norm, check_norm, feature_norm
from .selective_kernel import SelectiveKernel
from .split_attention import SplitAttention
from .squeeze_excite import SqueezeExcite

__all__ = ["DeformConv", "NORMS", "attention_norm", "check_norm", "feature_norm", "SelectiveKernel",
           "SplitAttention", "SqueezeExcite"]
