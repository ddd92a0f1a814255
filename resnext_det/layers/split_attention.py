"""Split attention (ResNeSt), radix-major: one grouped conv and one grouped MLP, no loop over groups."""
import torch
import torch.nn.functional as F
from detectron2.layers import Conv2d
from torch import nn

from .norm import attention_norm, feature_norm


class SplitAttention(nn.Module):
    """Replaces a bottleneck's grouped 3x3.

    ``conv`` is a 3x3 with ``groups * radix`` groups producing ``radix`` splits of ``channels``
    each, laid out radix-major (split r holds channels [r*C, (r+1)*C)); within a split, channels are
    ordered by cardinal group. The splits are summed and pooled; ``fc1``/``fc2`` (grouped by
    cardinal group) give per-split logits, normalized across the radix splits of each cardinal
    group (softmax; a sigmoid gate when radix is 1); the output is the weighted sum of the splits,
    accumulated in place (the loop runs over the radix splits, not over cardinal groups).
    """

    def __init__(self, in_channels, channels, *, stride=1, dilation=1, groups=1, radix=2, norm="BN",
                 reduction=4, min_attention_channels=32):
        super().__init__()
        self.radix, self.groups = radix, groups
        attention_channels = max(in_channels * radix // reduction, min_attention_channels)
        self.conv = Conv2d(in_channels, channels * radix, kernel_size=3, stride=stride, padding=dilation,
                           dilation=dilation, groups=groups * radix, bias=False,
                           norm=feature_norm(norm, channels * radix), activation=F.relu_)
        self.fc1 = Conv2d(channels, attention_channels, kernel_size=1, groups=groups,
                          norm=attention_norm(norm, attention_channels), activation=F.relu_)
        self.fc2 = Conv2d(attention_channels, channels * radix, kernel_size=1, groups=groups)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.conv(x)
        n, rc, h, w = x.shape
        c = rc // self.radix
        # Pool, then sum the splits: the same as pooling their sum, without a full-size sum tensor.
        pooled = x.mean((2, 3)).view(n, self.radix, c).sum(1).view(n, c, 1, 1)
        logits = self.fc2(self.fc1(pooled))
        if self.radix == 1:
            return x * logits.sigmoid()
        # fc2's channels are (group, radix, c); bring radix first to match the splits' layout.
        weights = logits.view(n, self.groups, self.radix, -1).transpose(1, 2).softmax(dim=1)
        weights = weights.reshape(n, self.radix, c, 1, 1).unbind(1)
        splits = x.split(c, dim=1)
        out = splits[0] * weights[0]
        for split, weight in zip(splits[1:], weights[1:]):  # radix - 1 steps, no full-size products
            out.addcmul_(split, weight)
        return out
