"""Multi-process training on CPU: train_net --num-gpus 2 starts two gloo processes that stay in step,
evaluate their halves of the val set into one result, and synchronize SyncBN."""
import json
import os
import subprocess
import sys

import pytest
import torch
import torch.distributed as dist
import torch.multiprocessing as mp
from torch import nn

from conftest import ROOT, load_tool

DEMO_CONFIG = os.path.join(ROOT, "configs", "demo", "shapes_faster_rcnn_X50_FPN.yaml")


def test_num_gpus_help_says_what_it_means_on_cpu():
    help_text = " ".join(load_tool("train_net").argument_parser().format_help().split())
    assert "--num-gpus NUM_GPUS processes per machine: one per GPU (NCCL); without CUDA, CPU processes (gloo)" \
        in help_text


def test_bad_config_with_two_processes_is_one_line_before_any_process_starts(tmp_path):
    result = subprocess.run([sys.executable, "tools/train_net.py", "--num-gpus", "2", "--dist-url", "auto",
                             "--config-file", DEMO_CONFIG, "MODEL.RESNEXT.ARHC", "x", "OUTPUT_DIR", str(tmp_path)],
                            cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert result.returncode == 1
    lines = result.stderr.strip().splitlines()
    assert lines[-1].startswith("error: ") and "did you mean MODEL.RESNEXT.ARCH" in lines[-1], result.stderr[-2000:]
    assert "Traceback" not in result.stderr and sum(line.startswith("error: ") for line in lines) == 1
    assert not (tmp_path / "log.txt").exists()  # no process was started


def _sync_bn_worker(rank, init_file, out_dir):
    from resnext_det.engine.distributed import cpu_sync_batchnorm

    dist.init_process_group("gloo", init_method=f"file://{init_file}", rank=rank, world_size=2)
    torch.manual_seed(0)
    model = nn.Sequential(nn.Conv2d(3, 4, 1), nn.SyncBatchNorm(4)).train()
    images = torch.randn(5, 3, 6, 6, generator=torch.Generator().manual_seed(1))
    weights = torch.randn(4, 4, 6, 6, generator=torch.Generator().manual_seed(2))  # of a loss
    mine = slice(0, 2) if rank == 0 else slice(2, 4)  # each process its own images
    try:
        model(images[mine])
        refused = None
    except ValueError as e:  # nn.SyncBatchNorm wants CUDA
        refused = str(e)
    cpu_sync_batchnorm(model)
    out = model(images[mine])
    (out * weights[mine]).sum().backward()
    torch.save({"refused": refused, "out": out.detach(), "bn": model[1].state_dict(),
                "grad": model[0].weight.grad, "type": type(model[1]).__name__}, os.path.join(out_dir, f"{rank}.pt"))
    dist.destroy_process_group()


def test_sync_batchnorm_on_cpu_with_gloo(tmp_path):
    mp.start_processes(_sync_bn_worker, args=(str(tmp_path / "init"), str(tmp_path)), nprocs=2,
                       start_method="spawn")
    r0, r1 = torch.load(tmp_path / "0.pt"), torch.load(tmp_path / "1.pt")
    assert "expected input tensor to be on GPU" in r0["refused"]
    assert r0["type"] == "NaiveSyncBatchNorm"
    # Both processes hold the statistics of all 4 images, as one process with the whole batch would.
    torch.manual_seed(0)
    reference = nn.Sequential(nn.Conv2d(3, 4, 1), nn.BatchNorm2d(4)).train()
    images = torch.randn(5, 3, 6, 6, generator=torch.Generator().manual_seed(1))[:4]
    weights = torch.randn(4, 4, 6, 6, generator=torch.Generator().manual_seed(2))
    out = reference(images)
    (out * weights).sum().backward()
    for key in ("running_mean", "num_batches_tracked"):
        assert torch.equal(r0["bn"][key], r1["bn"][key])
    torch.testing.assert_close(r0["bn"]["running_mean"], reference[1].running_mean)
    torch.testing.assert_close(torch.cat([r0["out"], r1["out"]]), out.detach(), atol=1e-5, rtol=1e-5)
    # each process's gradient counts its images' share through the shared statistics: they add up to
    # the whole batch's gradient
    torch.testing.assert_close(r0["grad"] + r1["grad"], reference[0].weight.grad, atol=1e-4, rtol=1e-4)


@pytest.fixture(scope="module")
def tiny_cache(tmp_path_factory):
    from resnext_det.data import generate_shapes_dataset, shapes_dataset_root
    from resnext_det.data.synthetic import SPLITS
    from tiny_train_net import TINY_SPEC

    cache = tmp_path_factory.mktemp("tiny-shapes")
    generate_shapes_dataset(shapes_dataset_root(TINY_SPEC, cache), TINY_SPEC, SPLITS)
    return cache


def test_two_cpu_processes_train_in_step_and_evaluate_together(tmp_path, tiny_cache):
    from tiny_train_net import TINY_SPEC

    from resnext_det.data import shapes_dataset_root

    out = tmp_path / "out"
    command = [sys.executable, os.path.join(ROOT, "tests", "tiny_train_net.py"), "--num-gpus", "2",
               "--dist-url", "auto", "--config-file", DEMO_CONFIG,
               "DATASETS.TRAIN", "('tiny_shapes_train',)", "DATASETS.TEST", "('tiny_shapes_val',)",
               "MODEL.RESNEXT.NORM", "SyncBN", "SOLVER.IMS_PER_BATCH", "4", "SOLVER.MAX_ITER", "4",
               "TEST.EVAL_PERIOD", "0", "SOLVER.CHECKPOINT_PERIOD", "100", "DATALOADER.NUM_WORKERS", "0",
               "INPUT.MIN_SIZE_TRAIN", "(64,)", "INPUT.MAX_SIZE_TRAIN", "64", "INPUT.MIN_SIZE_TEST", "64",
               "INPUT.MAX_SIZE_TEST", "64", "OUTPUT_DIR", str(out)]
    env = dict(os.environ, TINY_SHAPES_CACHE=str(tiny_cache), CUDA_VISIBLE_DEVICES="")  # gloo, also on GPU hosts
    env.pop("OMP_NUM_THREADS", None)
    result = subprocess.run(command, cwd=ROOT, env=env, capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]

    log0, log1 = (out / "log.txt").read_text(), (out / "log.txt.rank1").read_text()
    assert "2 processes on this machine's CPU: 1 torch threads each" in log0 or os.cpu_count() != 2
    assert "nn.SyncBatchNorm layers (CUDA only) replaced by Detectron2's NaiveSyncBatchNorm" in log0
    assert "2 per batch on each of 2 processes" in log0

    # (i) in step: the same parameters and, with SyncBN, the same norm statistics in both processes
    w0, w1 = torch.load(out / "weights_rank0.pth"), torch.load(out / "weights_rank1.pth")
    assert w0.keys() == w1.keys()
    different = [k for k in w0 if not torch.equal(w0[k], w1[k])]
    assert not different, different[:5]
    bn_stats = [k for k in w0 if k.startswith("backbone.bottom_up") and k.endswith("running_mean")]
    assert bn_stats and any(w0[k].abs().sum() > 0 for k in bn_stats)  # they were updated

    # (ii) evaluation: each process ran 2 of the 4 val images; the results cover all 4
    assert "Start inference on 2 batches" in log0 and "Start inference on 2 batches" in log1
    predictions = torch.load(out / "inference" / "tiny_shapes_val" / "instances_predictions.pth")
    with open(shapes_dataset_root(TINY_SPEC, tiny_cache) / "annotations" / "instances_val.json") as f:
        val_ids = sorted(image["id"] for image in json.load(f)["images"])
    assert sorted(p["image_id"] for p in predictions) == val_ids and len(val_ids) == 4
    assert "copypaste: AP,AP50" in result.stdout
    for path in out.glob("*.pth"):  # 0.5 GB; pytest keeps tmp_path
        path.unlink()


@pytest.mark.e2e  # (about 30 s each on 2 cores)
@pytest.mark.parametrize("failure, message", [
    ("nan 1", "error: loss became NaN or infinite at iteration 1 (loss_rpn_cls=nan); lower SOLVER.BASE_LR"),
    ("image 1", "error: image "),
])
def test_a_failure_in_one_process_stops_both_with_one_line(tmp_path, tiny_cache, failure, message):
    """The second process's NaN loss (Detectron2 checks losses in the first only) or bad image stops both
    processes at the same step; the terminal shows one line and no traceback."""
    out = tmp_path / "out"
    command = [sys.executable, os.path.join(ROOT, "tests", "tiny_train_net.py"), "--num-gpus", "2",
               "--dist-url", "auto", "--config-file", DEMO_CONFIG, "MODEL.RESNEXT.ARCH", "resnet50",
               "DATASETS.TRAIN", "('tiny_shapes_train',)", "DATASETS.TEST", "()", "SOLVER.IMS_PER_BATCH", "2",
               "SOLVER.MAX_ITER", "5", "DATALOADER.NUM_WORKERS", "0", "INPUT.MIN_SIZE_TRAIN", "(64,)",
               "INPUT.MAX_SIZE_TRAIN", "64", "OUTPUT_DIR", str(out)]
    env = dict(os.environ, TINY_SHAPES_CACHE=str(tiny_cache), CUDA_VISIBLE_DEVICES="", TINY_FAIL=failure,
               OMP_NUM_THREADS="1")
    result = subprocess.run(command, cwd=ROOT, env=env, capture_output=True, text=True, timeout=600)
    assert result.returncode == 1, result.stderr[-3000:]
    errors = [line for line in result.stderr.splitlines() if line.startswith("error: ")]
    assert len(errors) == 1 and errors[0].startswith(message), result.stderr[-3000:]
    terminal = result.stdout + result.stderr
    assert "Traceback" not in terminal and "Exception during training" not in terminal, terminal[-3000:]
    assert "Terminating process" not in terminal  # the launcher stopping the other process, on purpose
    for log in ("log.txt", "log.txt.rank1"):  # both processes stopped at the same step, with the same error
        text = (out / log).read_text()
        assert "Exception during training" in text and errors[0][len("error: "):] in text, (log, text[-2000:])
    assert not (out / "model_final.pth").exists()
