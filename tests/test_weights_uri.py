"""MODEL.WEIGHTS by name (torchvision://, timm://, resnest://): the table, downloads, cache, errors, locks.

No test contacts a publisher: the files are random weights served from 127.0.0.1 (tests/loopback_server.py),
registered over the built-in entries with resnext_det.register_weights, and resolved by the real code.
"""
import hashlib
import logging
import math
import os
import re
import subprocess
import sys

import pytest
import torch
import torchvision
from detectron2.utils.file_io import PathManager

import resnext_det
from conftest import ROOT, load_tool, random_norm_statistics
from loopback_server import LoopbackServer, closed_port_url
from resnext_det import ARCHS, load_config
from resnext_det.checkpoint import BUILTIN_WEIGHTS, TIMM_ARCHS, CheckpointError, convert_state_dict, lookup_weights
from resnext_det.checkpoint import sources
from resnext_det.checkpoint.convert import _SUPPORTS
from resnext_det.checkpoint.download import MIRROR_ENV, https_url
from resnext_det.engine import Trainer, check_inputs

timm = pytest.importorskip("timm")

DEMO_CONFIG = os.path.join(ROOT, "configs", "demo", "shapes_faster_rcnn_X50_FPN.yaml")
# The demo config as for ImageNet weights: RGB, ImageNet normalization, frozen norms, tiny images.
PRETRAINED = ["MODEL.RESNEXT.NORM", "FrozenBN", "MODEL.RESNEXT.ZERO_INIT_RESIDUAL", "False",
              "MODEL.BACKBONE.FREEZE_AT", "2", "INPUT.FORMAT", "RGB",
              "MODEL.PIXEL_MEAN", "[123.675, 116.28, 103.53]", "MODEL.PIXEL_STD", "[58.395, 57.12, 57.375]",
              "INPUT.MIN_SIZE_TRAIN", "(64,)", "INPUT.MAX_SIZE_TRAIN", "64", "DATALOADER.NUM_WORKERS", "0",
              "SOLVER.IMS_PER_BATCH", "2", "SOLVER.MAX_ITER", "2", "TEST.EVAL_PERIOD", "0",
              "DATASETS.TRAIN", "('tiny_shapes_train',)", "DATASETS.TEST", "()"]


@pytest.fixture(autouse=True)
def isolated(tmp_path, monkeypatch):
    """A fresh weights cache and registry per test."""
    monkeypatch.setenv("RESNEXT_DET_CACHE", str(tmp_path / "cache"))
    monkeypatch.delenv(MIRROR_ENV, raising=False)
    monkeypatch.setattr(sources, "_registry", dict(sources._registry))


def cached_files(tmp_path):
    """Every file in the weights cache but the lock files."""
    root = tmp_path / "cache" / "weights"
    return sorted(str(p.relative_to(root)) for p in root.rglob("*") if p.is_file() and ".locks" not in p.parts)


def one_line(message):
    assert "\n" not in message and "Traceback" not in message, message
    return message


def sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def tiny_resnet50_state():
    """torchvision's ResNet-50 names and shapes, tensor i filled with i: a 100 kB file (broadcast views)."""
    shapes = torchvision.models.resnet50(weights=None).state_dict()
    return {k: torch.full((), i, dtype=v.dtype).expand(v.shape) for i, (k, v) in enumerate(shapes.items())}


def torch_bytes(state_dict) -> bytes:
    import io

    buffer = io.BytesIO()
    torch.save(state_dict, buffer)
    return buffer.getvalue()


# ---------------------------------------------------------------------------------------------
# The table and the names
# ---------------------------------------------------------------------------------------------


def test_builtin_table_holds_the_publishers_urls_and_hashes():
    from resnest.torch import resnest as official

    for entry in BUILTIN_WEIGHTS:
        assert entry.arch in ARCHS and _SUPPORTS[entry.source](ARCHS[entry.arch]), entry
        scheme, name = entry.uri.split("://")
        if scheme == "torchvision":
            weights = torchvision.models.get_model_weights(name).IMAGENET1K_V1
            assert entry.url == weights.url and weights.url.endswith(f"-{entry.sha256}.pth")
        elif scheme == "timm":
            model = name.split(".")[0]
            assert TIMM_ARCHS[model] == entry.arch
            assert entry.url == f"hf://{timm.models.get_pretrained_cfg(name).hf_hub_id}/model.safetensors"
        else:  # the official ResNeSt release: the same file name and hash digits as its package
            assert entry.url.endswith(f"/{name}-{official.short_hash(name)}.pth") and entry.sha256 == \
                official.short_hash(name)
    assert lookup_weights("torchvision://resnext101_32x8d").url == \
        "https://download.pytorch.org/models/resnext101_32x8d-8ba56ff5.pth"
    docs = open(os.path.join(ROOT, "docs", "weights.md")).read()
    assert all(f"| `{entry.uri}` | `{entry.arch}` |" in docs for entry in BUILTIN_WEIGHTS)


def test_timm_arch_rows_convert_to_their_presets():
    """Every row of TIMM_ARCHS: timm's model (random weights) converts to the preset with no key left over."""
    for name, arch in TIMM_ARCHS.items():
        if ARCHS[arch].depth > 101:  # the 152/200/269 layouts are their 50/101's with more blocks
            continue
        with torch.device("meta"):
            state = timm.create_model(name).state_dict()
        convert_state_dict(state, "timm", arch)


@pytest.mark.parametrize("uri, url, sha", [
    ("torchvision://resnet50", "https://download.pytorch.org/models/resnet50-0676ba61.pth", "0676ba61"),
    ("torchvision://resnet50/IMAGENET1K_V1", "https://download.pytorch.org/models/resnet50-0676ba61.pth", "0676ba61"),
    ("torchvision://resnext101_32x8d/IMAGENET1K_V2",
     "https://download.pytorch.org/models/resnext101_32x8d-110c445d.pth", "110c445d"),
    ("timm://resnest50d", "hf://timm/resnest50d.in1k/model.safetensors", ""),
    ("timm://seresnext101_32x4d.gluon_in1k", "hf://timm/seresnext101_32x4d.gluon_in1k/model.safetensors", ""),
    ("resnest://resnest269",
     "https://github.com/zhanghang1989/ResNeSt/releases/download/weights_step1/resnest269-0cc87c48.pth", "0cc87c48"),
])
def test_names_and_tags_resolve_through_the_publishers_catalogues(uri, url, sha):
    entry = lookup_weights(uri)
    assert (entry.url, entry.sha256) == (url, sha)


def test_hub_files_are_downloaded_from_the_hub_url():
    assert https_url("hf://timm/resnest50d.in1k/model.safetensors") == \
        "https://huggingface.co/timm/resnest50d.in1k/resolve/main/model.safetensors"


@pytest.mark.parametrize("uri, message", [
    ("torchvision://resnext101_32x8x", r"unknown weights 'torchvision://resnext101_32x8x' .*did you mean "
                                       r"torchvision://resnext101_32x8d"),
    ("torchvision://resnet50/IMAGENET1K_V3", r"ResNet50_Weights has the tags IMAGENET1K_V1, IMAGENET1K_V2"),
    ("timm://seresnext50_32x4d.in22k", r"timm has pretrained weights for seresnext50_32x4d with the tags "
                                       r"racm_in1k, gluon_in1k"),
    ("timm://seresnet18", r"not a timm model whose weights convert to a plugin preset"),
    ("resnest://resnest51", r"did you mean resnest://resnest50"),
])
def test_unknown_names_are_one_line_with_close_matches(uri, message):
    with pytest.raises(CheckpointError, match=message) as err:
        PathManager.get_local_path(uri)
    one_line(str(err.value))


def test_arch_mismatch_names_both_before_any_download(tmp_path):
    cfg = load_config(DEMO_CONFIG, ["MODEL.WEIGHTS", "torchvision://resnet50", "DATASETS.TEST", "()"])
    with pytest.raises(CheckpointError) as err:
        check_inputs(cfg)
    assert one_line(str(err.value)) == (
        "MODEL.WEIGHTS='torchvision://resnet50' holds resnet50 weights, but MODEL.RESNEXT.ARCH='resnext50_32x4d'; "
        "set MODEL.RESNEXT.ARCH resnet50, or name weights for resnext50_32x4d (docs/weights.md lists them)")
    assert cached_files(tmp_path) == []


# ---------------------------------------------------------------------------------------------
# Downloaded, converted, trained; the second time from the cache
# ---------------------------------------------------------------------------------------------


def _torchvision_file(tmp_path):
    model = random_norm_statistics(torchvision.models.resnet50())
    path = tmp_path / "resnet50-random.pth"
    torch.save(model.state_dict(), path)
    return "torchvision://resnet50", "resnet50", str(path), model.state_dict()


def _timm_file(tmp_path):
    from safetensors.torch import save_file

    model = random_norm_statistics(timm.create_model("seresnext50_32x4d"))
    path = tmp_path / "model.safetensors"
    save_file(model.state_dict(), str(path))
    return "timm://seresnext50_32x4d.gluon_in1k", "seresnext50_32x4d", str(path), model.state_dict()


@pytest.mark.parametrize("make_file", [_torchvision_file, _timm_file], ids=["torchvision", "timm"])
def test_weights_uri_trains_with_exactly_the_converted_weights(make_file, tiny_shapes, tmp_path):
    uri, arch, path, reference = make_file(tmp_path)
    data = open(path, "rb").read()
    with LoopbackServer() as server:
        server.serve("/" + os.path.basename(path), path)
        resnext_det.register_weights(uri, url=server.url("/" + os.path.basename(path)), sha256=sha256(data))
        cfg = load_config(DEMO_CONFIG, PRETRAINED + ["MODEL.RESNEXT.ARCH", arch, "MODEL.WEIGHTS", uri,
                                                     "OUTPUT_DIR", str(tmp_path / "out")])
        check_inputs(cfg)  # downloads and converts, before the model is built
        trainer = Trainer(cfg)
        trainer.resume_or_load(resume=False)  # Detectron2's checkpointer, through PathManager
        expected = convert_state_dict(reference, uri.split("://")[0], arch).state_dict
        loaded = trainer.model.backbone.bottom_up.state_dict()
        assert set(loaded) == set(expected)
        for key, value in expected.items():
            assert torch.equal(loaded[key], value), key
        trainer.train()
        losses = trainer.storage.history("total_loss").values()
        assert len(losses) == 2 and all(math.isfinite(loss) for loss, _ in losses)
        assert server.gets("/" + os.path.basename(path)) == 1
        resnext_det.resolve_weights(uri)  # a second run: from the cache
        assert server.gets("/" + os.path.basename(path)) == 1
    # and without network: the server is gone
    assert torch.load(PathManager.get_local_path(uri))["matching_heuristics"] is True
    download, converted = cached_files(tmp_path)
    assert download.startswith("downloads/127.0.0.1:") and converted.startswith(uri.replace("://", "/") + "-")


def test_c4_config_takes_a_uri_with_res5_in_its_box_head(tmp_path):
    """In C4 res5 is the box head (roi_heads.res5): Detectron2's suffix matching puts the converted
    file's res5 there, and the check before training expects it there too."""
    from detectron2.checkpoint import DetectionCheckpointer
    from detectron2.modeling import build_model

    from resnext_det.checkpoint.uri import check_weights_uri

    uri, arch, path, reference = _torchvision_file(tmp_path)
    with LoopbackServer() as server:
        server.serve("/r50.pth", path)
        resnext_det.register_weights(uri, url=server.url("/r50.pth"), sha256=sha256(open(path, "rb").read()))
        cfg = load_config(os.path.join(ROOT, "configs", "faster_rcnn_R50_C4_1x.yaml"),
                          ["MODEL.DEVICE", "cpu", "MODEL.WEIGHTS", uri])
        check_weights_uri(cfg, uri)
        model = build_model(cfg)
        DetectionCheckpointer(model).load(uri)
    expected = convert_state_dict(reference, "torchvision", arch).state_dict
    loaded = {**{k: v for k, v in model.backbone.state_dict().items()},
              **{k: v for k, v in model.roi_heads.state_dict().items() if k.startswith("res5.")}}
    assert {k for k in expected if not k.startswith("linear.")} == set(loaded)
    for key, value in loaded.items():
        assert torch.equal(value, expected[key]), key


# ---------------------------------------------------------------------------------------------
# Bad downloads: one line, nothing cached
# ---------------------------------------------------------------------------------------------

@pytest.mark.parametrize("case, message", [
    ("wrong sha256", r"the download of http://127.0.0.1:\d+/w.pth has SHA-256 [0-9a-f]{16}\.\.\., not the published "
                     r"0{16}\.\.\.: a corrupt or changed file; nothing was kept"),
    ("truncated", r"the download of http://127.0.0.1:\d+/w.pth (is truncated \(1000 of 5000 bytes\)|broke off after "
                  r"1000 bytes); nothing was kept; download again"),
    ("not a checkpoint", r"weights torchvision://resnet50: .*/w.pth is corrupt or truncated: not a file torch.save "
                         r"writes; copy or download it again; removed it from the cache$"),
    ("cut checkpoint", r"weights torchvision://resnet50: .*/w.pth is corrupt or truncated: not a file torch.save "
                       r"writes; copy or download it again; removed it from the cache$"),
    ("404", r"could not download http://127.0.0.1:\d+/w.pth: the server answered HTTP 404 Not Found; is the URL right"),
    ("no server", r"could not download http://127.0.0.1:\d+/w.pth \(URLError: \[Errno 111\] Connection refused\); no "
                  r"network\? Put the file at .*/weights/downloads/127.0.0.1:\d+/w.pth by hand .*set "
                  r"\$RESNEXT_DET_WEIGHTS_MIRROR, or convert a copy: tools/convert_pretrained.py --source torchvision "
                  r"--arch resnet50 FILE OUT.pth and set MODEL.WEIGHTS to OUT.pth$"),
    ("hub hash", r"the download of http://127.0.0.1:\d+/w.pth has SHA-256 .* not the published ffffffffffffffff"),
])
def test_bad_downloads_are_one_line_and_leave_nothing(case, message, tmp_path):
    html = b"<html>rate limited</html>" * 200
    with LoopbackServer() as server:
        url, sha = server.url("/w.pth"), ""
        if case == "wrong sha256":
            server.serve("/w.pth", html)
            sha = "0" * 64
        elif case == "truncated":
            server.serve("/w.pth", html[:1000], content_length=5000)
        elif case == "not a checkpoint":
            server.serve("/w.pth", html)
        elif case == "cut checkpoint":  # whole as served, but only the first half of a torch.save file
            data = torch_bytes(tiny_resnet50_state())
            server.serve("/w.pth", data[: len(data) // 2])
        elif case == "404":
            server.serve("/w.pth", b"", status=404)
        elif case == "no server":
            url = closed_port_url("/w.pth")
        elif case == "hub hash":
            server.serve("/w.pth", html, headers={"X-Linked-Etag": '"' + "f" * 64 + '"'})
        resnext_det.register_weights("torchvision://resnet50", url=url, sha256=sha)
        with pytest.raises(CheckpointError, match=message) as err:
            PathManager.get_local_path("torchvision://resnet50")
    one_line(str(err.value))
    assert cached_files(tmp_path) == []


def test_train_net_names_an_unreachable_uri_in_one_line(tiny_shapes, tmp_path):
    resnext_det.register_weights("torchvision://resnet50", url=closed_port_url("/resnet50.pth"))
    train_net = load_tool("train_net")
    with pytest.raises(SystemExit) as exit_:
        train_net.cli(["--config-file", DEMO_CONFIG, "MODEL.RESNEXT.ARCH", "resnet50",
                       "MODEL.WEIGHTS", "torchvision://resnet50", "OUTPUT_DIR", str(tmp_path / "out")] + PRETRAINED)
    message = one_line(exit_.value.code)
    assert message.startswith("error: weights torchvision://resnet50: could not download http://127.0.0.1:")
    assert "resnet50.pth by hand" in message and "tools/convert_pretrained.py --source torchvision" in message


def test_a_file_put_in_the_cache_by_hand_is_checked_and_used(tmp_path):
    state = tiny_resnet50_state()
    data = torch_bytes(state)
    url = closed_port_url("/models/resnet50-mine.pth")  # unreachable: the file must come from the cache
    resnext_det.register_weights("torchvision://resnet50", url=url, sha256=sha256(data)[:8])
    with pytest.raises(CheckpointError, match=r"Put the file at (\S+) by hand") as err:
        resnext_det.resolve_weights("torchvision://resnet50")
    place = re.search(r"Put the file at (\S+) by hand", str(err.value)).group(1)
    os.makedirs(os.path.dirname(place), exist_ok=True)
    with open(place, "wb") as f:
        f.write(data[:-1] + b"!")  # a damaged copy: refused and removed
    with pytest.raises(CheckpointError, match="not the published"):
        resnext_det.resolve_weights("torchvision://resnet50")
    assert not os.path.exists(place)
    with open(place, "wb") as f:
        f.write(data)
    converted = torch.load(resnext_det.resolve_weights("torchvision://resnet50"))["model"]
    assert torch.equal(converted["res5.2.conv3.weight"], state["layer4.2.conv3.weight"])


def test_mirror_serves_the_publishers_paths(tmp_path, monkeypatch):
    data = torch_bytes(tiny_resnet50_state())
    with LoopbackServer() as server:
        server.serve("/download.example.org/models/resnet50-mine.pth", data)
        monkeypatch.setenv(MIRROR_ENV, server.url("/"))
        resnext_det.register_weights("torchvision://resnet50",
                                     url="https://download.example.org/models/resnet50-mine.pth", sha256=sha256(data))
        resnext_det.resolve_weights("torchvision://resnet50")
        assert server.gets("/download.example.org/models/resnet50-mine.pth") == 1
    assert "downloads/download.example.org/models/resnet50-mine.pth" in cached_files(tmp_path)


# ---------------------------------------------------------------------------------------------
# Several processes, one download
# ---------------------------------------------------------------------------------------------

RESOLVER = """import logging, sys
logging.basicConfig(level=logging.INFO, format="%(message)s")
import resnext_det
resnext_det.register_weights("torchvision://resnet50", url=sys.argv[1], sha256=sys.argv[2])
print("RESOLVED", resnext_det.resolve_weights("torchvision://resnet50"))
"""


def test_two_processes_download_once(tmp_path):
    data = torch_bytes(tiny_resnet50_state())
    script = tmp_path / "resolve.py"
    script.write_text(RESOLVER)
    env = dict(os.environ, PYTHONPATH=ROOT, RESNEXT_DET_CACHE=str(tmp_path / "cache"))
    with LoopbackServer() as server:
        server.serve("/r50.pth", data, delay_s=2.0)  # the first download lasts long enough for the second to wait
        procs = [subprocess.Popen([sys.executable, str(script), server.url("/r50.pth"), sha256(data)], cwd=ROOT,
                                  env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
                 for _ in range(2)]
        outputs = [p.communicate(timeout=300)[0] for p in procs]
        assert [p.returncode for p in procs] == [0, 0], outputs
        assert server.gets("/r50.pth") == 1
    resolved = {line for out in outputs for line in out.splitlines() if line.startswith("RESOLVED")}
    assert len(resolved) == 1
    assert sum("Another process is downloading torchvision://resnet50; waiting for it" in out for out in outputs) == 1


# ---------------------------------------------------------------------------------------------
# tools/convert_pretrained.py takes a URI; check_inputs warns about input settings
# ---------------------------------------------------------------------------------------------


def test_convert_pretrained_takes_a_uri(tmp_path, capsys):
    state = tiny_resnet50_state()
    private = tmp_path / "private.pth"
    torch.save(state, private)
    resnext_det.register_weights("torchvision://resnet50", url=f"file://{private}")  # a private file
    load_tool("convert_pretrained").main(["torchvision://resnet50", str(tmp_path / "R50.pth")])
    out = capsys.readouterr().out
    assert "MODEL.RESNEXT.ARCH: resnet50" in out and "INPUT.FORMAT: RGB" in out
    converted = torch.load(tmp_path / "R50.pth")["model"]
    assert torch.equal(converted["backbone.bottom_up.stem.conv1.weight"], state["conv1.weight"])
    assert torch.equal(converted["backbone.bottom_up.res5.2.conv3.norm.running_var"], state["layer4.2.bn3.running_var"])
    assert cached_files(tmp_path) == [f for f in cached_files(tmp_path) if f.startswith("torchvision/")]


def test_convert_pretrained_refuses_another_arch_for_a_uri(tmp_path):
    with pytest.raises(SystemExit, match="error: torchvision://resnet50 holds resnet50 weights, not --arch "
                                         "resnext50_32x4d"):
        load_tool("convert_pretrained").main(["--arch", "resnext50_32x4d", "torchvision://resnet50",
                                              str(tmp_path / "o.pth")])


def test_input_settings_that_do_not_fit_the_weights_are_a_warning(tmp_path, caplog):
    state = tiny_resnet50_state()
    private = tmp_path / "r50.pth"
    torch.save(state, private)
    resnext_det.register_weights("torchvision://resnet50", url=str(private))
    cfg = load_config(DEMO_CONFIG, ["MODEL.RESNEXT.ARCH", "resnet50", "MODEL.WEIGHTS", "torchvision://resnet50",
                                    "DATASETS.TEST", "()", "MODEL.RESNEXT.STRIDE_IN_1X1", "True"])
    with caplog.at_level(logging.WARNING):
        check_inputs(cfg)
    warning = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert warning == ["MODEL.WEIGHTS=torchvision://resnet50 expects other input settings than the config's: "
                       "INPUT.FORMAT BGR (expected RGB); MODEL.PIXEL_MEAN [103.53, 116.28, 123.675] (expected "
                       "[123.675, 116.28, 103.53]); MODEL.PIXEL_STD [57.375, 57.12, 58.395] (expected "
                       "[58.395, 57.12, 57.375]); MODEL.RESNEXT.STRIDE_IN_1X1 True (expected False)"]


@pytest.mark.filterwarnings("ignore:pkg_resources is deprecated:UserWarning")  # detectron2.model_zoo
def test_detectron2s_own_resnet_takes_torchvision_weights_by_uri(tmp_path, caplog):
    """Detectron2's built-in ResNet (build_resnet_fpn_backbone) has the same module names: after
    `import resnext_det`, MODEL.WEIGHTS torchvision://resnet50 loads into it."""
    from detectron2 import model_zoo
    from detectron2.checkpoint import DetectionCheckpointer
    from detectron2.modeling import build_model

    state = tiny_resnet50_state()
    private = tmp_path / "r50.pth"
    torch.save(state, private)
    resnext_det.register_weights("torchvision://resnet50", url=str(private))
    cfg = load_config(model_zoo.get_config_file("COCO-Detection/faster_rcnn_R_50_FPN_1x.yaml"),
                      ["MODEL.WEIGHTS", "torchvision://resnet50", "MODEL.DEVICE", "cpu", "DATASETS.TRAIN", "()",
                       "DATASETS.TEST", "()"])
    with caplog.at_level(logging.WARNING):
        check_inputs(cfg)  # fits; Detectron2's MSRA settings are not what torchvision's weights expect
    assert "MODEL.RESNETS.STRIDE_IN_1X1 True (expected False)" in caplog.text
    model = build_model(cfg)
    DetectionCheckpointer(model).load(cfg.MODEL.WEIGHTS)
    assert torch.equal(model.backbone.bottom_up.res5[2].conv3.weight, state["layer4.2.conv3.weight"])
    assert torch.equal(model.backbone.bottom_up.stem.conv1.norm.running_var, state["bn1.running_var"])


@pytest.mark.parametrize("uri, message", [
    ("detectron2://ImageNetPretrained/MSRA/R-50.pkl",
     r"MODEL.WEIGHTS='detectron2://ImageNetPretrained/MSRA/R-50.pkl' could not be downloaded from "
     r"http://127.0.0.1:\d+/ImageNetPretrained/MSRA/R-50.pkl \(URLError: .*Connection refused.*\); without network, "
     r"put the file at .*iopath_cache/ImageNetPretrained/MSRA/R-50.pkl by hand$"),
    ("s4://bucket/w.pth", r"MODEL.WEIGHTS='s4://bucket/w.pth': no handler knows s4://; weights URIs are "
                          r"torchvision://, timm://, resnest://, and Detectron2's detectron2://, https://$"),
])
def test_detectron2s_uris_fail_in_one_line_too(uri, message, tmp_path, monkeypatch):
    from detectron2.utils.file_io import Detectron2Handler

    from resnext_det.checkpoint import check_weights_uri

    monkeypatch.setattr(Detectron2Handler, "S3_DETECTRON2_PREFIX", closed_port_url("/"))
    monkeypatch.setenv("FVCORE_CACHE", str(tmp_path / "iopath_cache"))
    cfg = load_config(DEMO_CONFIG, ["MODEL.RESNEXT.ARCH", "resnet50", "MODEL.WEIGHTS", uri])
    with pytest.raises(CheckpointError, match=message) as err:
        check_weights_uri(cfg, uri)
    one_line(str(err.value))
