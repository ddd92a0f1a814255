"""The backbone: a stem and four stages of bottlenecks, built from an ArchSpec and build options."""
import dataclasses
from dataclasses import dataclass
from typing import Callable, Dict, List, Optional, Tuple

import torch
import torch.nn.functional as F
from detectron2.layers import FrozenBatchNorm2d, ShapeSpec
from detectron2.modeling.backbone.resnet import ResNet
from torch import nn

from ..archs import SPEC_FIELDS, ArchSpec, get_arch
from ..errors import ConfigError
from ..layers import check_norm, feature_norm
from .bottleneck import Bottleneck
from .stem import make_stem

__all__ = ["BackboneOptions", "ResNeXt", "build_resnext", "build_stage", "create_backbone"]

STAGES = ("res2", "res3", "res4", "res5")


@dataclass(frozen=True)
class BackboneOptions:
    """How a spec is instantiated; every variant honours every option."""

    norm: str = "FrozenBN"  # FrozenBN, BN, SyncBN or GN (32 groups)
    freeze_at: int = 0  # 0: train all; 1: freeze the stem; k >= 2: the stem and res2..res(k)
    out_features: Tuple[str, ...] = STAGES  # any of stem, res2..res5 (and linear with num_classes)
    stride_in_1x1: bool = False  # stride on the first 1x1 (MSRA/Caffe2 weights), else on the 3x3
    res5_dilation: int = 1  # 2: res5 keeps stride 16 with dilated 3x3s (DC5)
    zero_init_residual: bool = False  # zero the last norm's scale in every block (needs a trainable norm)
    in_channels: int = 3  # input image channels
    num_classes: Optional[int] = None  # an avg-pool + linear classifier ("linear"), for ImageNet-style use

    def validate(self, spec: ArchSpec, key: Callable[[str], str] = str) -> "BackboneOptions":
        def fail(field, value, valid):
            raise ConfigError(f"{key(field)}={value!r} is invalid: {valid}")

        check_norm(self.norm, key("norm"))
        if self.freeze_at not in range(6):
            fail("freeze_at", self.freeze_at, "use 0 (train all) to 5 (freeze up to res5)")
        valid_features = ("stem",) + STAGES + (("linear",) if self.num_classes else ())
        bad = [f for f in self.out_features if f not in valid_features]
        if not self.out_features or bad:
            fail("out_features", list(self.out_features), f"choose a non-empty subset of {valid_features}")
        if self.res5_dilation not in (1, 2):
            fail("res5_dilation", self.res5_dilation, "use 1, or 2 for DC5")
        if self.zero_init_residual and self.norm == "FrozenBN" and not spec.preact:
            fail("zero_init_residual", True, "FrozenBN cannot learn the zeroed scale back; "
                 "use norm BN, SyncBN or GN, or turn it off")
        if self.stride_in_1x1 and spec.avd:
            fail("stride_in_1x1", True, "this arch downsamples with an average pool after the 3x3 (avd); "
                 "the stride cannot move to the 1x1")
        if self.norm == "GN":
            width = spec.num_groups * spec.width_per_group
            if width % 32 or spec.stem_width % 32:
                fail("norm", "GN", f"GN uses 32 groups, but res2's bottleneck width is {width} and the "
                     f"stem width {spec.stem_width}; both must be divisible by 32")
        return self


class ResNeXt(ResNet):
    """Detectron2's ``ResNet`` backbone (``stem``, ``res2``..``res5``) that also keeps its spec.

    ``output_norms`` (pre-activation nets): a norm, followed by ReLU, for each returned feature and
    the classifier's input, since a v2 stage's output is an un-normalized sum. They sit beside the
    trunk (the next stage reads the sum) and are frozen with their stage.
    """

    def __init__(self, spec: ArchSpec, stem, stages, out_features, *, freeze_at=0,
                 output_norms: Optional[Dict[str, nn.Module]] = None, **kwargs):
        # The caller builds only the stages it needs. Detectron2's ResNet would also cut stages to
        # the last requested "resN", dropping all of them when only "linear" is requested.
        super().__init__(stem, stages, out_features=None, **kwargs)
        self._out_features = list(out_features)
        self.spec = spec
        self.output_norms = nn.ModuleDict(output_norms or {})
        self.freeze(freeze_at)

    def freeze(self, freeze_at=0):
        super().freeze(freeze_at)
        for name in (("stem",) + self.stage_names)[:freeze_at]:
            if name in self.output_norms:
                norm = FrozenBatchNorm2d.convert_frozen_batchnorm(self.output_norms[name])
                norm.requires_grad_(False)
                self.output_norms[name] = norm
        return self

    def _output(self, name, x):
        return F.relu_(self.output_norms[name](x)) if name in self.output_norms else x

    def forward(self, x):
        """Detectron2's ``ResNet.forward``, with each returned map passed through its output norm."""
        outputs = {}
        x = self.stem(x)
        if "stem" in self._out_features:
            outputs["stem"] = self._output("stem", x)
        for name, stage in zip(self.stage_names, self.stages):
            x = stage(x)
            if name in self._out_features:
                outputs[name] = self._output(name, x)
        if self.num_classes is not None:
            last = self.stage_names[-1]
            features = outputs[last] if last in outputs else self._output(last, x)
            x = self.linear(torch.flatten(self.avgpool(features), 1))
            if "linear" in self._out_features:
                outputs["linear"] = x
        return outputs

    def output_shape(self):
        # Detectron2's ResNet records no shape for its classifier output.
        return {name: ShapeSpec(channels=self.linear.out_features) if name == "linear" else
                ShapeSpec(channels=self._out_feature_channels[name], stride=self._out_feature_strides[name])
                for name in self._out_features}


def _output_norms(spec: ArchSpec, options: BackboneOptions, num_stages: int) -> Dict[str, nn.Module]:
    """Pre-activation nets: a norm for each returned map and for the classifier's input (res5)."""
    if not spec.preact:
        return {}
    channels = dict(zip(STAGES, (256, 512, 1024, 2048)), stem=spec.stem_out_channels)
    names = [f for f in options.out_features if f != "linear"]
    if "linear" in options.out_features and STAGES[num_stages - 1] not in names:
        names.append(STAGES[num_stages - 1])
    return {name: feature_norm(options.norm, channels[name]) for name in names}


def build_stage(spec: ArchSpec, options: BackboneOptions, name: str) -> List[Bottleneck]:
    """The blocks of stage ``name`` (res2..res5) of ``spec``, as the backbone has them.

    res2 keeps the stem's stride; each later stage halves the resolution in its first block, but
    res5 with ``options.res5_dilation`` 2 keeps it and dilates its 3x3s instead (DC5).
    """
    o, index = options, STAGES.index(name)
    num_blocks = spec.blocks_per_stage[index]
    in_channels = spec.stem_out_channels if index == 0 else 256 * 2 ** (index - 1)
    dilation = o.res5_dilation if name == "res5" else 1
    first_stride = 1 if index == 0 or dilation > 1 else 2
    return ResNet.make_stage(
        Bottleneck, num_blocks, in_channels=in_channels, out_channels=256 * 2 ** index,
        stride_per_block=[first_stride] + [1] * (num_blocks - 1),
        bottleneck_channels=spec.num_groups * spec.width_per_group * 2 ** index,
        num_groups=spec.num_groups, norm=o.norm, stride_in_1x1=o.stride_in_1x1, dilation=dilation,
        transform=spec.transform, radix=spec.radix, attention=spec.attention,
        se_reduction=spec.se_reduction, avd=spec.avd, avg_down=spec.avg_down,
        zero_init_last=o.zero_init_residual, preact=spec.preact, deform=spec.deform_on_per_stage[index],
        deform_modulated=spec.deform_modulated, deform_num_groups=spec.deform_num_groups,
    )


def build_resnext(spec: ArchSpec, options: BackboneOptions = BackboneOptions()) -> ResNeXt:
    """Build the backbone of ``spec``; only the stages up to the last requested feature are built."""
    o = options
    wanted = [STAGES.index(f) + 1 for f in o.out_features if f in STAGES]
    num_stages = 4 if "linear" in o.out_features else max(wanted, default=0)
    stem = make_stem(spec.stem, o.in_channels, spec.stem_width, o.norm, preact=spec.preact)
    stages = [build_stage(spec, o, name) for name in STAGES[:num_stages]]
    return ResNeXt(spec, stem, stages, num_classes=o.num_classes, out_features=list(o.out_features),
                   freeze_at=o.freeze_at, output_norms=_output_norms(spec, o, num_stages))


OPTION_FIELDS = tuple(f.name for f in dataclasses.fields(BackboneOptions))


def split_overrides(spec: ArchSpec, overrides: dict, key: Callable[[str], str] = str):
    """Apply keyword overrides to a preset: spec fields change the architecture, the rest are options."""
    unknown = sorted(set(overrides) - set(SPEC_FIELDS) - set(OPTION_FIELDS))
    if unknown:
        raise ConfigError(f"unknown backbone setting(s) {', '.join(map(key, unknown))}; valid: "
                          f"{', '.join(map(key, SPEC_FIELDS + OPTION_FIELDS))}")
    spec_overrides = {k: v for k, v in overrides.items() if k in SPEC_FIELDS}
    if isinstance(spec_overrides.get("deform_on_per_stage"), list):
        spec_overrides["deform_on_per_stage"] = tuple(spec_overrides["deform_on_per_stage"])
    spec = dataclasses.replace(spec, **spec_overrides)
    opts = {k: v for k, v in overrides.items() if k in OPTION_FIELDS}
    if "out_features" in opts:
        opts["out_features"] = tuple(opts["out_features"])
    options = BackboneOptions(**opts)
    return spec.validate(key), options.validate(spec, key)


def create_backbone(name: str, **overrides) -> ResNeXt:
    """Build a named backbone as a plain module, e.g. ``create_backbone("resnext50_32x4d", norm="BN")``.

    Defaults: ``out_features=("res2", "res3", "res4", "res5")``, ``norm="FrozenBN"``,
    ``freeze_at=0``, ``stride_in_1x1=False``. Any ``ArchSpec`` field (``depth``, ``num_groups``,
    ``width_per_group``, ``radix``, ``attention``, ...) or ``BackboneOptions`` field may be overridden.
    """
    spec, options = split_overrides(get_arch(name), overrides)
    return build_resnext(spec, options)
