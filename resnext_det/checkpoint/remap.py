"""One pure remap per foreign checkpoint layout: foreign key -> this plugin's key (Detectron2 names).

Each remap is a list of (pattern, replacement) rules tried in order. A key that no rule places is
returned as unplaced; classifier weights and training bookkeeping are dropped on purpose and listed.
"""
import re
from typing import Callable, Dict, List, NamedTuple, Sequence, Tuple, Union

import torch

from ..archs import ArchSpec

__all__ = ["Remapped", "REMAPS", "from_pytorch_layout", "from_detectron"]

Rule = Tuple[str, Union[str, Callable[[re.Match], str]]]  # (full-match regex, target key)
_DROP_CLASSIFIER = "classifier"
_DROP_BOOKKEEPING = "bookkeeping"


class Remapped(NamedTuple):
    state_dict: Dict[str, torch.Tensor]
    dropped: Dict[str, str]  # foreign key -> why ("classifier", "bookkeeping")
    unplaced: List[str]  # foreign keys no rule knows: wrong source or architecture
    added: Dict[str, str] = {}  # our key the source lacks -> where its value comes from


def _stage(m: re.Match) -> str:
    return f"res{int(m.group(1)) + 1}.{m.group(2)}."


def _apply(state_dict, rules: Sequence[Rule], drops: Sequence[Tuple[str, str]]) -> Remapped:
    out, dropped, unplaced = {}, {}, []
    for key, value in state_dict.items():
        reason = next((why for pattern, why in drops if re.search(pattern, key)), None)
        if reason:
            dropped[key] = reason
            continue
        for pattern, target in rules:
            m = re.fullmatch(pattern, key)
            if m:
                out[target(m) if callable(target) else m.expand(target)] = value
                break
        else:
            unplaced.append(key)
    return Remapped(out, dropped, unplaced)


# torchvision / timm ResNet-style blocks: layerN.i.{conv,bn}K, downsample.{0,1}, se.fc{1,2}.
_BLOCK = r"layer(\d)\.(\d+)\."
_TORCHVISION_BLOCK_RULES = [
    (_BLOCK + r"conv(\d)\.weight", lambda m: _stage(m) + f"conv{m.group(3)}.weight"),
    (_BLOCK + r"bn(\d)\.(\w+)", lambda m: _stage(m) + f"conv{m.group(3)}.norm.{m.group(4)}"),
]
_PROJECTION_RULES = [  # downsample = [conv, bn]
    (_BLOCK + r"downsample\.0\.weight", lambda m: _stage(m) + "shortcut.weight"),
    (_BLOCK + r"downsample\.1\.(\w+)", lambda m: _stage(m) + f"shortcut.norm.{m.group(3)}"),
]
_AVG_DOWN_RULES = [  # downsample = [avg-pool, conv, bn]
    (_BLOCK + r"downsample\.1\.weight", lambda m: _stage(m) + "shortcut.weight"),
    (_BLOCK + r"downsample\.2\.(\w+)", lambda m: _stage(m) + f"shortcut.norm.{m.group(3)}"),
]
_BASIC_STEM_RULES = [(r"conv1\.weight", "stem.conv1.weight"), (r"bn1\.(\w+)", r"stem.conv1.norm.\1")]
_DEEP_STEM_RULES = [  # conv1 = [conv, bn, relu, conv, bn, relu, conv], then bn1
    (r"conv1\.0\.weight", "stem.conv1.weight"), (r"conv1\.1\.(\w+)", r"stem.conv1.norm.\1"),
    (r"conv1\.3\.weight", "stem.conv2.weight"), (r"conv1\.4\.(\w+)", r"stem.conv2.norm.\1"),
    (r"conv1\.6\.weight", "stem.conv3.weight"), (r"bn1\.(\w+)", r"stem.conv3.norm.\1"),
]
_SE_RULES = [(_BLOCK + r"se\.(fc[12])\.(weight|bias)", lambda m: _stage(m) + f"se.{m.group(3)}.{m.group(4)}")]
_SK_RULES = [  # timm SelectiveKernelBottleneck: ConvNormAct (conv, bn) and SelectiveKernel
    (_BLOCK + r"conv([13])\.conv\.weight", lambda m: _stage(m) + f"conv{m.group(3)}.weight"),
    (_BLOCK + r"conv([13])\.bn\.(\w+)", lambda m: _stage(m) + f"conv{m.group(3)}.norm.{m.group(4)}"),
    (_BLOCK + r"conv2\.paths\.(\d+)\.conv\.weight", lambda m: _stage(m) + f"conv2.branches.{m.group(3)}.weight"),
    (_BLOCK + r"conv2\.paths\.(\d+)\.bn\.(\w+)",
     lambda m: _stage(m) + f"conv2.branches.{m.group(3)}.norm.{m.group(4)}"),
    (_BLOCK + r"conv2\.attn\.fc_reduce\.weight", lambda m: _stage(m) + "conv2.fc_reduce.weight"),
    (_BLOCK + r"conv2\.attn\.bn\.(\w+)", lambda m: _stage(m) + f"conv2.fc_reduce.norm.{m.group(3)}"),
    (_BLOCK + r"conv2\.attn\.fc_select\.weight", lambda m: _stage(m) + "conv2.fc_select.weight"),
]
_SPLIT_ATTENTION_RULES = [  # ResNeSt SplAtConv2d: conv, bn0, fc1, bn1, fc2
    (_BLOCK + r"conv2\.conv\.weight", lambda m: _stage(m) + "conv2.conv.weight"),
    (_BLOCK + r"conv2\.bn0\.(\w+)", lambda m: _stage(m) + f"conv2.conv.norm.{m.group(3)}"),
    (_BLOCK + r"conv2\.(fc[12])\.(weight|bias)", lambda m: _stage(m) + f"conv2.{m.group(3)}.{m.group(4)}"),
    (_BLOCK + r"conv2\.bn1\.(\w+)", lambda m: _stage(m) + f"conv2.fc1.norm.{m.group(3)}"),
]
# timm ResNetV2 (pre-activation): stem.conv, stages.N.blocks.i.{norm1, convK, norm2, norm3,
# downsample.conv}, then norm. normK+1 follows convK, so it is our convK.norm; norm1 is the block's
# pre-activation; the final norm is the one on res5's output.
_V2_BLOCK = r"stages\.(\d)\.blocks\.(\d+)\."


def _v2_stage(m: re.Match) -> str:
    return f"res{int(m.group(1)) + 2}.{m.group(2)}."


_RESNETV2_RULES = [
    (r"stem\.conv\.weight", "stem.conv1.weight"),
    (r"norm\.(\w+)", r"output_norms.res5.\1"),
    (_V2_BLOCK + r"norm1\.(\w+)", lambda m: _v2_stage(m) + f"preact_norm.{m.group(3)}"),
    (_V2_BLOCK + r"norm([23])\.(\w+)", lambda m: _v2_stage(m) + f"conv{int(m.group(3)) - 1}.norm.{m.group(4)}"),
    (_V2_BLOCK + r"conv(\d)\.weight", lambda m: _v2_stage(m) + f"conv{m.group(3)}.weight"),
    (_V2_BLOCK + r"downsample\.conv\.weight", lambda m: _v2_stage(m) + "shortcut.weight"),
]
_PYTORCH_DROPS = [(r"(^|\.)num_batches_tracked$", _DROP_BOOKKEEPING), (r"^(fc|head\.fc)\.", _DROP_CLASSIFIER)]


def _pytorch_rules(spec: ArchSpec) -> List[Rule]:
    """The rules for a PyTorch ResNet-style layout (torchvision, timm, ResNeSt) of ``spec``."""
    rules = list(_DEEP_STEM_RULES if spec.stem == "deep" else _BASIC_STEM_RULES)
    rules += _AVG_DOWN_RULES if spec.avg_down else _PROJECTION_RULES
    if spec.transform == "sk":
        rules += _SK_RULES
    if spec.transform == "splat":
        rules += _SPLIT_ATTENTION_RULES
    if spec.attention == "se":
        rules += _SE_RULES
    return rules + _TORCHVISION_BLOCK_RULES


def _preact_output_norms(remapped: Remapped) -> Remapped:
    """ResNet-v2's output norms on res2..res4 are not in ImageNet checkpoints. Each starts as the
    pre-activation norm of the next stage's first block, which normalizes the very same map there."""
    added = {}
    for stage in (2, 3, 4):
        source = f"res{stage + 1}.0.preact_norm."
        for key in [k for k in remapped.state_dict if k.startswith(source)]:
            target = f"output_norms.res{stage}." + key[len(source):]
            remapped.state_dict[target] = remapped.state_dict[key].clone()
            added[target] = key
    return remapped._replace(added=added)


def from_pytorch_layout(state_dict, spec: ArchSpec) -> Remapped:
    """torchvision, timm and official ResNeSt weights share one layout, extended per block type.

    torchvision resnet/resnext: conv1/bn1, layerN.i.{conv,bn}K, downsample.{0,1}, fc.
    timm adds se.fc{1,2} (seresnext), ConvNormAct + SelectiveKernel (skresnext) and the ResNeSt
    layout, which is the official one: deep stem conv1.{0,1,3,4,6} + bn1, SplAtConv2d
    (conv, bn0, fc1, bn1, fc2) and avg-pool downsample [pool, conv, bn]. timm's pre-activation
    ResNetV2 has a layout of its own (``_RESNETV2_RULES``).
    """
    if spec.preact:
        return _preact_output_norms(_apply(state_dict, _RESNETV2_RULES, _PYTORCH_DROPS))
    return _apply(state_dict, _pytorch_rules(spec), _PYTORCH_DROPS)


def _c2_block(m: re.Match) -> str:
    return f"res{m.group(1)}.{m.group(2)}."


_C2_BRANCH = {"2a": "conv1", "2b": "conv2", "2c": "conv3", "1": "shortcut"}
_C2_NORM = {"s": "weight", "b": "bias"}
_DETECTRON_RULES = [
    (r"conv1_w", "stem.conv1.weight"),
    (r"res_conv1_bn_(s|b)", lambda m: f"stem.conv1.norm.{_C2_NORM[m.group(1)]}"),
    (r"res(\d)_(\d+)_branch(2a|2b|2c|1)_w", lambda m: _c2_block(m) + f"{_C2_BRANCH[m.group(3)]}.weight"),
    (r"res(\d)_(\d+)_branch(2a|2b|2c|1)_bn_(s|b)",
     lambda m: _c2_block(m) + f"{_C2_BRANCH[m.group(3)]}.norm.{_C2_NORM[m.group(4)]}"),
]
_DETECTRON_DROPS = [(r"^(fc1000|pred)_", _DROP_CLASSIFIER), (r"_momentum$", _DROP_BOOKKEEPING),
                    (r"^(lr|iter|weight_order|model_iter)$", _DROP_BOOKKEEPING)]


def from_detectron(state_dict, spec: ArchSpec) -> Remapped:
    """Detectron / Caffe2 .pkl (``res2_0_branch2a_w``, ``..._bn_s`` scale, ``..._bn_b`` shift).

    The norms there are affine only: the running statistics are written as mean 0 and variance
    1 - eps, so Detectron2's FrozenBN (scale = weight / sqrt(var + eps)) applies the scale as is.
    """
    out = _apply(state_dict, _DETECTRON_RULES, _DETECTRON_DROPS)
    eps = 1e-5
    for key in [k for k in out.state_dict if k.endswith(".norm.weight")]:
        base = key[: -len("weight")]
        channels = out.state_dict[key].shape[0]
        out.state_dict.setdefault(base + "running_mean", torch.zeros(channels))
        out.state_dict.setdefault(base + "running_var", torch.full((channels,), 1.0 - eps))
    return out


REMAPS: Dict[str, Callable[[Dict[str, torch.Tensor], ArchSpec], Remapped]] = {
    "torchvision": from_pytorch_layout,
    "timm": from_pytorch_layout,
    "resnest": from_pytorch_layout,
    "detectron": from_detectron,
}
