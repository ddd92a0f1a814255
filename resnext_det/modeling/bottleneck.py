"""The one bottleneck block of the family; variants differ only in the modules it is given."""
import fvcore.nn.weight_init as weight_init
import torch.nn.functional as F
from detectron2.layers import CNNBlockBase, Conv2d
from torch import nn

from ..layers import SelectiveKernel, SplitAttention, SqueezeExcite, feature_norm

__all__ = ["Bottleneck"]


def make_transform(kind, channels, *, stride, dilation, groups, radix, norm):
    """The block's 3x3 (module name ``conv2``), ending with its norm and ReLU."""
    if kind == "sk":
        return SelectiveKernel(channels, channels, stride=stride, dilation=dilation, groups=groups,
                               norm=norm, attention_channels=max(32, channels // 16))
    if kind == "splat":
        return SplitAttention(channels, channels, stride=stride, dilation=dilation, groups=groups,
                              radix=radix, norm=norm)
    return Conv2d(channels, channels, kernel_size=3, stride=stride, padding=dilation, dilation=dilation,
                  groups=groups, bias=False, norm=feature_norm(norm, channels), activation=F.relu_)


class Bottleneck(CNNBlockBase):
    """1x1 reduce -> 3x3 transform -> 1x1 expand (-> squeeze-excitation), plus the shortcut.

    The 3x3 is ResNeXt's grouped conv (form (c) of the paper), a selective kernel or split
    attention (``transform``). The shortcut is the identity, or a strided 1x1 projection
    (option B) when the shape changes; with ``avg_down`` the projection's stride is a 2x2
    average pool before it. With ``avd`` a strided block keeps the 3x3 at stride 1 and
    downsamples with a 3x3 average pool after it (ResNeSt). Module names follow Detectron2's
    ``BottleneckBlock`` (conv1, conv2, conv3, shortcut, each with ``.norm``).
    """

    def __init__(self, in_channels, out_channels, *, bottleneck_channels, stride=1, num_groups=1,
                 norm="BN", stride_in_1x1=False, dilation=1, transform="conv", radix=1,
                 attention="none", se_reduction=16, avd=False, avg_down=False, zero_init_last=False):
        super().__init__(in_channels, out_channels, stride)
        stride_1x1, stride_3x3 = (stride, 1) if stride_in_1x1 else (1, stride)
        avd_stride = stride_3x3 if avd and stride_3x3 > 1 else 1
        if avd_stride > 1:
            stride_3x3 = 1

        self.conv1 = Conv2d(in_channels, bottleneck_channels, kernel_size=1, stride=stride_1x1,
                            bias=False, norm=feature_norm(norm, bottleneck_channels), activation=F.relu_)
        self.conv2 = make_transform(transform, bottleneck_channels, stride=stride_3x3, dilation=dilation,
                                    groups=num_groups, radix=radix, norm=norm)
        self.avd = nn.AvgPool2d(3, avd_stride, padding=1) if avd_stride > 1 else nn.Identity()
        self.conv3 = Conv2d(bottleneck_channels, out_channels, kernel_size=1, bias=False,
                            norm=feature_norm(norm, out_channels))
        self.se = SqueezeExcite(out_channels, se_reduction) if attention == "se" else None

        if in_channels != out_channels or stride != 1:
            pooled = avg_down and stride > 1
            self.shortcut_pool = (nn.AvgPool2d(stride, stride, ceil_mode=True, count_include_pad=False)
                                  if pooled else nn.Identity())
            self.shortcut = Conv2d(in_channels, out_channels, kernel_size=1, stride=1 if pooled else stride,
                                   bias=False, norm=feature_norm(norm, out_channels))
        else:
            self.shortcut_pool, self.shortcut = nn.Identity(), None

        for conv in self.modules():
            if isinstance(conv, Conv2d):
                weight_init.c2_msra_fill(conv)
        if zero_init_last:
            # Each block starts as the identity (Goyal et al., "Accurate, Large Minibatch SGD").
            nn.init.zeros_(self.conv3.norm.weight)

    def forward(self, x):
        out = self.conv3(self.avd(self.conv2(self.conv1(x))))
        if self.se is not None:
            out = self.se(out)
        out += x if self.shortcut is None else self.shortcut(self.shortcut_pool(x))
        return F.relu_(out)
