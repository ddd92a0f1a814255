"""The plugin backbone inside torchvision's Faster R-CNN, and the example that trains it."""
import math

import torch
from torchvision.models.detection import FasterRCNN

from conftest import load_example
from resnext_det.adapters import TorchvisionFPNBackbone


def test_torchvision_faster_rcnn_runs_with_a_plugin_backbone():
    backbone = TorchvisionFPNBackbone("resnest50", out_channels=64)
    features = backbone(torch.randn(1, 3, 128, 128))
    assert list(features) == ["0", "1", "2", "3", "pool"] and features["0"].shape == (1, 64, 32, 32)
    model = FasterRCNN(backbone, num_classes=3, min_size=128, max_size=128).eval()
    with torch.no_grad():
        out = model([torch.rand(3, 128, 128)])
    assert set(out[0]) == {"boxes", "labels", "scores"}


def test_example_trains_a_few_iterations(capsys):
    losses = load_example("torchvision_faster_rcnn").main(["--iterations", "3", "--images", "4"])
    assert len(losses) == 3 and all(math.isfinite(x) for x in losses)
    assert "iter 2: loss" in capsys.readouterr().out
