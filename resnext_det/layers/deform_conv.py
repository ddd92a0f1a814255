"""Deformable convolution (DCN, and DCNv2 with a mask) on torchvision.ops.deform_conv2d: CPU and CUDA,
no compiled Detectron2 ops. Parameters and the offset layout are those of Detectron2's DeformConv /
ModulatedDeformConv, so their checkpoints load unchanged."""
import torch
from detectron2.layers import Conv2d
from torch import nn
from torchvision.ops import deform_conv2d


class DeformConv(Conv2d):
    """A deformable convolution with Detectron2's ``Conv2d`` parameters: ``weight``, ``norm``, ``activation``.

    ``forward(x, prediction)`` takes the raw output of the conv built by ``offset_predictor()``
    (Detectron2's ``conv2_offset``): per offset group and kernel point a (dy, dx) offset, laid out as
    Detectron2's and torchvision's ops lay them out; with ``modulated`` a further third of the channels
    holds mask logits, whose sigmoid weights each sampling point (DCNv2). Channel groups
    (``groups``, ResNeXt's cardinality) and offset groups (``offset_groups``) are independent.
    """

    def __init__(self, in_channels, out_channels, kernel_size=3, *, stride=1, dilation=1, groups=1,
                 offset_groups=1, modulated=False, norm=None, activation=None):
        super().__init__(in_channels, out_channels, kernel_size, stride=stride, padding=dilation * (kernel_size // 2),
                         dilation=dilation, groups=groups, bias=False, norm=norm, activation=activation)
        self.offset_groups = offset_groups
        self.modulated = modulated

    @property
    def offset_channels(self) -> int:
        """Channels of the prediction: 2 offsets (and 1 mask logit if modulated) per group and kernel point."""
        points = self.kernel_size[0] * self.kernel_size[1] * self.offset_groups
        return (3 if self.modulated else 2) * points

    def offset_predictor(self) -> Conv2d:
        """The conv that predicts the offsets (and mask logits) from this conv's input, at its output
        positions: same kernel, stride and dilation, with a bias. Zero-initialized as in Detectron2, so
        the deformable conv starts as the plain one (modulated: with every point weighted 0.5)."""
        conv = Conv2d(self.in_channels, self.offset_channels, self.kernel_size, stride=self.stride,
                      padding=self.padding, dilation=self.dilation)
        nn.init.zeros_(conv.weight)
        nn.init.zeros_(conv.bias)
        return conv

    def forward(self, x: torch.Tensor, prediction: torch.Tensor) -> torch.Tensor:
        offset, mask = prediction, None
        if self.modulated:  # offsets first, then mask logits: Detectron2's DeformBottleneckBlock split
            points = self.offset_channels // 3
            offset, logits = prediction.split([2 * points, points], dim=1)
            mask = logits.sigmoid()
        x = deform_conv2d(x, offset, self.weight, self.bias, stride=self.stride, padding=self.padding,
                          dilation=self.dilation, mask=mask)
        if self.norm is not None:
            x = self.norm(x)
        if self.activation is not None:
            x = self.activation(x)
        return x

    def extra_repr(self) -> str:
        return super().extra_repr() + f", offset_groups={self.offset_groups}, modulated={self.modulated}"
