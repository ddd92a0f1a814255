"""Measurement for tools/benchmark.py: interleaved timing, peak memory, the modes models are compared in
(precision, compiled or eager), and the peer models we are compared with (Detectron2's built-in
ResNet/ResNeXt, timm), given the same weights as ours."""
import copy
import statistics
import threading
import time
from dataclasses import dataclass, field
from typing import Callable, Dict, List, Optional

import torch
from torch import nn

from .archs import ArchSpec
from .errors import ConfigError
from .precision import PRECISIONS, backbone_part

__all__ = ["Timing", "interleaved", "peak_memory", "detectron2_backbone_peer", "timm_backbone_peer",
           "detectron2_detector_peer", "detectron2_dcn_unavailable", "TIMM_NAMES", "time_agree", "Mode",
           "modes", "fused_copy", "peer_in_mode", "autocast_call", "top_ops"]

# Our preset -> timm's model of the same architecture (timm's "d"/"e" ResNeSts are ours: deep stem,
# avg-down shortcut, avd).
TIMM_NAMES = {"resnet50": "resnet50", "resnet101": "resnet101", "resnet152": "resnet152",
              "resnext50_32x4d": "resnext50_32x4d", "resnext101_32x4d": "resnext101_32x4d",
              "resnext101_32x8d": "resnext101_32x8d", "resnext101_64x4d": "resnext101_64x4d",
              "seresnext50_32x4d": "seresnext50_32x4d", "seresnext101_32x4d": "seresnext101_32x4d",
              "seresnext101_32x8d": "seresnext101_32x8d", "skresnext50_32x4d": "skresnext50_32x4d",
              "resnest50": "resnest50d", "resnest101": "resnest101e", "resnest200": "resnest200e",
              "resnest269": "resnest269e", "seresnet50": "seresnet50", "seresnet101": "seresnet101",
              "seresnet152": "seresnet152"}
# (timm's ResNetV2 feature model returns its stages un-normalized, ours normalized: not the same function.)


@dataclass
class Timing:
    """Seconds of each repeat (after warm-up) of one measured call."""

    seconds: List[float] = field(default_factory=list)

    @property
    def median(self) -> float:
        return statistics.median(self.seconds)


def _sync(device: str) -> None:
    if device.startswith("cuda"):
        torch.cuda.synchronize()


def interleaved(calls: Dict[str, Callable[[], object]], repeats: int, warmup: int = 1,
                device: str = "cpu") -> Dict[str, Timing]:
    """Time each call ``repeats`` times after ``warmup`` untimed runs, in turn, so that a slow phase of
    the machine hits every call alike; each round starts one call later (a b c, b c a, c a b, ...), so
    no call always runs first or after the same neighbour."""
    for _ in range(warmup):
        for call in calls.values():
            call()
    _sync(device)
    timings = {name: Timing() for name in calls}
    names = list(calls)
    for round_ in range(repeats):
        shift = round_ % len(names)
        for name in names[shift:] + names[:shift]:
            call = calls[name]
            start = time.perf_counter()
            call()
            _sync(device)
            timings[name].seconds.append(time.perf_counter() - start)
    return timings


def _rss_bytes() -> int:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * _PAGE


try:
    import os as _os

    _PAGE = _os.sysconf("SC_PAGE_SIZE")
except (ValueError, OSError, AttributeError):  # not Linux
    _PAGE = 4096


def _release_free_memory() -> None:
    """Hand freed heap memory back to the OS, so that the RSS counts live data only and the next call's
    allocations show up in it (glibc keeps freed blocks resident for reuse otherwise)."""
    import ctypes
    import gc

    gc.collect()
    try:
        ctypes.CDLL("libc.so.6").malloc_trim(0)
    except (OSError, AttributeError):  # not glibc: the figure may then undercount reused memory
        pass


def peak_memory(call: Callable[[], object], device: str = "cpu", interval: float = 0.001) -> int:
    """Bytes of memory ``call`` needs at its peak, above what was in use before it.

    GPU: ``torch.cuda.max_memory_allocated``. CPU: the resident set size, sampled every
    ``interval`` seconds by a thread while ``call`` runs (PyTorch releases the GIL in its ops),
    after freed heap memory was returned to the OS.
    """
    if device.startswith("cuda"):
        torch.cuda.synchronize()
        torch.cuda.reset_peak_memory_stats()
        before = torch.cuda.memory_allocated()
        call()
        torch.cuda.synchronize()
        return torch.cuda.max_memory_allocated() - before
    _release_free_memory()
    before = _rss_bytes()
    peak = [before]
    done = threading.Event()

    def sample():
        while not done.is_set():
            peak[0] = max(peak[0], _rss_bytes())
            time.sleep(interval)

    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    try:
        call()
    finally:
        done.set()
        sampler.join()
    return max(peak[0], _rss_bytes()) - before


def _detectron2_resnets(spec: ArchSpec, what: str) -> Dict[str, object]:
    """Detectron2's MODEL.RESNETS keys for ``spec``, which must be a plain ResNet/ResNeXt."""
    if spec.transform != "conv" or spec.attention != "none" or spec.stem != "basic" or spec.preact:
        raise ConfigError(f"Detectron2 has no built-in {what}: its ResNet has no attention, deep stem or "
                          "pre-activation; compare with --peer timm")
    return {"DEPTH": spec.depth, "NUM_GROUPS": spec.num_groups, "WIDTH_PER_GROUP": spec.width_per_group,
            "DEFORM_ON_PER_STAGE": list(spec.deform_on_per_stage), "DEFORM_MODULATED": spec.deform_modulated,
            "DEFORM_NUM_GROUPS": spec.deform_num_groups}


def detectron2_backbone_peer(ours: nn.Module, arch: str, fpn_cfg=None) -> nn.Module:
    """Detectron2's built-in ResNet/ResNeXt (with its FPN when ``fpn_cfg`` is the config ``ours`` was
    built from), holding ``ours``'s weights (the module names are the same)."""
    from detectron2.config import get_cfg
    from detectron2.layers import ShapeSpec
    from detectron2.modeling.backbone.fpn import build_resnet_fpn_backbone
    from detectron2.modeling.backbone.resnet import build_resnet_backbone

    bottom_up = ours.bottom_up if fpn_cfg is not None else ours
    resnets = _detectron2_resnets(bottom_up.spec, f"counterpart of {arch}")  # the spec as built
    cfg = fpn_cfg.clone() if fpn_cfg is not None else get_cfg()
    cfg.defrost()
    cfg.MODEL.RESNETS.update(resnets, STRIDE_IN_1X1=_stride_in_1x1(bottom_up),
                             NORM=_norm_name(bottom_up), OUT_FEATURES=list(bottom_up._out_features),
                             RES5_DILATION=1)
    cfg.MODEL.BACKBONE.FREEZE_AT = 0
    build = build_resnet_fpn_backbone if fpn_cfg is not None else build_resnet_backbone
    peer = build(cfg, ShapeSpec(channels=3))
    peer.load_state_dict(ours.state_dict())
    return peer


def _stride_in_1x1(backbone) -> bool:
    block = backbone.res3[0]
    return block.conv1.stride == (2, 2)


def _norm_name(backbone) -> str:
    from detectron2.layers import FrozenBatchNorm2d

    norm = backbone.stem.conv1.norm
    if isinstance(norm, FrozenBatchNorm2d):
        return "FrozenBN"
    if isinstance(norm, nn.BatchNorm2d):
        return "BN"
    raise ConfigError(f"the Detectron2 peer supports FrozenBN and BN backbones, not {type(norm).__name__}")


def timm_backbone_peer(arch: str, seed: int = 0):
    """(timm's model of ``arch`` returning its four stages' features, our backbone with its weights).

    Our backbone gets timm's random weights through the timm checkpoint converter, so both compute
    the same function."""
    import timm

    from .checkpoint import convert_state_dict
    from .modeling import create_backbone

    if arch not in TIMM_NAMES:
        raise ConfigError(f"timm has no model of {arch}; compare with --peer detectron2")
    torch.manual_seed(seed)
    reference = timm.create_model(TIMM_NAMES[arch], pretrained=False)
    ours = create_backbone(arch)
    ours.load_state_dict(convert_state_dict(reference.state_dict(), "timm", arch).state_dict)
    peer = timm.create_model(TIMM_NAMES[arch], pretrained=False, features_only=True, out_indices=(1, 2, 3, 4))
    result = peer.load_state_dict(reference.state_dict(), strict=False)
    unplaced = result.missing_keys + [k for k in result.unexpected_keys if not k.startswith("fc.")]
    if unplaced:  # features_only drops only the classifier
        raise RuntimeError(f"timm's {TIMM_NAMES[arch]} feature model does not take its own weights: {unplaced[:3]}")
    return peer.eval(), ours.eval()


def detectron2_dcn_unavailable(spec: ArchSpec, device: str) -> Optional[str]:
    """Why Detectron2's own deformable convolution cannot run ``spec`` here, or None when it can."""
    try:
        from detectron2 import _C  # noqa: F401
    except ImportError:
        return "detectron2._C (Detectron2's compiled ops, which its DeformConv needs) is not built in this install"
    if not device.startswith("cuda") and (spec.deform_modulated or spec.deform_num_groups != 1):
        return "Detectron2's DeformConv runs on CPU only unmodulated with one offset group"
    return None


def detectron2_detector_peer(cfg, ours: nn.Module) -> nn.Module:
    """Detectron2's own model for ``cfg`` with its built-in ResNet/ResNeXt FPN backbone and ``ours``'s
    weights."""
    from detectron2.modeling import build_model

    peer_cfg = cfg.clone()
    peer_cfg.defrost()
    peer_cfg.MODEL.BACKBONE.NAME = "build_resnet_fpn_backbone"
    r = cfg.MODEL.RESNEXT
    spec = ours.backbone.bottom_up.spec
    peer_cfg.MODEL.RESNETS.update(_detectron2_resnets(spec, f"counterpart of {r.ARCH}"),
                                  STRIDE_IN_1X1=r.STRIDE_IN_1X1, NORM=r.NORM,
                                  OUT_FEATURES=list(r.OUT_FEATURES), RES5_DILATION=r.RES5_DILATION)
    peer = build_model(peer_cfg)
    peer.load_state_dict(ours.state_dict())
    return peer


@dataclass(frozen=True)
class Mode:
    """How a model runs: its precision (fp32, bf16, fp16) and whether its backbone is compiled.

    Ours runs a mode as ``fuse_for_inference`` makes it (weights in that dtype, backbone compiled);
    a peer runs it under ``torch.autocast`` with its backbone compiled the same way (``compile_module``).
    """

    precision: str = "fp32"
    compiled: bool = False

    @property
    def name(self) -> str:
        return self.precision + (" compiled" if self.compiled else "")

    @property
    def dtype(self) -> torch.dtype:
        return PRECISIONS[self.precision]


FP32 = Mode()


def modes(precisions, compile: bool) -> List[Mode]:
    """Eager modes for each precision, then (``compile``) the compiled ones."""
    return [Mode(p, c) for c in ((False, True) if compile else (False,)) for p in precisions]


def fused_copy(model: nn.Module, channels_last: Optional[bool] = None, mode: Mode = FP32) -> nn.Module:
    """A copy of ``model`` fused for inference in ``mode``."""
    from .fuse import fuse_for_inference

    return fuse_for_inference(copy.deepcopy(model), channels_last=channels_last,
                              dtype=None if mode.precision == "fp32" else mode.dtype, compile=mode.compiled)


def peer_in_mode(peer: nn.Module, mode: Mode) -> nn.Module:
    """The peer itself, or for a compiled mode a copy with its backbone part compiled as ours is."""
    if not mode.compiled:
        return peer
    from .compile import compile_module

    peer = copy.deepcopy(peer)
    compile_module(backbone_part(peer))
    return peer


def autocast_call(call: Callable[[], object], mode: Mode, device: str) -> Callable[[], object]:
    """``call`` run under ``torch.autocast`` in ``mode``'s dtype (as it is for fp32)."""
    if mode.precision == "fp32":
        return call

    def under_autocast():
        with torch.autocast(torch.device(device).type, dtype=mode.dtype):
            return call()

    return under_autocast


def top_ops(call: Callable[[], object], count: int) -> List[list]:
    """[[operator, self seconds, calls], ...] of one run of ``call``, the ``count`` most expensive
    (PyTorch's profiler, CPU time of each operator without its children)."""
    from torch.profiler import ProfilerActivity, profile

    activities = [ProfilerActivity.CPU] + ([ProfilerActivity.CUDA] if torch.cuda.is_available() else [])
    with profile(activities=activities) as prof:
        call()
    events = sorted(prof.key_averages(), key=lambda e: e.self_cpu_time_total, reverse=True)[:count]
    return [[e.key, e.self_cpu_time_total / 1e6, e.count] for e in events]


def time_agree(rank: int, world: int, init_file: str, calls: int, repeats: int, out: str) -> None:
    """A process of ``tools/benchmark.py stop-together``: times ``calls`` agree() calls, ``repeats`` times;
    the first process saves the seconds per call of each repeat to ``out``."""
    import torch.distributed as dist

    from .engine.stop_together import agree

    dist.init_process_group("gloo", init_method=f"file://{init_file}", rank=rank, world_size=world)
    agree(None)  # warm-up
    seconds = []
    for _ in range(repeats):
        dist.barrier()
        start = time.perf_counter()
        for _ in range(calls):
            agree(None)
        seconds.append((time.perf_counter() - start) / calls)
    if rank == 0:
        torch.save(seconds, out)
    dist.destroy_process_group()
