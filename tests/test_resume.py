"""Resuming: atomic checkpoints, clear errors for bad ones, and a SIGKILLed run that, resumed, ends
with exactly the weights of an uninterrupted run."""
import itertools
import os
import signal
import subprocess
import sys
import textwrap
import time

import numpy as np
import pytest
import torch
from torch import nn

from conftest import ROOT

from resnext_det.checkpoint import CheckpointError
from resnext_det.engine import BAD_INPUT
from resnext_det.engine.checkpointer import AtomicCheckpointer, atomic_write
from resnext_det.engine.resumable import ResumableBatchSampler, SeededMapDataset

DEMO_CONFIG = os.path.join(ROOT, "configs", "demo", "shapes_faster_rcnn_X50_FPN.yaml")


# ---- atomic writes -------------------------------------------------------------------------------

class Abort(BaseException):
    """Stands for the process dying in the middle of a write."""


def test_atomic_write_failing_midway_keeps_the_old_file(tmp_path):
    path = tmp_path / "f"
    atomic_write(str(path), lambda f: f.write(b"old"))

    def write_then_die(f):
        f.write(b"new, half wr")
        raise Abort

    with pytest.raises(Abort):
        atomic_write(str(path), write_then_die)
    assert path.read_bytes() == b"old"
    assert os.listdir(tmp_path) == ["f"]  # no temporary file left


def test_checkpoint_killed_while_saving_leaves_last_checkpoint_loadable(tmp_path, monkeypatch):
    model = nn.Linear(3, 2)
    checkpointer = AtomicCheckpointer(model, str(tmp_path))
    checkpointer.save("model_0000001", iteration=1)
    saved = {k: v.clone() for k, v in model.state_dict().items()}

    real_save = torch.save

    def save_then_die(obj, f, *args, **kwargs):
        real_save(obj, f, *args, **kwargs)
        f.truncate(f.tell() // 2)  # half of the file is on disk when the process dies
        raise Abort

    with torch.no_grad():
        model.weight.add_(1.0)
    monkeypatch.setattr(torch, "save", save_then_die)
    with pytest.raises(Abort):
        checkpointer.save("model_0000003", iteration=3)
    monkeypatch.undo()
    assert (tmp_path / "last_checkpoint").read_text() == "model_0000001.pth"
    assert not (tmp_path / "model_0000003.pth").exists()
    assert sorted(os.listdir(tmp_path)) == ["last_checkpoint", "model_0000001.pth"]

    fresh = nn.Linear(3, 2)
    extra = AtomicCheckpointer(fresh, str(tmp_path)).resume_or_load("", resume=True)
    assert extra["iteration"] == 1
    assert all(torch.equal(fresh.state_dict()[k], saved[k]) for k in saved)

    # Dying after the checkpoint is complete but before last_checkpoint is rewritten is harmless too.
    def die(self, name):
        raise Abort

    monkeypatch.setattr(AtomicCheckpointer, "tag_last_checkpoint", die)
    with pytest.raises(Abort):
        checkpointer.save("model_0000003", iteration=3)
    monkeypatch.undo()
    assert (tmp_path / "last_checkpoint").read_text() == "model_0000001.pth"


# Saves a ~40 MB checkpoint under one name over and over until killed (as when a finished run is
# extended: its model_final.pth, named by last_checkpoint, is written again).
_SAVE_FOREVER = textwrap.dedent("""
    import os, sys, torch
    from torch import nn
    from resnext_det.engine.checkpointer import AtomicCheckpointer
    os.makedirs(sys.argv[1])
    model = nn.Linear(3200, 3200)
    checkpointer = AtomicCheckpointer(model, sys.argv[1])
    i = 0
    while True:
        checkpointer.save("model_final", iteration=i)
        print(i, flush=True)
        i += 1
""")


def test_sigkill_at_any_moment_of_saving_leaves_a_loadable_last_checkpoint(tmp_path):
    """Real SIGKILLs at several moments: the named checkpoint always loads, and is the newest or
    the one before it. The killed writer's temporary file is deleted by the next save."""
    killed_mid_write = 0
    for n, delay in enumerate((0.0, 0.15, 0.4)):
        folder = tmp_path / str(n)
        proc = subprocess.Popen([sys.executable, "-c", _SAVE_FOREVER, str(folder)], cwd=ROOT,
                                stdout=subprocess.PIPE, text=True)
        assert proc.stdout.readline().strip() == "0"  # one checkpoint saved
        time.sleep(delay)
        proc.send_signal(signal.SIGKILL)
        proc.wait()
        done = [int(line) for line in proc.stdout.read().split()] or [0]
        name = (folder / "last_checkpoint").read_text()
        iteration = torch.load(folder / name)["iteration"]
        assert name == "model_final.pth" and done[-1] <= iteration <= done[-1] + 1
        temporaries = [f for f in os.listdir(folder) if f.endswith(".tmp")]
        killed_mid_write += bool(temporaries)
        AtomicCheckpointer(nn.Linear(1, 1), str(folder)).save("model_0000009")
        assert not [f for f in os.listdir(folder) if f.endswith(".tmp")]
    assert killed_mid_write  # saving is nearly all the writer does: most kills land in a write


# ---- errors when resuming from a bad checkpoint --------------------------------------------------

def test_resume_from_missing_or_corrupt_checkpoint_says_what_to_do(tmp_path):
    model = nn.Linear(3, 2)
    AtomicCheckpointer(model, str(tmp_path)).save("model_0000001")
    (tmp_path / "last_checkpoint").write_text("model_0000009.pth")
    with pytest.raises(CheckpointError, match=r"last_checkpoint names .*model_0000009.pth, which does not exist; "
                                              r"to resume from another checkpoint, write its file name into .*"
                                              r"\(there: model_0000001.pth\), or train without --resume"):
        AtomicCheckpointer(model, str(tmp_path)).resume_or_load("", resume=True)

    data = (tmp_path / "model_0000001.pth").read_bytes()
    (tmp_path / "model_0000009.pth").write_bytes(data[: len(data) // 2])
    with pytest.raises(CheckpointError, match=r"model_0000009.pth is not a readable checkpoint \(.+\); to resume "):
        AtomicCheckpointer(model, str(tmp_path)).resume_or_load("", resume=True)
    assert issubclass(CheckpointError, BAD_INPUT)  # train_net prints it as one line


# ---- data order --------------------------------------------------------------------------------

def _take(iterator, n):
    return [next(iterator) for _ in range(n)]


@pytest.mark.parametrize("world_size", [1, 2])
def test_sampler_started_at_batch_k_continues_the_stream(world_size):
    buckets = [0, 1, 1, 0, 1, 1, 1, 0, 1, 0, 1]  # two aspect-ratio groups: batches wait for their group
    for rank in range(world_size):
        full = _take(iter(ResumableBatchSampler(buckets, 3, seed=5, rank=rank, world_size=world_size)), 20)
        for k in (1, 7, 13):
            resumed = ResumableBatchSampler(buckets, 3, seed=5, rank=rank, world_size=world_size)
            resumed.start = k
            assert _take(iter(resumed), 20 - k) == full[k:]
        assert all(len({buckets[i] for _, i in batch}) == 1 for batch in full)
    if world_size == 2:  # the ranks share out the stream: no sample seed (stream position) twice
        seeds = [s for rank in range(2) for batch in _take(iter(ResumableBatchSampler(buckets, 3, 5, rank=rank,
                                                                                      world_size=2)), 10)
                 for s, _ in batch]
        assert len(set(seeds)) == len(seeds)


def test_sampler_indices_are_detectron2_training_samplers():
    from detectron2.data.samplers import TrainingSampler

    batches = itertools.islice(iter(ResumableBatchSampler([0] * 10, 3, seed=5, rank=0, world_size=1)), 20)
    assert [i for batch in batches for _, i in batch] == list(itertools.islice(iter(TrainingSampler(10, seed=5)), 60))


def test_mapping_depends_on_the_sample_seed_only():
    dataset = SeededMapDataset(list(range(4)), lambda x: (x, np.random.rand(), torch.rand(1).item()))
    np.random.seed(0)
    torch.manual_seed(0)
    first = dataset[(123, 2)]
    after = np.random.rand(), torch.rand(1).item()
    np.random.seed(1)
    torch.manual_seed(1)
    assert dataset[(123, 2)] == first and first[0] == 2
    assert dataset[(124, 2)] != first
    np.random.seed(0)
    torch.manual_seed(0)
    assert (np.random.rand(), torch.rand(1).item()) == after  # the caller's RNGs are left alone


# ---- the whole loop: SIGKILL, --resume, same weights ------------------------------------------------

MAX_ITER = 6


def _train_command(output_dir, *extra, amp=False):
    return [sys.executable, os.path.join(ROOT, "tests", "tiny_train_net.py"), *extra, "--config-file", DEMO_CONFIG,
            "DATASETS.TRAIN", "('tiny_shapes_train',)", "DATASETS.TEST", "()", "SOLVER.IMS_PER_BATCH", "2",
            "SOLVER.MAX_ITER", str(MAX_ITER), "SOLVER.CHECKPOINT_PERIOD", "3", "DATALOADER.NUM_WORKERS", "1",
            "INPUT.MIN_SIZE_TRAIN", "(64,)", "INPUT.MAX_SIZE_TRAIN", "64", "SEED", "7", "OUTPUT_DIR", str(output_dir),
            "SOLVER.AMP.ENABLED", str(amp)]


@pytest.fixture(scope="module")
def tiny_cache(tmp_path_factory):
    from resnext_det.data import generate_shapes_dataset, shapes_dataset_root
    from resnext_det.data.synthetic import SPLITS
    from tiny_train_net import TINY_SPEC

    cache = tmp_path_factory.mktemp("tiny-shapes")
    generate_shapes_dataset(shapes_dataset_root(TINY_SPEC, cache), TINY_SPEC, SPLITS)
    return str(cache)


def _popen(command, log, cache):
    env = dict(os.environ, TINY_SHAPES_CACHE=cache, OMP_NUM_THREADS="1")
    return subprocess.Popen(command, cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)


@pytest.mark.parametrize("amp", [False, True], ids=["fp32", "bf16-amp"])
def test_sigkill_then_resume_ends_with_the_uninterrupted_weights(tmp_path, tiny_cache, amp):
    """Also with SOLVER.AMP (bf16 autocast on CPU): its steps are as deterministic as fp32's."""
    straight, killed = tmp_path / "straight", tmp_path / "killed"
    with open(tmp_path / "straight.log", "w") as straight_log, open(tmp_path / "killed.log", "w") as killed_log:
        run = _popen(_train_command(straight, amp=amp), straight_log, tiny_cache)  # both at once: same results
        victim = _popen(_train_command(killed, amp=amp), killed_log, tiny_cache)
        deadline = time.time() + 300
        while not (killed / "last_checkpoint").exists():  # model_0000002.pth: 3 of 6 iterations done
            assert victim.poll() is None and time.time() < deadline, (tmp_path / "killed.log").read_text()[-3000:]
            time.sleep(0.2)
        os.killpg(victim.pid, signal.SIGKILL)  # with its data loader worker
        victim.wait()
        assert not (killed / "model_final.pth").exists()

        resumed = _popen(_train_command(killed, "--resume", amp=amp), killed_log, tiny_cache)
        assert resumed.wait(timeout=300) == 0, (tmp_path / "killed.log").read_text()[-3000:]
        assert run.wait(timeout=300) == 0, (tmp_path / "straight.log").read_text()[-3000:]

    log = (tmp_path / "killed.log").read_text()
    assert ("training under bf16 autocast" in log) == amp
    starts = [int(line.rsplit(" ", 1)[1]) for line in log.splitlines() if "Starting training from iteration" in line]
    assert starts[0] == 0 and 3 <= starts[1] < MAX_ITER, starts
    a = torch.load(straight / "model_final.pth")
    b = torch.load(killed / "model_final.pth")
    assert a["iteration"] == b["iteration"] == MAX_ITER - 1
    diff = max((a["model"][k].double() - b["model"][k].double()).abs().max().item() for k in a["model"])
    print(f"resumed vs uninterrupted, largest weight difference: {diff}")
    assert all(torch.equal(a["model"][k], b["model"][k]) for k in a["model"]), diff
    # the optimizer state too
    sa, sb = a["trainer"]["_trainer"]["optimizer"]["state"], b["trainer"]["_trainer"]["optimizer"]["state"]
    assert all(torch.equal(sa[i][k], sb[i][k]) for i in sa for k in sa[i])
    for path in list(straight.glob("*.pth")) + list(killed.glob("*.pth")):  # 2 GB; pytest keeps tmp_path
        path.unlink()
