"""convert_state_dict: foreign ImageNet weights -> this plugin's backbone, checked against the arch."""
from typing import Dict, NamedTuple

import torch

from ..archs import ArchSpec, get_arch
from ..errors import ConfigError
from ..modeling import create_backbone
from .io import CheckpointError
from .remap import REMAPS

__all__ = ["ConversionResult", "convert_state_dict", "input_settings", "check_state_dict"]

_IMAGENET_RGB = {"INPUT.FORMAT": "RGB", "MODEL.PIXEL_MEAN": [123.675, 116.28, 103.53],
                 "MODEL.PIXEL_STD": [58.395, 57.12, 57.375]}


def _plain(spec: ArchSpec) -> bool:
    return spec.stem == "basic" and spec.transform == "conv" and spec.attention == "none" and not spec.preact


# Which presets each source ships weights for.
_SUPPORTS = {
    "torchvision": _plain,
    "timm": lambda spec: True,
    "resnest": lambda spec: spec.transform == "splat",
    "detectron": _plain,
}


class ConversionResult(NamedTuple):
    state_dict: Dict[str, torch.Tensor]  # backbone keys (stem.*, res2.*, ...)
    dropped: Dict[str, str]  # source key -> why it was left out on purpose ("classifier", "bookkeeping")
    added: Dict[str, str] = {}  # backbone key the source lacks -> the key its value was copied from


def input_settings(source: str, arch: str) -> Dict[str, object]:
    """The config lines the source's weights expect: channel order, normalization, stride placement."""
    spec = get_arch(arch)
    if source == "timm" and spec.preact:  # timm's ResNetV2 weights (a1h) take Inception's mean and std 0.5
        return {"INPUT.FORMAT": "RGB", "MODEL.PIXEL_MEAN": [127.5, 127.5, 127.5],
                "MODEL.PIXEL_STD": [127.5, 127.5, 127.5], "MODEL.RESNEXT.STRIDE_IN_1X1": False}
    if source != "detectron":
        return dict(_IMAGENET_RGB, **{"MODEL.RESNEXT.STRIDE_IN_1X1": False})
    if spec.num_groups == 1:  # MSRA's original Caffe ResNets: BGR, no std, stride on the 1x1
        return {"INPUT.FORMAT": "BGR", "MODEL.PIXEL_MEAN": [103.53, 116.28, 123.675],
                "MODEL.PIXEL_STD": [1.0, 1.0, 1.0], "MODEL.RESNEXT.STRIDE_IN_1X1": True}
    # FAIR's Caffe2 ResNeXt (e.g. X-101-32x8d): BGR with std, stride on the 3x3
    return {"INPUT.FORMAT": "BGR", "MODEL.PIXEL_MEAN": [103.53, 116.28, 123.675],
            "MODEL.PIXEL_STD": [57.375, 57.12, 58.395], "MODEL.RESNEXT.STRIDE_IN_1X1": False}


def _expected_shapes(arch: str) -> Dict[str, torch.Size]:
    with torch.device("meta"):
        model = create_backbone(arch)  # FrozenBN: weight, bias, running_mean, running_var
    return {k: v.shape for k, v in model.state_dict().items()}


def check_state_dict(state_dict: Dict[str, torch.Tensor], arch: str, what: str = "checkpoint") -> None:
    """Raise CheckpointError unless ``state_dict`` has exactly the keys and shapes of ``arch``."""
    expected = _expected_shapes(arch)
    mismatched = [f"{k}: {tuple(v.shape)} vs {tuple(expected[k])} expected"
                  for k, v in state_dict.items() if k in expected and v.shape != expected[k]]
    missing = [k for k in expected if k not in state_dict]
    unexpected = [k for k in state_dict if k not in expected]
    problems = []
    if mismatched:
        problems.append(f"{len(mismatched)} shape mismatches ({'; '.join(mismatched[:3])})")
    if missing:
        problems.append(f"{len(missing)} missing keys ({', '.join(missing[:3])})")
    if unexpected:
        problems.append(f"{len(unexpected)} unexpected keys ({', '.join(unexpected[:3])})")
    if problems:
        raise CheckpointError(f"{what} does not fit {arch}: {'; '.join(problems)}; "
                              "are --arch and the weights of the same architecture?")


def convert_state_dict(state_dict: Dict[str, torch.Tensor], source: str, arch: str) -> ConversionResult:
    """Remap ``state_dict`` from ``source`` (torchvision, timm, resnest, detectron) to ``arch``.

    The classifier and bookkeeping (e.g. ``num_batches_tracked``) are dropped on purpose and
    listed in ``dropped``; tensors the source lacks and that were derived from others (ResNet-v2's
    output norms) are listed in ``added``. A key no rule places, a missing key or a shape that does not fit
    ``arch`` raises CheckpointError naming the first ones.
    """
    if source not in REMAPS:
        raise ConfigError(f"source={source!r} is invalid: valid sources are {list(REMAPS)}")
    spec = get_arch(arch, key="arch")
    if not _SUPPORTS[source](spec):
        valid = [name for name in REMAPS if _SUPPORTS[name](spec)]
        raise CheckpointError(f"{source} weights do not exist for {arch}; sources for it: {valid}")
    remapped = REMAPS[source](state_dict, spec)
    if remapped.unplaced:
        raise CheckpointError(
            f"{len(remapped.unplaced)} keys of the {source} checkpoint have no place in {arch} "
            f"({', '.join(remapped.unplaced[:5])}); is it a {source} {arch} checkpoint?")
    check_state_dict(remapped.state_dict, arch, f"the converted {source} checkpoint")
    return ConversionResult(remapped.state_dict, remapped.dropped, remapped.added)
