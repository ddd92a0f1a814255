"""Norm layers by name, as Detectron2's config spells them."""
from detectron2.layers import get_norm
from torch import nn

from ..errors import ConfigError

NORMS = ("FrozenBN", "BN", "SyncBN", "GN")


def check_norm(norm: str, key: str = "norm") -> str:
    if norm not in NORMS:
        raise ConfigError(f"{key}={norm!r} is invalid: valid norms are {NORMS}")
    return norm


def feature_norm(norm: str, channels: int) -> nn.Module:
    """The norm after a convolution over a feature map (GN uses 32 groups, as Detectron2)."""
    return get_norm(norm, channels)


def attention_norm(norm: str, channels: int) -> nn.Module:
    """The norm inside an attention MLP, which runs on a 1x1 map of pooled features.

    Group norm with 32 groups would normalize each group of a few channels on its own there
    (a 1-channel group always becomes 0), so GN uses one group: a layer norm over channels.
    """
    if norm == "GN":
        return nn.GroupNorm(1, channels)
    return get_norm(norm, channels)
