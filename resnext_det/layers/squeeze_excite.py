"""Squeeze-and-excitation (SENet): channel gates from globally pooled features."""
import torch
from torch import nn


class SqueezeExcite(nn.Module):
    """x * sigmoid(fc2(relu(fc1(mean_hw(x))))), with fc1 reducing channels by ``reduction``."""

    def __init__(self, channels: int, reduction: int = 16):
        super().__init__()
        hidden = channels // reduction
        self.fc1 = nn.Conv2d(channels, hidden, kernel_size=1)
        self.fc2 = nn.Conv2d(hidden, channels, kernel_size=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        gate = self.fc2(torch.relu(self.fc1(x.mean((2, 3), keepdim=True)))).sigmoid()
        if torch.is_grad_enabled() and x.requires_grad:
            return x * gate  # autograd needs x as it was
        return x.mul_(gate)  # inference: gate in place, no second full-size tensor
