"""Plugin backbones for detectors outside Detectron2."""
from collections import OrderedDict
from typing import Sequence

from torch import nn

from .modeling import create_backbone

__all__ = ["TorchvisionFPNBackbone"]


class TorchvisionFPNBackbone(nn.Module):
    """A plugin backbone + torchvision's FPN, in the form ``torchvision.models.detection`` expects:
    ``out_channels``, and an OrderedDict of feature maps named "0", "1", ... and "pool".

        model = torchvision.models.detection.FasterRCNN(TorchvisionFPNBackbone("resnext50_32x4d"), num_classes=7)
    """

    def __init__(self, name: str, out_channels: int = 256,
                 features: Sequence[str] = ("res2", "res3", "res4", "res5"), **overrides):
        from torchvision.ops import FeaturePyramidNetwork
        from torchvision.ops.feature_pyramid_network import LastLevelMaxPool

        super().__init__()
        self.features = tuple(features)
        self.body = create_backbone(name, out_features=self.features, **overrides)
        shapes = self.body.output_shape()
        self.fpn = FeaturePyramidNetwork([shapes[f].channels for f in self.features], out_channels,
                                         extra_blocks=LastLevelMaxPool())
        self.out_channels = out_channels

    def forward(self, x):
        feats = self.body(x)
        return self.fpn(OrderedDict((str(i), feats[f]) for i, f in enumerate(self.features)))
