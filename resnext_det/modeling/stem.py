"""Stems: the layers before res2 (output stride 4)."""
import fvcore.nn.weight_init as weight_init
import torch.nn.functional as F
from detectron2.layers import CNNBlockBase, Conv2d
from detectron2.modeling.backbone.resnet import BasicStem

from ..layers import feature_norm

__all__ = ["BasicStem", "DeepStem", "PreActStem", "make_stem"]


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


class PreActStem(CNNBlockBase):
    """The 7x7 conv (stride 2) and 3x3 max-pool of a pre-activation ResNet (v2): no norm or ReLU here,
    the first block normalizes its input."""

    def __init__(self, in_channels=3, width=64):
        super().__init__(in_channels, width, 4)
        self.conv1 = Conv2d(in_channels, width, kernel_size=7, stride=2, padding=3, bias=False)
        weight_init.c2_msra_fill(self.conv1)

    def forward(self, x):
        return F.max_pool2d(self.conv1(x), kernel_size=3, stride=2, padding=1)


def make_stem(kind: str, in_channels: int, width: int, norm: str, preact: bool = False) -> CNNBlockBase:
    """``basic`` is Detectron2's own 7x7 stem, so its checkpoints load unchanged."""
    if preact:  # only with the basic stem (ArchSpec.validate)
        return PreActStem(in_channels, width)
    if kind == "deep":
        return DeepStem(in_channels, width, norm)
    return BasicStem(in_channels, width, norm)
