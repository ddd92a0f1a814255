"""Weights files and YAML configs are data: no path runs code from them.

Each malicious file would create a marker file when loaded the unsafe way (plain ``pickle.load``,
``torch.load(weights_only=False)``, ``yaml.unsafe_load``). Every test loads it through one path of the
tools (MODEL.WEIGHTS and its checks, ``--resume`` from ``last_checkpoint``, ``--eval-only``, export,
conversion, the checkpointer itself, ``load_config`` and its ``_BASE_`` chain) and asserts that the marker
does not appear and that the user gets one line naming the file. Valid files of the same formats load."""
import os
import pickle
import shlex
import textwrap

import numpy as np
import pytest
import torch
from torch import nn

from conftest import ROOT, load_tool, run_python

from resnext_det import ConfigError, load_config
from resnext_det.checkpoint import CheckpointError, read_state_dict
from resnext_det.checkpoint.io import UnsafeCheckpointError
from resnext_det.engine import check_inputs
from resnext_det.engine.checkpointer import AtomicCheckpointer, SafeCheckpointer

BASE = os.path.join(ROOT, "configs", "Base-RCNN-FPN.yaml")
# A small model and a short run on the tiny shapes dataset: building it is what the tools do before loading.
SMALL = ["MODEL.DEVICE", "cpu", "MODEL.RESNEXT.ARCH", "resnet50", "MODEL.ROI_HEADS.NUM_CLASSES", "6",
         "MODEL.RESNEXT.NORM", "BN", "MODEL.BACKBONE.FREEZE_AT", "0",
         "INPUT.MIN_SIZE_TRAIN", "(64,)", "INPUT.MAX_SIZE_TRAIN", "64", "INPUT.MIN_SIZE_TEST", "64",
         "INPUT.MAX_SIZE_TEST", "64", "DATALOADER.NUM_WORKERS", "0", "SOLVER.IMS_PER_BATCH", "2",
         "SOLVER.MAX_ITER", "2", "SOLVER.REFERENCE_WORLD_SIZE", "0", "TEST.EVAL_PERIOD", "0",
         "DATASETS.TRAIN", "('tiny_shapes_train',)", "DATASETS.TEST", "('tiny_shapes_val',)"]
FORMATS = ["zip.pth", "legacy.pth", "evil.pkl"]
NEEDS_CODE = "needs code to load (posix.system); weights files are read as data, never run: re-save it as a " \
             "plain state dict"


class RunsCode:
    """Unpickled the unsafe way, this creates ``marker``: what a malicious weights file would do."""

    def __init__(self, marker):
        self.marker = str(marker)

    def __reduce__(self):
        return os.system, (f"touch {shlex.quote(self.marker)}",)


def write_malicious(path, marker):
    """A weights file of ``path``'s format (zip .pth, legacy .pth, .pkl) holding real weights and a
    payload: tensors for a .pth, numpy arrays for a .pkl."""
    path = str(path)
    if path.endswith(".pkl"):
        with open(path, "wb") as f:
            pickle.dump({"model": {"weight": np.zeros((2, 3), np.float32)}, "__author__": RunsCode(marker)}, f)
    else:
        data = {"model": {"weight": torch.zeros(2, 3)}, "iteration": RunsCode(marker)}
        torch.save(data, path, _use_new_zipfile_serialization=not path.endswith("legacy.pth"))
    return path


@pytest.fixture
def marker(tmp_path):
    path = tmp_path / "marker"
    yield path
    assert not path.exists(), "a weights file or config ran code"


def test_the_payload_runs_when_loaded_unsafely(tmp_path):
    """The test files are real attacks: loaded as Detectron2 and plain torch.load(weights_only=False) load
    them, each creates its marker. (Every other test asserts that the marker does not appear.)"""
    for name in FORMATS:
        marker = tmp_path / f"{name}.marker"
        path = write_malicious(tmp_path / name, marker)
        if name.endswith(".pkl"):
            with open(path, "rb") as f:
                pickle.load(f)
        else:
            torch.load(path, weights_only=False)
        assert marker.exists(), name


def one_error_line(exit_info, *parts):
    """A tool's SystemExit: nonzero, one ``error:`` line (what Python prints to stderr) holding ``parts``."""
    code = exit_info.value.code
    assert isinstance(code, str) and code.startswith("error: ") and "\n" not in code, code
    for part in parts:
        assert part in code, code
    return code


# ---- the checkpointer every tool loads with ---------------------------------------------------------------

@pytest.mark.parametrize("name", FORMATS)
@pytest.mark.parametrize("checkpointer", [SafeCheckpointer, AtomicCheckpointer])
def test_checkpointer_refuses_files_that_need_code(tmp_path, marker, name, checkpointer):
    path = write_malicious(tmp_path / name, marker)
    model = nn.Linear(3, 2)
    before = model.weight.detach().clone()
    with pytest.raises(UnsafeCheckpointError) as error:
        checkpointer(model).load(path)
    assert str(error.value).startswith(f"{path} {NEEDS_CODE}"), str(error.value)
    assert "tools/convert_pretrained.py from a trusted source" in str(error.value)
    assert torch.equal(model.weight, before)  # nothing was loaded


@pytest.mark.parametrize("name", ["zip.pth", "legacy.pth"])
def test_weights_only_is_explicit_so_the_torch_opt_out_variable_does_not_apply(tmp_path, marker, name, monkeypatch):
    """TORCH_FORCE_NO_WEIGHTS_ONLY_LOAD turns off weights_only where torch.load is called without it
    (as fvcore's checkpointer calls it); every read of the plugin passes weights_only=True."""
    monkeypatch.setenv("TORCH_FORCE_NO_WEIGHTS_ONLY_LOAD", "1")
    path = write_malicious(tmp_path / name, marker)
    with pytest.raises(UnsafeCheckpointError, match="needs code to load"):
        AtomicCheckpointer(nn.Linear(3, 2)).load(path)
    with pytest.raises(CheckpointError, match="needs code to load"):
        read_state_dict(path)


@pytest.mark.parametrize("name", FORMATS)
def test_read_state_dict_refuses_files_that_need_code(tmp_path, marker, name):
    path = write_malicious(tmp_path / name, marker)
    with pytest.raises(CheckpointError, match=f"^{path} needs code to load"):
        read_state_dict(path)


@pytest.mark.parametrize("protocol", [2, 4, 5])
def test_detectron2_model_zoo_pkl_of_numpy_arrays_loads(tmp_path, protocol):
    """Detectron2's model zoo format ({"model": {name: ndarray}, "__author__": ...}) and Caffe2's
    ({"blobs": ...}), in the pickle protocols numpy writes differently (protocol 2: bytes through
    _codecs.encode; 5: _frombuffer), load into the model through the checkpointer and the checks."""
    weight = np.arange(6, dtype=np.float32).reshape(2, 3)
    bias = np.array([0.5, -1.5], dtype=np.float64).astype(np.float32)
    zoo, caffe2 = tmp_path / "zoo.pkl", tmp_path / "caffe2.pkl"
    zoo.write_bytes(pickle.dumps({"model": {"weight": weight, "bias": bias}, "__author__": "Detectron2 Model Zoo",
                                  "matching_heuristics": False}, protocol=protocol))
    caffe2.write_bytes(pickle.dumps({"blobs": {"weight": weight, "bias": bias, "weight_momentum": weight},
                                     "extra": np.float32(1.0)}, protocol=protocol))
    for path in (zoo, caffe2):
        model = nn.Linear(3, 2)
        AtomicCheckpointer(model).load(str(path))
        assert torch.equal(model.weight.detach(), torch.from_numpy(weight)), path
        assert torch.equal(model.bias.detach(), torch.from_numpy(bias)), path
        read = read_state_dict(str(path))
        assert torch.equal(read["weight"], torch.from_numpy(weight)) and read["bias"].dtype == torch.float32


@pytest.mark.parametrize("legacy", [False, True])
def test_plain_state_dicts_and_checkpoints_load(tmp_path, legacy):
    """torchvision-style state dicts and the trainer's own checkpoints (with optimizer state and the
    iteration), in the zip and the legacy format."""
    source = nn.Linear(3, 2)
    optimizer = torch.optim.SGD(source.parameters(), lr=0.1, momentum=0.9)
    source(torch.randn(4, 3)).sum().backward()
    optimizer.step()
    plain, full = tmp_path / "plain.pth", tmp_path / "model_final.pth"
    torch.save(source.state_dict(), plain, _use_new_zipfile_serialization=not legacy)
    torch.save({"model": source.state_dict(), "optimizer": optimizer.state_dict(), "iteration": 7}, full,
               _use_new_zipfile_serialization=not legacy)
    model = nn.Linear(3, 2)
    AtomicCheckpointer(model).load(str(plain))
    assert torch.equal(model.weight, source.weight)
    model = nn.Linear(3, 2)
    resumed = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9)
    extra = AtomicCheckpointer(model, optimizer=resumed).load(str(full))
    assert extra["iteration"] == 7 and torch.equal(model.bias, source.bias)
    assert resumed.state_dict()["state"][0]["momentum_buffer"].abs().sum() > 0


# ---- the tools --------------------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def train_net():
    return load_tool("train_net")


@pytest.fixture
def config_file(tmp_path):
    path = tmp_path / "small.yaml"
    path.write_text(f"_BASE_: {BASE}\n")
    return str(path)


def output_dir_resuming_from(tmp_path, path):
    """An OUTPUT_DIR whose last_checkpoint names ``path`` (a file in it)."""
    out = tmp_path / "out"
    out.mkdir(exist_ok=True)
    (out / "last_checkpoint").write_text(os.path.basename(path))
    return out


@pytest.mark.parametrize("name", FORMATS)
def test_model_weights_that_need_code_are_refused_by_the_checks(tiny_shapes, tmp_path, marker, config_file, name):
    path = write_malicious(tmp_path / name, marker)
    cfg = load_config(config_file, SMALL + ["MODEL.WEIGHTS", path, "OUTPUT_DIR", str(tmp_path / "out")])
    with pytest.raises(CheckpointError) as error:
        check_inputs(cfg)
    assert str(error.value).startswith(f"MODEL.WEIGHTS: {path} {NEEDS_CODE}"), str(error.value)


@pytest.mark.parametrize("eval_only", [False, True])
def test_train_net_model_weights_that_need_code_are_one_line(train_net, tiny_shapes, tmp_path, marker, config_file,
                                                             eval_only):
    path = write_malicious(tmp_path / "zip.pth", marker)
    with pytest.raises(SystemExit) as exit_:
        train_net.cli(["--config-file", config_file] + ["--eval-only"] * eval_only + SMALL
                      + ["MODEL.WEIGHTS", path, "OUTPUT_DIR", str(tmp_path / "out")])
    one_error_line(exit_, path, NEEDS_CODE)


@pytest.mark.parametrize("name, eval_only", [("zip.pth", False), ("legacy.pth", False), ("evil.pkl", False),
                                             ("evil.pkl", True), ("legacy.pth", True)])
def test_train_net_resume_from_a_checkpoint_that_needs_code_is_one_line(train_net, tiny_shapes, tmp_path, marker,
                                                                        config_file, name, eval_only):
    """--resume skips the MODEL.WEIGHTS checks and reads what last_checkpoint names: the checkpointer
    itself refuses it (training, and --eval-only --resume)."""
    out = output_dir_resuming_from(tmp_path, tmp_path / "out" / name)
    path = write_malicious(out / name, marker)
    with pytest.raises(SystemExit) as exit_:
        train_net.cli(["--config-file", config_file, "--resume"] + ["--eval-only"] * eval_only + SMALL
                      + ["OUTPUT_DIR", str(out)])
    one_error_line(exit_, f"error: --resume: {path} {NEEDS_CODE}")


def test_trainer_resume_or_load_refuses_a_checkpoint_that_needs_code(tiny_shapes, tmp_path, marker, config_file):
    from resnext_det.engine import Trainer

    out = output_dir_resuming_from(tmp_path, tmp_path / "out" / "model_0000001.pth")
    write_malicious(out / "model_0000001.pth", marker)
    trainer = Trainer(load_config(config_file, SMALL + ["OUTPUT_DIR", str(out)]))
    with pytest.raises(UnsafeCheckpointError, match="^--resume: .*model_0000001.pth needs code to load"):
        trainer.resume_or_load(resume=True)
    assert trainer.start_iter == 0


def test_train_net_resume_as_a_process_ends_with_one_error_line(tiny_shapes, tmp_path, marker, config_file):
    """The real command line: exit code 1, the last stderr line is the error, no traceback."""
    out = output_dir_resuming_from(tmp_path, tmp_path / "out" / "model_final.pkl")
    path = write_malicious(out / "model_final.pkl", marker)
    runner = tmp_path / "runner.py"
    runner.write_text(textwrap.dedent(f"""\
        import runpy, sys
        from resnext_det.data import ShapesSpec, register_shapes_datasets
        register_shapes_datasets(ShapesSpec(num_train=8, num_val=4), prefix="tiny_shapes",
                                 cache_dir={str(tmp_path / "shapes")!r})
        sys.argv = ["tools/train_net.py"] + sys.argv[1:]
        runpy.run_path("tools/train_net.py", run_name="__main__")
        """))
    result = run_python([str(runner), "--config-file", config_file, "--resume"] + SMALL + ["OUTPUT_DIR", str(out)],
                        env={"OMP_NUM_THREADS": "1"}, timeout=300)
    assert result.returncode == 1, result.stderr[-3000:]
    last = result.stderr.strip().splitlines()[-1]
    assert last.startswith(f"error: --resume: {path} {NEEDS_CODE}"), result.stderr[-3000:]
    assert "Traceback" not in result.stderr


@pytest.mark.parametrize("name", ["legacy.pth", "evil.pkl"])
def test_export_model_refuses_weights_that_need_code(tmp_path, marker, config_file, name):
    path = write_malicious(tmp_path / name, marker)
    with pytest.raises(SystemExit) as exit_:
        load_tool("export_model").main(["--config-file", config_file, "--format", "torchscript",
                                        "--output-dir", str(tmp_path / "export")] + SMALL + ["MODEL.WEIGHTS", path])
    one_error_line(exit_, path, NEEDS_CODE)
    assert not os.listdir(tmp_path / "export")


@pytest.mark.parametrize("name, source", [("zip.pth", "torchvision"), ("legacy.pth", "torchvision"),
                                          ("evil.pkl", "detectron")])
def test_convert_pretrained_refuses_input_that_needs_code(tmp_path, marker, name, source):
    path = write_malicious(tmp_path / name, marker)
    output = tmp_path / "converted.pth"
    with pytest.raises(SystemExit) as exit_:
        load_tool("convert_pretrained").main(["--source", source, "--arch", "resnet50", path, str(output)])
    one_error_line(exit_, path, NEEDS_CODE)
    assert not output.exists()


# ---- YAML configs ------------------------------------------------------------------------------------------

def write_tagged_yaml(path, marker):
    """A config whose MAX_ITER is a Python tag: yaml.unsafe_load (Detectron2's fallback) would run it."""
    path.write_text(f"_BASE_: {BASE}\nSOLVER:\n  BASE_LR: 0.01\n"
                    f"  MAX_ITER: !!python/object/apply:os.system [\"touch {marker}\"]\n")
    return str(path)


def test_the_yaml_payload_runs_when_loaded_unsafely(tmp_path):
    import yaml

    marker = tmp_path / "marker"
    with open(write_tagged_yaml(tmp_path / "evil.yaml", marker)) as f:
        yaml.unsafe_load(f)
    assert marker.exists()


def test_load_config_refuses_python_tags_naming_file_and_line(tmp_path, marker):
    path = write_tagged_yaml(tmp_path / "evil.yaml", marker)
    with pytest.raises(ConfigError) as error:
        load_config(path)
    message = str(error.value)
    assert message.startswith(f"{path}, line 4: could not determine a constructor for the tag "
                              "'tag:yaml.org,2002:python/object/apply:os.system'; configs are data, not code"), message
    assert "\n" not in message


def test_a_base_with_python_tags_is_refused(tmp_path, marker):
    evil = write_tagged_yaml(tmp_path / "evil.yaml", marker)
    child = tmp_path / "child.yaml"
    child.write_text("_BASE_: evil.yaml\nSOLVER:\n  MAX_ITER: 10\n")
    with pytest.raises(ConfigError, match=f"^{evil}, line 4: .*python/object/apply:os.system'; configs are data"):
        load_config(str(child))


def test_a_base_given_as_a_url_is_read_safely(tmp_path, marker, monkeypatch):
    """A _BASE_ URL is not read by the chain check, but Detectron2 reads it with allow_unsafe=False."""
    from loopback_server import LoopbackServer

    monkeypatch.setenv("FVCORE_CACHE", str(tmp_path / "iopath_cache"))
    evil = tmp_path / "served.yaml"
    evil.write_text(f"SOLVER:\n  MAX_ITER: !!python/object/apply:os.system [\"touch {marker}\"]\n")
    with LoopbackServer() as server:
        server.serve("/evil.yaml", str(evil))
        child = tmp_path / "child.yaml"
        child.write_text(f"_BASE_: {server.url('/evil.yaml')}\n")
        with pytest.raises(ConfigError, match=r", line 2: .*python/object/apply:os.system'; configs are data"):
            load_config(str(child))


def test_train_net_config_with_python_tags_is_one_line(train_net, tmp_path, marker):
    evil = write_tagged_yaml(tmp_path / "evil.yaml", marker)
    child = tmp_path / "child.yaml"
    child.write_text("_BASE_: evil.yaml\n")
    with pytest.raises(SystemExit) as exit_:
        train_net.cli(["--config-file", str(child), "OUTPUT_DIR", str(tmp_path / "out")])
    one_error_line(exit_, f"error: {evil}, line 4: ", "configs are data, not code")
    assert not (tmp_path / "out").exists()


def test_safe_yaml_keeps_loading(tmp_path):
    path = tmp_path / "ok.yaml"
    path.write_text(f"_BASE_: {BASE}\nSOLVER:\n  MAX_ITER: 10\n  STEPS: (4, 8)\nMODEL:\n  RESNEXT:\n"
                    "    ARCH: resnet50\n")
    cfg = load_config(str(path))
    assert cfg.SOLVER.MAX_ITER == 10 and tuple(cfg.SOLVER.STEPS) == (4, 8) and cfg.MODEL.RESNEXT.ARCH == "resnet50"


def test_shipped_configs_are_plain_data():
    """Every YAML config of the project reads with yaml.SafeLoader; RetinaNet's anchor sizes, which
    Detectron2's Base-RetinaNet.yaml computes with a Python tag, are written out with the same values."""
    import glob

    import yaml

    files = glob.glob(os.path.join(ROOT, "configs", "**", "*.yaml"), recursive=True)
    assert len(files) > 40
    for path in files:
        with open(path, encoding="utf-8") as f:
            assert isinstance(yaml.safe_load(f), dict), path
    cfg = load_config(os.path.join(ROOT, "configs", "retinanet_R50_FPN_1x.yaml"))
    assert [list(s) for s in cfg.MODEL.ANCHOR_GENERATOR.SIZES] == \
        [[x, x * 2 ** (1.0 / 3), x * 2 ** (2.0 / 3)] for x in [32, 64, 128, 256, 512]]
