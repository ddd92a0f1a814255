#!/usr/bin/env python
"""Train torchvision's Faster R-CNN with a resnext_det backbone for a few iterations, on a small
embedded shapes dataset. Shows the backbone outside Detectron2's training loop.

    python examples/torchvision_faster_rcnn.py --arch resnext50_32x4d --iterations 20
"""
import argparse
import json
import math
import os
import tempfile

import numpy as np
import torch
from PIL import Image
from torchvision.models.detection import FasterRCNN

from resnext_det.adapters import TorchvisionFPNBackbone
from resnext_det.data import ShapesSpec, generate_shapes_dataset


def load_samples(num_images, root):
    """(image tensor in [0, 1], target dict) pairs from a freshly drawn shapes train split."""
    spec = ShapesSpec(num_train=num_images, num_val=0)
    json_path = generate_shapes_dataset(root, spec, splits=("train",))["train"]
    coco = json.load(open(json_path))
    image_dir = os.path.join(os.path.dirname(os.path.dirname(json_path)), "train")
    samples = []
    for image in coco["images"]:
        anns = [a for a in coco["annotations"] if a["image_id"] == image["id"]]
        boxes = torch.tensor([[x, y, x + w, y + h] for x, y, w, h in (a["bbox"] for a in anns)],
                             dtype=torch.float32).reshape(-1, 4)
        pixels = np.asarray(Image.open(os.path.join(image_dir, image["file_name"])).convert("RGB"))
        samples.append((torch.from_numpy(pixels).permute(2, 0, 1).float() / 255,
                        {"boxes": boxes, "labels": torch.tensor([a["category_id"] for a in anns])}))
    return samples, len(coco["categories"])


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--arch", default="resnext50_32x4d")
    parser.add_argument("--iterations", type=int, default=20)
    parser.add_argument("--images", type=int, default=16, help="shapes images drawn for training")
    parser.add_argument("--batch", type=int, default=2)
    args = parser.parse_args(argv)

    torch.manual_seed(0)
    with tempfile.TemporaryDirectory() as root:
        samples, num_classes = load_samples(args.images, os.path.join(root, "shapes"))
    backbone = TorchvisionFPNBackbone(args.arch, norm="BN", out_channels=128, zero_init_residual=True)
    model = FasterRCNN(backbone, num_classes=num_classes + 1, min_size=128, max_size=128)
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-4)
    model.train()
    losses = []
    for step in range(args.iterations):
        batch = [samples[(step * args.batch + i) % len(samples)] for i in range(args.batch)]
        loss_dict = model([image for image, _ in batch], [target for _, target in batch])
        loss = sum(loss_dict.values())
        if not math.isfinite(loss.item()):
            raise SystemExit(f"error: loss is {loss.item()} at iteration {step}")
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        losses.append(loss.item())
        print(f"iter {step}: loss {loss.item():.3f} " + " ".join(f"{k} {v.item():.3f}" for k, v in loss_dict.items()))
    return losses


if __name__ == "__main__":
    main()
