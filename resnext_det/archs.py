"""Named architectures: each preset is data (an ``ArchSpec``), never a class of its own.

A spec says what differs between the family's members, as the papers define them:
blocks per stage (depth), cardinality and width per group (ResNeXt), the 3x3 transform
(grouped conv, selective kernel, split attention), post-block attention (squeeze-excitation),
the stem, ResNeSt's average-pool downsampling, the order of norm and convolution (ResNet-v2's
pre-activation) and where the 3x3 is deformable (DCN, as Detectron2's DEFORM_* keys).
"""
import dataclasses
import difflib
from dataclasses import dataclass
from typing import Callable, Dict, Tuple

from .errors import ConfigError

# Bottleneck blocks in res2..res5 for each depth (ResNet paper Table 1; ResNeSt-200/269).
BLOCKS_PER_STAGE: Dict[int, Tuple[int, int, int, int]] = {
    50: (3, 4, 6, 3),
    101: (3, 4, 23, 3),
    152: (3, 8, 36, 3),
    200: (3, 24, 36, 3),
    269: (3, 30, 48, 8),
}
TRANSFORMS = ("conv", "sk", "splat")
ATTENTIONS = ("none", "se")
STEMS = ("basic", "deep")


@dataclass(frozen=True)
class ArchSpec:
    depth: int
    num_groups: int = 1  # cardinality C of the 3x3 transform
    width_per_group: int = 64  # d: res2's bottleneck width is C * d, doubled in each later stage
    transform: str = "conv"  # the 3x3: "conv" (grouped), "sk" (selective kernel), "splat" (split attention)
    radix: int = 1  # splits per cardinal group in split attention ("splat" only)
    attention: str = "none"  # after the block's last norm: "none" or "se" (squeeze-excitation)
    se_reduction: int = 16  # squeeze-excitation bottleneck ratio
    stem: str = "basic"  # "basic": 7x7 conv; "deep": three 3x3 convs (ResNet-D / ResNeSt)
    stem_width: int = 64  # basic: stem output channels; deep: width of its first two convs (output 2x)
    avd: bool = False  # strided blocks downsample with a 3x3 avg-pool after the transform (ResNeSt)
    avg_down: bool = False  # projection shortcuts downsample with a 2x2 avg-pool, then a 1x1 conv
    preact: bool = False  # pre-activation (ResNet-v2): norm and ReLU before each conv, none after the sum
    deform_on_per_stage: Tuple[bool, bool, bool, bool] = (False, False, False, False)  # DCN 3x3 in res2..res5
    deform_modulated: bool = False  # DCNv2: a learned mask on each sampling point
    deform_num_groups: int = 1  # offset groups: channel groups that get their own offsets

    @property
    def blocks_per_stage(self) -> Tuple[int, int, int, int]:
        return BLOCKS_PER_STAGE[self.depth]

    @property
    def stem_out_channels(self) -> int:
        return self.stem_width * 2 if self.stem == "deep" else self.stem_width

    def validate(self, key: Callable[[str], str] = str) -> "ArchSpec":
        """Raise ConfigError for values outside the table or combinations the papers do not define.

        ``key`` maps a field name to the name the user wrote (a keyword or a config key).
        """

        def check(ok, field, value, valid):
            if not ok:
                raise ConfigError(f"{key(field)}={value!r} is invalid: {valid}")

        check(self.depth in BLOCKS_PER_STAGE, "depth", self.depth,
              f"valid depths are {sorted(BLOCKS_PER_STAGE)}")
        check(self.transform in TRANSFORMS, "transform", self.transform, f"valid: {TRANSFORMS}")
        check(self.attention in ATTENTIONS, "attention", self.attention, f"valid: {ATTENTIONS}")
        check(self.stem in STEMS, "stem", self.stem, f"valid: {STEMS}")
        check(self.num_groups >= 1, "num_groups", self.num_groups, "must be >= 1")
        check(self.width_per_group >= 1, "width_per_group", self.width_per_group, "must be >= 1")
        check(self.radix >= 1, "radix", self.radix, "must be >= 1")
        check(self.se_reduction >= 1, "se_reduction", self.se_reduction, "must be >= 1")
        if self.transform != "splat":
            check(self.radix == 1, "radix", self.radix,
                  f"radix > 1 needs the split-attention transform, but this arch uses {self.transform!r}; "
                  "use a resnest* arch or radix 1")
        else:
            check(self.attention == "none", "attention", self.attention,
                  "split attention (radix) already attends over channels; combine it with attention 'none'")
            check(self.width_per_group % self.radix == 0, "width_per_group", self.width_per_group,
                  f"must be divisible by radix={self.radix} (the 3x3 splits each group's width radix ways)")
        check(self.se_reduction <= 256, "se_reduction", self.se_reduction,
              "must be <= 256 (res2 has 256 output channels)")
        check(not self.preact or self.stem == "basic", "preact", self.preact,
              f"pre-activation is built with the basic stem only, not {self.stem!r}")
        self._validate_deform(check)
        return self

    def _validate_deform(self, check):
        stages = self.deform_on_per_stage
        check(len(stages) == 4 and all(isinstance(on, bool) for on in stages), "deform_on_per_stage",
              list(stages), "give four booleans, for res2..res5, e.g. [False, True, True, True]")
        check(self.deform_num_groups >= 1, "deform_num_groups", self.deform_num_groups, "must be >= 1")
        if any(stages):
            check(self.transform == "conv", "deform_on_per_stage", list(stages),
                  f"deformable convolution replaces the plain or grouped 3x3, but this arch uses the "
                  f"{self.transform!r} transform; use a resnet/resnext/seresnext arch or all False")
            width = self.num_groups * self.width_per_group
            check(width % self.deform_num_groups == 0, "deform_num_groups", self.deform_num_groups,
                  f"must divide res2's bottleneck width {width}")


def _resnet(depth, **kw):
    return ArchSpec(depth=depth, **kw)


def _resnext(depth, c, d, **kw):
    return ArchSpec(depth=depth, num_groups=c, width_per_group=d, **kw)


def _resnest(depth, stem_width):
    return ArchSpec(depth=depth, transform="splat", radix=2, stem="deep", stem_width=stem_width,
                    avd=True, avg_down=True)


ARCHS: Dict[str, ArchSpec] = {
    "resnet50": _resnet(50),
    "resnet101": _resnet(101),
    "resnet152": _resnet(152),
    "resnetv2_50": _resnet(50, preact=True),
    "resnetv2_101": _resnet(101, preact=True),
    "seresnet50": _resnet(50, attention="se"),
    "seresnet101": _resnet(101, attention="se"),
    "seresnet152": _resnet(152, attention="se"),
    "resnext50_32x4d": _resnext(50, 32, 4),
    "resnext101_32x4d": _resnext(101, 32, 4),
    "resnext101_32x8d": _resnext(101, 32, 8),
    "resnext101_64x4d": _resnext(101, 64, 4),
    "resnext152_32x4d": _resnext(152, 32, 4),
    "seresnext50_32x4d": _resnext(50, 32, 4, attention="se"),
    "seresnext101_32x4d": _resnext(101, 32, 4, attention="se"),
    "seresnext101_32x8d": _resnext(101, 32, 8, attention="se"),
    "skresnext50_32x4d": _resnext(50, 32, 4, transform="sk"),
    "resnest50": _resnest(50, 32),
    "resnest101": _resnest(101, 64),
    "resnest200": _resnest(200, 64),
    "resnest269": _resnest(269, 64),
}
SPEC_FIELDS = tuple(f.name for f in dataclasses.fields(ArchSpec))


def list_backbones():
    """The names ``create_backbone`` and ``MODEL.RESNEXT.ARCH`` accept."""
    return list(ARCHS)


def get_arch(name: str, key: str = "name") -> ArchSpec:
    if name not in ARCHS:
        close = difflib.get_close_matches(str(name), ARCHS, n=3, cutoff=0.5)
        hint = f" Did you mean {' or '.join(map(repr, close))}?" if close else ""
        raise ConfigError(f"unknown backbone {key}={name!r}.{hint} Valid names: {', '.join(ARCHS)}")
    return ARCHS[name]
