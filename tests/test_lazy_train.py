"""tools/train_net.py with a LazyConfig: trains and evaluates (fused too), resumes exactly, and gives
one-line errors for bad input, as with YAML configs."""
import json
import math
import os

import pytest
import torch
from detectron2.engine import HookBase

from conftest import ROOT, load_tool

DEMO = os.path.join(ROOT, "configs", "lazy", "demo", "shapes_faster_rcnn_X50_FPN.py")


@pytest.fixture(scope="module")
def train_net():
    return load_tool("train_net")


def _small(output_dir, *extra):
    """The lazy demo on tiny_shapes at 64 px with ResNet-50 (grouped 3x3s are slow on CPU)."""
    return [f"train.output_dir={output_dir}", "model.backbone.bottom_up.name=resnet50",
            "dataloader.train.dataset.names=tiny_shapes_train", "dataloader.test.dataset.names=tiny_shapes_val",
            "dataloader.train.total_batch_size=2", "dataloader.train.num_workers=0", "dataloader.test.num_workers=0",
            "dataloader.train.mapper.augmentations.0.short_edge_length=[64]",
            "dataloader.train.mapper.augmentations.0.max_size=64",
            "dataloader.test.mapper.augmentations.0.short_edge_length=64",
            "dataloader.test.mapper.augmentations.0.max_size=64", *extra]


def _args(train_net, *argv):
    return train_net.argument_parser().parse_args(["--config-file", DEMO, *argv])


def test_lazy_config_trains_then_evaluates(train_net, tiny_shapes, tmp_path):
    results = train_net.main(_args(train_net, *_small(tmp_path, "train.max_iter=3", "train.eval_period=0")))
    assert set(results["bbox"]) >= {"AP", "AP50", "AP75"}  # evaluated at the end, as Detectron2 does
    records = [json.loads(line) for line in open(tmp_path / "metrics.json")]
    losses = [r["total_loss"] for r in records if "total_loss" in r]
    assert losses and all(math.isfinite(x) for x in losses)
    assert (tmp_path / "model_final.pth").exists() and (tmp_path / "config.yaml").exists()
    assert torch.load(tmp_path / "model_final.pth")["iteration"] == 2

    weights = f"train.init_checkpoint={tmp_path / 'model_final.pth'}"
    fused = train_net.main(_args(train_net, "--eval-only", "--fuse", *_small(tmp_path, weights)))
    for key in ("AP", "AP50"):  # NaN when nothing is detected after 3 iterations: equal either way
        assert fused["bbox"][key] == pytest.approx(results["bbox"][key], abs=0.05, nan_ok=True)
    bf16 = train_net.main(_args(train_net, "--eval-only", "--precision", "bf16", *_small(tmp_path, weights)))
    assert set(bf16["bbox"]) >= {"AP", "AP50", "AP75"}


def test_lazy_amp_trains_under_bf16_autocast_on_cpu(train_net, tiny_shapes, tmp_path, monkeypatch):
    from resnext_det.engine import amp

    dtypes = []
    step = amp.AutocastTrainer.run_step

    def recording_step(self):
        dtypes.append(self.dtype)
        return step(self)

    monkeypatch.setattr(amp.AutocastTrainer, "run_step", recording_step)
    train_net.main(_args(train_net, *_small(tmp_path, "train.max_iter=2", "train.amp.enabled=True",
                                            "dataloader.test.dataset.names=[]")))
    assert dtypes == [torch.bfloat16, torch.bfloat16]
    losses = [json.loads(line).get("total_loss") for line in open(tmp_path / "metrics.json")]
    assert losses and all(math.isfinite(x) for x in losses if x is not None)


class Crash(Exception):
    pass


def test_interrupted_lazy_run_resumes_to_the_uninterrupted_weights(train_net, tiny_shapes, tmp_path, monkeypatch):
    """4 iterations straight, or 3 then a crash (checkpoint after 2), then --resume: equal weights."""
    from resnext_det.engine import lazy

    run = ["train.max_iter=4", "train.checkpointer.period=2", "train.seed=7", "dataloader.test.dataset.names=[]"]
    train_net.main(_args(train_net, *_small(tmp_path / "straight", *run)))

    class CrashAfterThirdStep(HookBase):
        def after_step(self):
            if self.trainer.iter == 2:
                raise Crash

    class CrashingTrainer(lazy.LazyTrainer):
        def build_hooks(self):
            return super().build_hooks() + [CrashAfterThirdStep()]

    monkeypatch.setattr(lazy, "LazyTrainer", CrashingTrainer)
    with pytest.raises(Crash):
        train_net.main(_args(train_net, *_small(tmp_path / "crashed", *run)))
    monkeypatch.undo()
    assert (tmp_path / "crashed" / "last_checkpoint").read_text() == "model_0000001.pth"
    train_net.main(_args(train_net, "--resume", *_small(tmp_path / "crashed", *run)))

    a = torch.load(tmp_path / "straight" / "model_final.pth")
    b = torch.load(tmp_path / "crashed" / "model_final.pth")
    assert a["iteration"] == b["iteration"] == 3
    assert all(torch.equal(a["model"][k], b["model"][k]) for k in a["model"])
    sa, sb = a["trainer"]["_trainer"]["optimizer"]["state"], b["trainer"]["_trainer"]["optimizer"]["state"]
    assert all(torch.equal(sa[i][k], sb[i][k]) for i in sa for k in sa[i])


@pytest.mark.parametrize("argv, message", [
    (["train.max_itr=3"], "override train.max_itr: the config has no such key; did you mean train.max_iter?"),
    (["SOLVER.MAX_ITER", "3"], "override 'SOLVER.MAX_ITER' is not key=value"),
    (["dataloader.train.dataset.names=shapes_trian"], "'shapes_trian' is not a registered dataset; did you mean "
                                                      "'shapes_train'"),
    (["model.backbone.bottom_up.name=resnext50"], "unknown backbone name='resnext50'"),
    (["train.init_checkpoint=pretrained/none.pth"], "train.init_checkpoint='pretrained/none.pth' does not exist"),
    (["train.init_checkpoint=torchvision://resnext50_32x4d"],  # checked by name, before any download
     "train.init_checkpoint='torchvision://resnext50_32x4d' holds resnext50_32x4d weights, but "
     "model.backbone.bottom_up.name='resnet50'"),
    (["train.init_checkpoint=torchvision://resnet5"], "torchvision://resnet5"),
    (["model.roi_heads.num_classes=3", "train.max_iter=1"],
     "dataset 'tiny_shapes_train' has 6 classes, but model.roi_heads.num_classes is 3; "
     "set model.roi_heads.num_classes 6"),
])
def test_bad_input_is_one_line(train_net, tiny_shapes, tmp_path, capsys, argv, message):
    with pytest.raises(SystemExit) as e:
        train_net.cli(["--config-file", DEMO, f"train.output_dir={tmp_path}", "dataloader.test.dataset.names=[]",
                       "dataloader.train.dataset.names=tiny_shapes_train", "model.backbone.bottom_up.name=resnet50",
                       "dataloader.train.num_workers=0"] + argv)
    line = str(e.value.code)
    assert line.startswith("error: ") and message in line and "\n" not in line, line
