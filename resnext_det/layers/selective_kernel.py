"""Selective kernel convolution (SKNet): branches of different receptive field, mixed by attention."""
import torch
import torch.nn.functional as F
from detectron2.layers import Conv2d
from torch import nn

from .norm import attention_norm, feature_norm


class SelectiveKernel(nn.Module):
    """Replaces a bottleneck's grouped 3x3.

    Branch i is a grouped 3x3 conv with dilation ``dilation * (i + 1)`` (a 3x3 dilated by 2 sees
    what a 5x5 sees), each with norm and ReLU. The branch sum is pooled, reduced to
    ``attention_channels`` (``fc_reduce``), expanded to per-branch channel logits (``fc_select``)
    and soft-maxed over branches; the output is the weighted sum of the branches.
    """

    def __init__(self, in_channels, out_channels, *, stride=1, dilation=1, groups=1, norm="BN",
                 num_branches=2, attention_channels=32):
        super().__init__()
        self.branches = nn.ModuleList(
            Conv2d(in_channels, out_channels, kernel_size=3, stride=stride, padding=d, dilation=d,
                   groups=groups, bias=False, norm=feature_norm(norm, out_channels), activation=F.relu_)
            for d in (dilation * (i + 1) for i in range(num_branches))
        )
        self.fc_reduce = Conv2d(out_channels, attention_channels, kernel_size=1, bias=False,
                                norm=attention_norm(norm, attention_channels), activation=F.relu_)
        self.fc_select = Conv2d(attention_channels, out_channels * num_branches, kernel_size=1, bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        feats = [branch(x) for branch in self.branches]
        # Pool each branch and sum: the same as pooling the branch sum, without a full-size sum tensor.
        pooled = torch.stack([f.mean((2, 3), keepdim=True) for f in feats]).sum(0)
        logits = self.fc_select(self.fc_reduce(pooled))
        n, c = pooled.shape[:2]
        weights = logits.view(n, len(feats), c, 1, 1).softmax(dim=1).unbind(1)
        out = feats[0] * weights[0]
        for feat, weight in zip(feats[1:], weights[1:]):  # accumulated in place, no stacked copy
            out.addcmul_(feat, weight)
        return out
