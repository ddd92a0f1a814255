"""tools/train_net.py: Detectron2's flags, one-line errors, CPU fallback, a short train + eval."""
import json
import math
import os

import pytest
import torch

from conftest import ROOT, load_tool, run_python

DEMO_CONFIG = os.path.join(ROOT, "configs", "demo", "shapes_faster_rcnn_X50_FPN.yaml")


@pytest.fixture(scope="module")
def train_net():
    return load_tool("train_net")


def test_parser_takes_detectron2_flags(train_net):
    from detectron2.engine import default_argument_parser

    args = default_argument_parser().parse_args([
        "--config-file", DEMO_CONFIG, "--num-gpus", "2", "--num-machines", "2", "--machine-rank", "1",
        "--dist-url", "tcp://127.0.0.1:1234", "--resume", "--eval-only", "SOLVER.MAX_ITER", "5"])
    assert (args.num_gpus, args.num_machines, args.machine_rank) == (2, 2, 1)
    assert args.dist_url == "tcp://127.0.0.1:1234" and args.resume and args.eval_only
    assert args.opts == ["SOLVER.MAX_ITER", "5"]


@pytest.mark.parametrize("argv, message", [
    (["--config-file", "configs/missing.yaml"], "config file 'configs/missing.yaml' does not exist"),
    (["--config-file", DEMO_CONFIG, "MODEL.RESNEXT.ARHC", "resnet50"],
     "unknown config key MODEL.RESNEXT.ARHC; did you mean MODEL.RESNEXT.ARCH"),
    (["--config-file", DEMO_CONFIG, "MODEL.RESNEXT.ARCH", "resnext50"], "unknown backbone MODEL.RESNEXT.ARCH"),
    (["--eval-only", "--config-file", DEMO_CONFIG, "DATASETS.TEST", "('coco_2017_val',)"], "DETECTRON2_DATASETS"),
    (["--config-file", DEMO_CONFIG, "MODEL.WEIGHTS", "pretrained/none.pth"],
     "MODEL.WEIGHTS='pretrained/none.pth' does not exist; make it with tools/convert_pretrained.py"),
])
def test_bad_input_exits_with_one_line(argv, message, tmp_path):
    result = run_python(["tools/train_net.py"] + argv + ["OUTPUT_DIR", str(tmp_path)],
                        env={"DETECTRON2_DATASETS": str(tmp_path / "none")})
    assert result.returncode != 0
    last = result.stderr.strip().splitlines()[-1]
    assert last.startswith("error: ") and message in last, result.stderr[-2000:]
    assert "Traceback" not in result.stderr


def test_cuda_config_runs_on_cpu_without_editing(train_net, tmp_path):
    from detectron2.engine import default_argument_parser

    from resnext_det.engine import setup_cfg

    args = default_argument_parser().parse_args(
        ["--config-file", DEMO_CONFIG, "MODEL.DEVICE", "cuda", "OUTPUT_DIR", str(tmp_path)])
    cfg = setup_cfg(args)
    assert cfg.MODEL.DEVICE == ("cuda" if torch.cuda.is_available() else "cpu")


def test_short_train_then_eval(train_net, tiny_shapes, tmp_path):
    from detectron2.engine import default_argument_parser

    overrides = ["DATASETS.TRAIN", "('tiny_shapes_train',)", "DATASETS.TEST", "('tiny_shapes_val',)",
                 "SOLVER.MAX_ITER", "3", "SOLVER.IMS_PER_BATCH", "2", "TEST.EVAL_PERIOD", "0",
                 "DATALOADER.NUM_WORKERS", "0", "OUTPUT_DIR", str(tmp_path)]
    args = default_argument_parser().parse_args(["--config-file", DEMO_CONFIG] + overrides)
    train_net.main(args)
    records = [json.loads(line) for line in open(tmp_path / "metrics.json")]
    losses = [r["total_loss"] for r in records if "total_loss" in r]
    assert losses and all(math.isfinite(x) for x in losses)
    assert (tmp_path / "model_final.pth").exists()

    args = train_net.argument_parser().parse_args(
        ["--config-file", DEMO_CONFIG, "--eval-only", "MODEL.WEIGHTS", str(tmp_path / "model_final.pth")]
        + overrides)
    results = train_net.main(args)
    assert set(results["bbox"]) >= {"AP", "AP50", "AP75", "APs", "APm", "APl"}
    args.fuse = True
    fused = train_net.main(args)
    for key in ("AP", "AP50", "AP75"):  # NaN when nothing is detected after 3 iterations: equal either way
        assert fused["bbox"][key] == pytest.approx(results["bbox"][key], abs=0.05, nan_ok=True)
    args.precision = "bf16"  # the backbone in bf16: within the 0.5 AP target
    bf16 = train_net.main(args)
    for key in ("AP", "AP50", "AP75"):
        assert bf16["bbox"][key] == pytest.approx(results["bbox"][key], abs=0.5, nan_ok=True)
