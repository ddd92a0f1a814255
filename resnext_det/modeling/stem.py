"""Stems: the layers before res2 (output stride 4)."""
import fvcore.nn.weight_init as weight_init
import torch.nn.functional as F
from detectron2.layers import CNNBlockBase, Conv2d
from detectron2.modeling.backbone.resnet import BasicStem

from ..layers import feature_norm

__all__ = ["BasicStem", "DeepStem", "make_stem"]


class DeepStem(CNNBlockBase):
    """Three 3x3 convs (the first with stride 2), then a 3x3 max-pool: ResNet-D / ResNeSt's stem."""

    def __init__(self, in_channels=3, width=32, norm="BN"):
        super().__init__(in_channels, width * 2, 4)
        channels = [in_channels, width, width, width * 2]
        for i in range(3):
            conv = Conv2d(channels[i], channels[i + 1], kernel_size=3, stride=2 if i == 0 else 1,
                          padding=1, bias=False, norm=feature_norm(norm, channels[i + 1]),
                          activation=F.relu_)
            weight_init.c2_msra_fill(conv)
            self.add_module(f"conv{i + 1}", conv)

    def forward(self, x):
        x = self.conv3(self.conv2(self.conv1(x)))
        return F.max_pool2d(x, kernel_size=3, stride=2, padding=1)


def make_stem(kind: str, in_channels: int, width: int, norm: str) -> CNNBlockBase:
    """``basic`` is Detectron2's own 7x7 stem, so its checkpoints load unchanged."""
    if kind == "deep":
        return DeepStem(in_channels, width, norm)
    return BasicStem(in_channels, width, norm)
