"""Runs do not destroy each other, and what they write stays valid: the OUTPUT_DIR lock, --resume into a
folder of another config, checkpoint writes that fail, free space, strict JSON, and the one-line exit of
every tool on paths that are not what they must be."""
import errno
import json
import os
import re
import signal
import subprocess
import sys
import time

import pytest
import torch
import yaml
from torch import nn

from conftest import ROOT, load_strict_json, load_tool, run_python
from resnext_det import load_config
from resnext_det.checkpoint import CheckpointError
from resnext_det.engine.checkpointer import AtomicCheckpointer, CheckpointWriteError
from resnext_det.engine.output_lock import OutputDirInUse, OutputDirLock
from resnext_det.engine.resume_config import ResumeArchitectureError, check_resume_config
from resnext_det.errors import PathError
from resnext_det.paths import existing_dir, readable_file, writable_dir, writable_file_path
from resnext_det.strict_json import dumps

DEMO_CONFIG = os.path.join(ROOT, "configs", "demo", "shapes_faster_rcnn_X50_FPN.yaml")
TINY = ["DATASETS.TRAIN", "('tiny_shapes_train',)", "DATASETS.TEST", "()", "SOLVER.IMS_PER_BATCH", "2",
        "INPUT.MIN_SIZE_TRAIN", "(64,)", "INPUT.MAX_SIZE_TRAIN", "64", "DATALOADER.NUM_WORKERS", "0",
        "MODEL.RESNEXT.ARCH", "resnet50", "TEST.EVAL_PERIOD", "0"]


@pytest.fixture(scope="module")
def train_net():
    return load_tool("train_net")


def _exit_line(call):
    with pytest.raises(SystemExit) as exit_:
        call()
    line = exit_.value.code
    assert isinstance(line, str) and line.startswith("error: ") and "\n" not in line, line
    return line


# ---- paths -------------------------------------------------------------------------------------------


def test_path_checks_name_the_path_and_what_it_is(tmp_path):
    a_file = tmp_path / "file.txt"
    a_file.write_text("x")
    empty = tmp_path / "empty.pth"
    empty.write_bytes(b"")
    cases = [
        (lambda: readable_file(str(tmp_path / "no.pth"), "MODEL.WEIGHTS"), rf"^MODEL.WEIGHTS='{tmp_path}/no.pth' "
                                                                           r"does not exist$"),
        (lambda: readable_file(str(tmp_path), "MODEL.WEIGHTS", "fix it"), r"is a folder, not a file; fix it$"),
        (lambda: readable_file(str(empty), "MODEL.WEIGHTS"), r"empty.pth' is empty \(0 bytes\)$"),
        (lambda: readable_file(str(a_file / "x.yaml"), "config file"), r"x.yaml does not exist \(.*file.txt is a "
                                                                         r"file, not a folder\)$"),
        (lambda: readable_file("/dev/null", "config file"), r"is not a regular file"),
        (lambda: existing_dir(str(a_file), "image folder"), r"^image folder .*file.txt is a file, not a folder$"),
        (lambda: existing_dir(str(tmp_path / "none"), "image folder"), r"none does not exist$"),
        (lambda: writable_dir(str(a_file), "OUTPUT_DIR"), r"^OUTPUT_DIR='.*file.txt' is a file, not a folder$"),
        (lambda: writable_dir(str(a_file / "out"), "OUTPUT_DIR"), r"cannot be created: .*file.txt is a file"),
        (lambda: writable_dir("/proc/out", "OUTPUT_DIR"), r"cannot be created: /proc is not writable"),
        (lambda: writable_file_path(str(tmp_path), "--json"), r"is a folder, not a file"),
        # a NUL character (found by the e2e fuzz test: os.stat raised a bare ValueError): shown escaped
        (lambda: readable_file("a\0b.pth", "MODEL.WEIGHTS"), r"^MODEL.WEIGHTS='a\\x00b.pth' contains a NUL"),
        (lambda: readable_file(f"{tmp_path}/\0", "config file"), r"^config file '.*/\\x00' contains a NUL char"),
        (lambda: existing_dir("im\0", "image folder"), r"contains a NUL character, which no file name can$"),
        (lambda: writable_file_path(f"{tmp_path}/\0/x.json", "--json"), r"^--json '.*/\\x00/x.json' contains a NUL"),
    ]
    for call, message in cases:
        with pytest.raises(PathError, match=message):
            call()
    assert writable_dir(str(tmp_path / "new" / "out"), "OUTPUT_DIR", create=True) and (tmp_path / "new" / "out").is_dir()


def _obey_permission_bits():
    """In a child process of root: drop the capabilities that let root ignore permission bits."""
    import ctypes

    libc = ctypes.CDLL(None, use_errno=True)
    for capability in (1, 2):  # CAP_DAC_OVERRIDE, CAP_DAC_READ_SEARCH, from the bounding set (kept over exec)
        if libc.prctl(24, capability, 0, 0, 0):  # PR_CAPBSET_DROP
            raise OSError(ctypes.get_errno(), "prctl(PR_CAPBSET_DROP)")


def test_unwritable_folder_is_found_by_writing(tmp_path):
    """Permission bits do not tell (root ignores them): the check writes. Run in a process that obeys them."""
    folder = tmp_path / "read_only"
    folder.mkdir()
    folder.chmod(0o555)
    code = ("import sys; from resnext_det.paths import writable_dir\n"
            "try:\n    writable_dir(sys.argv[1], 'OUTPUT_DIR')\nexcept Exception as e:\n    print(e)\n")
    result = subprocess.run([sys.executable, "-c", code, str(folder)], capture_output=True, text=True, cwd=ROOT,
                            preexec_fn=_obey_permission_bits if os.geteuid() == 0 else None)
    assert result.stdout.strip() == f"OUTPUT_DIR={str(folder)!r} is not writable (Permission denied)", result.stderr


def test_bad_config_paths_are_one_line(tmp_path):
    (tmp_path / "a.yaml").write_text("_BASE_: b.yaml\n")
    (tmp_path / "b.yaml").write_text("_BASE_: a.yaml\n")
    (tmp_path / "base_missing.yaml").write_text("_BASE_: none.yaml\nSOLVER:\n  BASE_LR: 0.1\n")
    (tmp_path / "empty.yaml").write_text("# nothing\n")
    (tmp_path / "list.yaml").write_text("- SOLVER\n")
    (tmp_path / "binary.yaml").write_bytes(b"\xff\xfe\x00\x01")
    (tmp_path / "group.yaml").write_text("MODEL: 3\n")
    (tmp_path / "type.yaml").write_text("SOLVER:\n  STEPS: [1000, 'x']\n")
    (tmp_path / "nul_base.yaml").write_text('_BASE_: "\\0"\n')
    cases = {
        "a.yaml": r"a.yaml: its _BASE_ chain loops: .*a.yaml -> .*b.yaml -> .*a.yaml$",
        "base_missing.yaml": r"config file \(the _BASE_ of .*base_missing.yaml\) .*none.yaml does not exist; fix _BASE_",
        "empty.yaml": r"empty.yaml' holds no settings \(it is empty or only comments\)$",
        "list.yaml": r"list.yaml' holds a YAML list, not a mapping of config keys",
        "binary.yaml": r"binary.yaml' is not UTF-8 text; is it a YAML config\?$",
        "group.yaml": r"group.yaml: MODEL is a group of keys \(LOAD_PROPOSALS, MASK_ON, KEYPOINT_ON, \.\.\.\), not a "
                      r"value: got 3$",
        "type.yaml": r"type.yaml: SOLVER.STEPS=\[1000, 'x'\] does not have the element types of its default \(30000,\)$",
        "missing.yaml": r"config file '.*missing.yaml' does not exist",
        "nul_base.yaml": r"config file \(the _BASE_ of .*nul_base.yaml\) '.*/\\x00' contains a NUL character, "
                         r"which no file name can; fix _BASE_",
        "": None,
    }
    for name, message in cases.items():
        if message is None:
            continue
        with pytest.raises(PathError if "exist" in message else Exception, match=message) as err:
            load_config(str(tmp_path / name))
        assert "\n" not in str(err.value) and type(err.value).__module__.startswith("resnext_det")
    with pytest.raises(PathError, match=r"config file .* is a folder, not a file"):
        load_config(str(tmp_path))


# ---- one run per OUTPUT_DIR -----------------------------------------------------------------------------

_HOLD = ("import sys, time; from resnext_det.engine.output_lock import OutputDirLock\n"
         "lock = OutputDirLock(sys.argv[1]).acquire(); print('held', flush=True); time.sleep(300)\n")


def _holder(folder):
    proc = subprocess.Popen([sys.executable, "-c", _HOLD, str(folder)], stdout=subprocess.PIPE, text=True,
                            env=dict(os.environ, PYTHONPATH=ROOT))
    assert proc.stdout.readline().strip() == "held"
    return proc


def test_a_second_run_into_a_held_output_dir_stops_and_a_killed_run_leaves_no_stale_lock(tmp_path, train_net):
    out = tmp_path / "out"
    holder = _holder(out)
    try:
        with pytest.raises(OutputDirInUse, match=rf"^OUTPUT_DIR='{out}' is in use by another run \(training, pid "
                                                 rf"{holder.pid} on .*, started .*\); wait for it to end or stop it, "
                                                 r"or choose another OUTPUT_DIR$"):
            OutputDirLock(str(out)).acquire()
        line = _exit_line(lambda: train_net.cli(["--config-file", DEMO_CONFIG, "OUTPUT_DIR", str(out)]))
        assert f"is in use by another run (training, pid {holder.pid}" in line
        assert not (out / "config.yaml").exists()  # the live run's files are untouched
    finally:
        holder.send_signal(signal.SIGKILL)
        holder.wait()
    with OutputDirLock(str(out), "evaluation"):  # the kernel released the killed run's lock
        assert json.loads((out / ".resnext_det.lock").read_text())["purpose"] == "evaluation"
    OutputDirLock(str(out)).acquire().release()  # and this one released its own


# ---- --resume into a folder of another config --------------------------------------------------------------


def _saved_run(folder, opts):
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "config.yaml").write_text(load_config(DEMO_CONFIG, opts).dump())
    (folder / "last_checkpoint").write_text("model_0000009.pth")
    return str(folder)


def test_resume_with_other_settings_warns_with_the_keys(tmp_path):
    out = _saved_run(tmp_path / "run", ["SOLVER.BASE_LR", "0.02", "SOLVER.MAX_ITER", "600"])
    cfg = load_config(DEMO_CONFIG, ["SOLVER.BASE_LR", "0.01", "SOLVER.MAX_ITER", "900", "OUTPUT_DIR", out])
    assert check_resume_config(cfg, out) == [
        f"--resume: this config differs from {out}/config.yaml (the run being resumed) in 2 keys: "
        "SOLVER.BASE_LR 0.02 -> 0.01, SOLVER.MAX_ITER 600 -> 900"]
    same = load_config(DEMO_CONFIG, ["SOLVER.BASE_LR", "0.02", "SOLVER.MAX_ITER", "600", "OUTPUT_DIR", out])
    assert check_resume_config(same, out) == []


def test_resume_with_another_model_is_refused(tmp_path, train_net):
    out = _saved_run(tmp_path / "run", [])
    cfg = load_config(DEMO_CONFIG, ["MODEL.RESNEXT.ARCH", "resnet50", "SOLVER.BASE_LR", "0.5"])
    with pytest.raises(ResumeArchitectureError, match=r"^--resume: the model of this config differs from the one the "
                                                      rf"run in {out} trained \(MODEL.RESNEXT.ARCH 'resnext50_32x4d' -> "
                                                      r"'resnet50'; 176 tensors differ, e.g. backbone.bottom_up.res2.0."
                                                      r"conv1.norm.bias: \(128,\) -> \(64,\)\); resume with the model "
                                                      r"settings of"):
        check_resume_config(cfg, out)
    line = _exit_line(lambda: train_net.cli(["--resume", "--config-file", DEMO_CONFIG, "MODEL.RESNEXT.ARCH", "resnet50",
                                             "OUTPUT_DIR", out]))
    assert "--resume: the model of this config differs" in line
    assert "resnext50_32x4d" in (tmp_path / "run" / "config.yaml").read_text()  # not overwritten


def test_resuming_a_checkpoint_of_another_model_is_refused(tmp_path):
    AtomicCheckpointer(nn.Linear(3, 2), str(tmp_path)).save("model_0000001")
    with pytest.raises(CheckpointError, match=r"^--resume: .*model_0000001.pth holds a model other than the one this "
                                              r"config builds \(2 tensors differ, e.g. bias: \(2,\) in the checkpoint, "
                                              r"\(4,\) in the model\)"):
        AtomicCheckpointer(nn.Linear(3, 4), str(tmp_path)).resume_or_load("", resume=True)


# ---- checkpoint writes that fail, free space ------------------------------------------------------------


def test_failed_checkpoint_write_keeps_the_previous_one_and_says_so(tmp_path, monkeypatch):
    model = nn.Linear(3, 2)
    checkpointer = AtomicCheckpointer(model, str(tmp_path))
    checkpointer.save("model_0000001", iteration=1)

    def disk_full(obj, f, *args, **kwargs):
        f.write(b"partial")
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(torch, "save", disk_full)
    with pytest.raises(CheckpointWriteError, match=rf"^could not write {tmp_path}/model_0000003.pth \(No space left on "
                                                   r"device\); the previous checkpoint model_0000001.pth is intact and "
                                                   r"last_checkpoint names it: free space and rerun with --resume"):
        checkpointer.save("model_0000003", iteration=3)
    monkeypatch.undo()
    assert sorted(os.listdir(tmp_path)) == ["last_checkpoint", "model_0000001.pth"]  # no partial file
    assert AtomicCheckpointer(nn.Linear(3, 2), str(tmp_path)).resume_or_load("", resume=True)["iteration"] == 1


def test_training_stops_with_one_line_when_a_checkpoint_cannot_be_written(tiny_shapes, tmp_path, monkeypatch,
                                                                          train_net):
    from resnext_det.engine import checkpointer

    real, calls = checkpointer.atomic_write, []

    def final_checkpoint_fails(path, write):
        calls.append(path)
        if path.endswith("model_final.pth"):
            raise OSError(errno.ENOSPC, "No space left on device")
        return real(path, write)

    monkeypatch.setattr(checkpointer, "atomic_write", final_checkpoint_fails)
    out = tmp_path / "out"
    line = _exit_line(lambda: train_net.cli(["--config-file", DEMO_CONFIG] + TINY + [
        "SOLVER.MAX_ITER", "4", "SOLVER.CHECKPOINT_PERIOD", "2", "OUTPUT_DIR", str(out)]))
    assert line == (f"error: could not write {out}/model_final.pth (No space left on device); the previous "
                    "checkpoint model_0000003.pth is intact and last_checkpoint names it: free space and rerun with "
                    "--resume to continue from it")
    assert (out / "last_checkpoint").read_text() == "model_0000003.pth"
    log = (out / "log.txt").read_text()
    assert "Exception during training" in log and "Traceback" in log  # the detail stays in the log


def test_a_disk_without_room_for_one_checkpoint_stops_before_training(tiny_shapes, tmp_path, monkeypatch, train_net):
    import shutil

    from resnext_det import paths

    usage = shutil.disk_usage(tmp_path)
    monkeypatch.setattr(paths.shutil, "disk_usage", lambda p: usage._replace(free=5_000_000))
    line = _exit_line(lambda: train_net.cli(["--config-file", DEMO_CONFIG] + TINY + [
        "SOLVER.MAX_ITER", "2", "OUTPUT_DIR", str(tmp_path / "out")]))
    assert re.fullmatch(rf"error: OUTPUT_DIR='{tmp_path}/out' is on a disk with 5.0 MB free, less than the \d+\.\d MB "
                        r"one checkpoint of this model needs; free space or choose another folder", line), line
    assert "total_loss" not in (tmp_path / "out" / "metrics.json").read_text()  # not one step
    assert not (tmp_path / "out" / "model_final.pth").exists()


# ---- strict JSON ---------------------------------------------------------------------------------------


def test_metrics_json_is_strict_json_with_a_note_for_nan(tmp_path):
    from detectron2.utils.events import EventStorage

    from resnext_det.engine.writers import StrictJSONWriter

    writer = StrictJSONWriter(str(tmp_path / "metrics.json"))
    with EventStorage(0) as storage:
        storage.put_scalars(total_loss=0.5, smoothing_hint=False)
        storage.put_scalars(**{"bbox/AP": 12.5, "bbox/APl": float("nan")}, smoothing_hint=False)
        writer.write()
    writer.close()
    record = load_strict_json((tmp_path / "metrics.json").read_text())
    assert record == {"bbox/AP": 12.5, "bbox/APl": None, "iteration": 0, "total_loss": 0.5,
                      "non_finite_as_null": {"bbox/APl": "NaN"}}
    assert dumps({"a": [1.0, float("inf")]}) == '{"a": [1.0, null], "non_finite_as_null": {"a[1]": "Infinity"}}'


# ---- no traceback on the terminal -------------------------------------------------------------------------


def test_a_bad_image_during_training_is_one_line_on_the_terminal_and_a_traceback_in_the_log(tmp_path):
    """tools/train_net.py as a user runs it: the one line on stderr; Detectron2's "Exception during
    training" traceback only in OUTPUT_DIR/log.txt."""
    from test_bad_input import GOOD, RUNNER, write_coco

    root = str(tmp_path / "data")
    json_file = write_coco(root, GOOD * 2)
    with open(os.path.join(root, "003.png"), "r+b") as f:  # its header still reads: found when decoded
        f.truncate(os.path.getsize(os.path.join(root, "003.png")) // 2)
    (tmp_path / "run.py").write_text(RUNNER)
    out = tmp_path / "out"
    result = run_python([str(tmp_path / "run.py"), "user_set", json_file, root, "--config-file", DEMO_CONFIG] + TINY
                        + ["DATASETS.TRAIN", "('user_set',)", "SOLVER.MAX_ITER", "4", "MODEL.ROI_HEADS.NUM_CLASSES",
                           "1", "OUTPUT_DIR", str(out)])
    assert result.returncode == 1
    assert result.stderr.strip().splitlines()[-1].startswith("error: image ") and "003.png" in result.stderr
    terminal = result.stdout + result.stderr
    assert "Traceback" not in terminal and "Exception during training" not in terminal, terminal[-3000:]
    log = (out / "log.txt").read_text()
    assert "Exception during training" in log and "Traceback" in log


def test_dataset_paths_of_the_wrong_kind_are_named(tmp_path):
    from detectron2.data import DatasetCatalog, MetadataCatalog
    from detectron2.data.datasets import register_coco_instances

    from resnext_det.data import check_dataset_available

    (tmp_path / "images").write_text("not a folder")
    (tmp_path / "ann.json").mkdir()
    register_coco_instances("paths_of_wrong_kind", {}, str(tmp_path / "ann.json"), str(tmp_path / "images"))
    try:
        with pytest.raises(PathError, match=rf"^dataset 'paths_of_wrong_kind': annotation file {tmp_path}/ann.json is "
                                            r"a folder, not a file; pass the COCO-format .json of the dataset$"):
            check_dataset_available("paths_of_wrong_kind")
        (tmp_path / "ann.json").rmdir()
        (tmp_path / "ann.json").write_text("{}")
        with pytest.raises(PathError, match=r"^dataset 'paths_of_wrong_kind': image folder .*images is a file, not a "
                                            r"folder; pass the folder the json's file_name entries are relative to$"):
            check_dataset_available("paths_of_wrong_kind")
    finally:
        DatasetCatalog.remove("paths_of_wrong_kind")
        MetadataCatalog.remove("paths_of_wrong_kind")
