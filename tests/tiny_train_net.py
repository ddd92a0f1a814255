"""tools/train_net.py on a tiny shapes dataset, for the tests that run training as a subprocess.

Importing this file registers tiny_shapes_train / tiny_shapes_val (:data:`TINY_SPEC`, drawn under
$TINY_SHAPES_CACHE): Detectron2's ``launch`` starts its processes by importing this file, so they
have the datasets too. After training, every process saves its model's state dict to
OUTPUT_DIR/weights_rank<rank>.pth.

$TINY_FAIL="nan RANK" makes that process's RPN objectness loss NaN from iteration 1 on;
$TINY_FAIL="image RANK" makes that process's data loader fail on its 3rd image with a DatasetError.

    TINY_SHAPES_CACHE=/tmp/c python tests/tiny_train_net.py [train_net.py arguments]
"""
import os
import sys

import torch

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(ROOT, "tools"))

import train_net  # noqa: E402
from detectron2.utils import comm  # noqa: E402

from resnext_det.data import ShapesSpec, register_shapes_datasets  # noqa: E402

TINY_SPEC = ShapesSpec(num_train=8, num_val=4)

if "TINY_SHAPES_CACHE" in os.environ:
    register_shapes_datasets(TINY_SPEC, prefix="tiny_shapes", cache_dir=os.environ["TINY_SHAPES_CACHE"])


class WeightDumpingTrainer(train_net.Trainer):
    def train(self):
        results = super().train()
        model = getattr(self.model, "module", self.model)  # unwrap DistributedDataParallel
        torch.save(model.state_dict(), os.path.join(self.cfg.OUTPUT_DIR, f"weights_rank{comm.get_rank()}.pth"))
        return results


train_net.Trainer = WeightDumpingTrainer


def _inject_failure(kind: str, rank: int):
    from detectron2.modeling.proposal_generator.rpn import RPN
    from detectron2.utils.events import get_event_storage

    from resnext_det.data import DatasetError, validate

    if kind == "nan":
        losses = RPN.losses

        def nan_from_iteration_1(self, *args, **kwargs):
            out = losses(self, *args, **kwargs)
            if comm.get_rank() == rank and get_event_storage().iter >= 1:
                out["loss_rpn_cls"] = out["loss_rpn_cls"] * float("nan")
            return out

        RPN.losses = nan_from_iteration_1
    elif kind == "image":
        call = validate.NamedImageErrors.__call__
        seen = []

        def third_image_fails(self, record):
            seen.append(record)
            if comm.get_rank() == rank and len(seen) == 3:
                raise DatasetError(f"image {record['file_name']} of dataset 'tiny_shapes_train' could not be read "
                                   "(simulated); replace it or remove it from the annotations")
            return call(self, record)

        validate.NamedImageErrors.__call__ = third_image_fails


if "TINY_FAIL" in os.environ:
    _inject_failure(os.environ["TINY_FAIL"].split()[0], int(os.environ["TINY_FAIL"].split()[1]))

if __name__ == "__main__":
    train_net.cli()
