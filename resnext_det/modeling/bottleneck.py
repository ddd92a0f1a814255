"""The one bottleneck block of the family; variants differ only in the modules it is given."""
import fvcore.nn.weight_init as weight_init
import torch.nn.functional as F
from detectron2.layers import CNNBlockBase, Conv2d
from torch import nn

from ..layers import DeformConv, SelectiveKernel, SplitAttention, SqueezeExcite, feature_norm

__all__ = ["Bottleneck"]


def make_transform(kind, channels, *, stride, dilation, groups, radix, norm, deform=None):
    """The block's 3x3 (module name ``conv2``), ending with its norm and ReLU.

    ``deform``: None, or (modulated, offset groups) for a deformable ``conv`` transform.
    """
    if kind == "sk":
        return SelectiveKernel(channels, channels, stride=stride, dilation=dilation, groups=groups,
                               norm=norm, attention_channels=max(32, channels // 16))
    if kind == "splat":
        return SplitAttention(channels, channels, stride=stride, dilation=dilation, groups=groups,
                              radix=radix, norm=norm)
    if deform is not None:
        modulated, offset_groups = deform
        return DeformConv(channels, channels, stride=stride, dilation=dilation, groups=groups,
                          offset_groups=offset_groups, modulated=modulated, norm=feature_norm(norm, channels),
                          activation=F.relu_)
    return Conv2d(channels, channels, kernel_size=3, stride=stride, padding=dilation, dilation=dilation,
                  groups=groups, bias=False, norm=feature_norm(norm, channels), activation=F.relu_)


class Bottleneck(CNNBlockBase):
    """1x1 reduce -> 3x3 transform -> 1x1 expand (-> squeeze-excitation), plus the shortcut.

    The 3x3 is ResNeXt's grouped conv (form (c) of the paper), a selective kernel or split
    attention (``transform``); with ``deform`` the grouped conv is deformable, its offsets predicted
    from its input by ``conv2_offset`` (Detectron2's DeformBottleneckBlock). The shortcut is the
    identity, or a strided 1x1 projection (option B) when the shape changes; with ``avg_down`` the
    projection's stride is a 2x2 average pool before it. With ``avd`` a strided block keeps the 3x3
    at stride 1 and downsamples with a 3x3 average pool after it (ResNeSt). Module names follow
    Detectron2's ``BottleneckBlock`` (conv1, conv2, conv3, shortcut, each with ``.norm``).

    Post-activation (ResNet v1, the default): each conv is followed by its norm; ReLU after conv1,
    conv2 and the sum. Pre-activation (``preact``, ResNet v2): ``preact_norm`` and ReLU normalize the
    block's input, conv1 and conv2 keep their norm and ReLU (they pre-activate the next conv), conv3
    and the projection have no norm, the projection reads the normalized input and nothing follows
    the sum. ``forward`` is the one place where the two orders differ.
    """

    def __init__(self, in_channels, out_channels, *, bottleneck_channels, stride=1, num_groups=1,
                 norm="BN", stride_in_1x1=False, dilation=1, transform="conv", radix=1,
                 attention="none", se_reduction=16, avd=False, avg_down=False, zero_init_last=False,
                 preact=False, deform=False, deform_modulated=False, deform_num_groups=1):
        super().__init__(in_channels, out_channels, stride)
        stride_1x1, stride_3x3 = (stride, 1) if stride_in_1x1 else (1, stride)
        avd_stride = stride_3x3 if avd and stride_3x3 > 1 else 1
        if avd_stride > 1:
            stride_3x3 = 1
        self.preact_norm = feature_norm(norm, in_channels) if preact else None
        self.conv1 = Conv2d(in_channels, bottleneck_channels, kernel_size=1, stride=stride_1x1,
                            bias=False, norm=feature_norm(norm, bottleneck_channels), activation=F.relu_)
        self.conv2 = make_transform(transform, bottleneck_channels, stride=stride_3x3, dilation=dilation,
                                    groups=num_groups, radix=radix, norm=norm,
                                    deform=(deform_modulated, deform_num_groups) if deform else None)
        self.conv2_offset = self.conv2.offset_predictor() if deform else None
        self.avd = nn.AvgPool2d(3, avd_stride, padding=1) if avd_stride > 1 else nn.Identity()
        self.conv3 = Conv2d(bottleneck_channels, out_channels, kernel_size=1, bias=False,
                            norm=None if preact else feature_norm(norm, out_channels))
        self.se = SqueezeExcite(out_channels, se_reduction) if attention == "se" else None

        if in_channels != out_channels or stride != 1:
            pooled = avg_down and stride > 1
            self.shortcut_pool = (nn.AvgPool2d(stride, stride, ceil_mode=True, count_include_pad=False)
                                  if pooled else nn.Identity())
            self.shortcut = Conv2d(in_channels, out_channels, kernel_size=1, stride=1 if pooled else stride,
                                   bias=False, norm=None if preact else feature_norm(norm, out_channels))
        else:
            self.shortcut_pool, self.shortcut = nn.Identity(), None

        for conv in self.modules():
            if isinstance(conv, Conv2d) and conv is not self.conv2_offset:  # offsets start at zero
                weight_init.c2_msra_fill(conv)
        if zero_init_last:
            # Each block starts as the identity (Goyal et al., "Accurate, Large Minibatch SGD").
            nn.init.zeros_(self.conv3.weight if preact else self.conv3.norm.weight)

    def forward(self, x):
        block_input = x if self.preact_norm is None else F.relu_(self.preact_norm(x))
        out = self.conv1(block_input)
        out = self.conv2(out) if self.conv2_offset is None else self.conv2(out, self.conv2_offset(out))
        out = self.conv3(self.avd(out))
        if self.se is not None:
            out = self.se(out)
        out += x if self.shortcut is None else self.shortcut(self.shortcut_pool(block_input))
        return out if self.preact_norm is not None else F.relu_(out)
