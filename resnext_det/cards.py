"""Architecture cards: one picture of a backbone (netscope-style) read off the built modules: the stem,
the stages, the bottleneck (which transform, which attention, where the stride sits) and a per-stage
table of blocks, channels, stride, parameters and FLOPs."""
import io
import textwrap
from dataclasses import dataclass, field
from typing import List, Optional

import torch
from torch import nn

from .layers import DeformConv, SelectiveKernel, SplitAttention, SqueezeExcite

__all__ = ["Step", "StageRow", "Card", "describe_backbone", "draw_card"]


@dataclass
class Step:
    """One box of a diagram."""

    label: str
    kind: str  # conv, deform, attention, pool, norm, sum, io: picks the colour
    strided: bool = False  # this step downsamples
    role: str = ""  # what it is in the block, for the line that says where the stride sits


@dataclass
class StageRow:
    name: str
    blocks: int
    in_channels: int
    out_channels: int
    width: int  # bottleneck width (channels of the 3x3)
    stride: int  # output stride of the stage
    transform: str
    params: int
    flops: int


@dataclass
class Card:
    name: str
    family: str
    stem: List[Step]
    block: List[Step]  # the residual branch of res3.0 (strided, with a projection), then the sum
    shortcut: List[Step]
    stride_at: str
    rows: List[StageRow]
    other_params: List[tuple] = field(default_factory=list)  # (what, params, flops) outside stem and stages
    size: int = 224

    @property
    def params(self) -> int:
        return sum(r.params for r in self.rows) + sum(p for _, p, _ in self.other_params)

    @property
    def flops(self) -> int:
        return sum(r.flops for r in self.rows) + sum(f for _, _, f in self.other_params)


def _params(module: Optional[nn.Module]) -> int:
    return sum(p.numel() for p in module.parameters()) if module is not None else 0


def _strided(conv) -> bool:
    return max(getattr(conv, "stride", (1,))) > 1


def _norm_act(conv, relu=True) -> str:
    return (" · norm" if getattr(conv, "norm", None) is not None else "") + (" · ReLU" if relu else "")


def _transform(conv2, conv2_offset) -> Step:
    """The block's 3x3, as its module says."""
    if isinstance(conv2, SelectiveKernel):
        first = conv2.branches[0]
        dilations = ", ".join(str(b.dilation[0]) for b in conv2.branches)
        return Step(f"selective kernel: {len(conv2.branches)} grouped 3x3 (dilation {dilations}), "
                    f"{first.groups} groups · norm · ReLU; softmax attention over branches", "attention", _strided(first),
                    "the 3x3")
    if isinstance(conv2, SplitAttention):
        groups = f"{conv2.groups} groups x " if conv2.groups > 1 else ""
        return Step(f"split attention: 3x3 {conv2.conv.in_channels}→{conv2.conv.out_channels}, {groups}radix "
                    f"{conv2.radix} · norm · ReLU; attention over the {conv2.radix} splits", "attention",
                    _strided(conv2.conv), "the 3x3")
    groups = f", {conv2.groups} groups" if conv2.groups > 1 else ""
    dilation = f", dilation {conv2.dilation[0]}" if conv2.dilation[0] > 1 else ""
    if isinstance(conv2, DeformConv):
        kind = "modulated deformable (DCNv2)" if conv2.modulated else "deformable (DCN)"
        return Step(f"{kind} 3x3 {conv2.in_channels}→{conv2.out_channels}{groups}{dilation}{_norm_act(conv2)}\n"
                    f"offsets{' and mask' if conv2.modulated else ''}: 3x3 conv → {conv2_offset.out_channels} ch "
                    f"(conv2_offset), {conv2.offset_groups} offset group(s)", "deform", _strided(conv2), "the 3x3")
    return Step(f"3x3 conv {conv2.in_channels}→{conv2.out_channels}{groups}{dilation}{_norm_act(conv2)}", "conv",
                _strided(conv2), "the 3x3")


def _short_transform(block) -> str:
    conv2 = block.conv2
    if isinstance(conv2, SelectiveKernel):
        text = f"SK, g{conv2.branches[0].groups}"
    elif isinstance(conv2, SplitAttention):
        text = f"split attention, g{conv2.groups} r{conv2.radix}"
    else:
        text = ("DCNv2 " if getattr(conv2, "modulated", False) else "DCN " if isinstance(conv2, DeformConv) else "") + \
            (f"3x3, g{conv2.groups}" if conv2.groups > 1 else "3x3")
    return text + (" + SE" if block.se is not None else "")


def _block_steps(block) -> tuple:
    steps = []
    if block.preact_norm is not None:
        steps.append(Step("norm · ReLU (pre-activation)", "norm"))
    c1 = block.conv1
    steps.append(Step(f"1x1 conv {c1.in_channels}→{c1.out_channels}{_norm_act(c1)}", "conv", _strided(c1),
                      "the first 1x1"))
    steps.append(_transform(block.conv2, block.conv2_offset))
    if isinstance(block.avd, nn.AvgPool2d):
        steps.append(Step(f"3x3 avg-pool, stride {block.avd.stride}", "pool", True, "an avg-pool after the 3x3"))
    c3 = block.conv3
    steps.append(Step(f"1x1 conv {c3.in_channels}→{c3.out_channels}{_norm_act(c3, relu=False)}", "conv"))
    if isinstance(block.se, SqueezeExcite):
        se = block.se
        steps.append(Step(f"squeeze-excitation: avg-pool · fc {se.fc1.in_channels}→{se.fc1.out_channels} · ReLU · "
                          f"fc · sigmoid · scale", "attention"))
    steps.append(Step("+" if block.preact_norm is not None else "+ · ReLU", "sum"))
    shortcut = []
    if isinstance(block.shortcut_pool, nn.AvgPool2d):
        shortcut.append(Step(f"{block.shortcut_pool.kernel_size}x{block.shortcut_pool.kernel_size} avg-pool, "
                             f"stride {block.shortcut_pool.stride}", "pool", True, "an avg-pool before the projection"))
    if block.shortcut is not None:
        sc = block.shortcut
        reads = " (reads the normalized input)" if block.preact_norm is not None else ""
        shortcut.append(Step(f"1x1 conv {sc.in_channels}→{sc.out_channels}{_norm_act(sc, relu=False)}{reads}",
                             "conv", _strided(sc), "the 1x1 projection"))
    else:
        shortcut.append(Step("identity", "io"))
    strided = [s.role for s in steps + shortcut if s.strided]
    return steps, shortcut, ", ".join(strided) or "nowhere (stride 1)"


def _stem_steps(stem) -> List[Step]:
    steps = []
    for name in ("conv1", "conv2", "conv3"):
        conv = getattr(stem, name, None)
        if conv is not None:
            k = conv.kernel_size[0]
            stride = f", stride {conv.stride[0]}" if _strided(conv) else ""
            steps.append(Step(f"{k}x{k} conv {conv.in_channels}→{conv.out_channels}{stride}"
                              f"{_norm_act(conv, relu=conv.norm is not None)}", "conv", _strided(conv)))
    if getattr(stem.conv1, "norm", None) is None:
        steps[-1].label += " (no norm: blocks normalize their input)"
    steps.append(Step("3x3 max-pool, stride 2", "pool", True))
    return steps


def _family(spec) -> str:
    if spec.transform == "splat":
        name = f"ResNeSt-{spec.depth} (radix {spec.radix}, deep stem, avg-pool downsampling)"
    elif spec.transform == "sk":
        name = f"SK-ResNeXt-{spec.depth} ({spec.num_groups}x{spec.width_per_group}d)"
    else:
        base = f"ResNeXt-{spec.depth} ({spec.num_groups}x{spec.width_per_group}d)" if spec.num_groups > 1 \
            else f"ResNet-{spec.depth}"
        if spec.preact:
            base = base.replace(f"-{spec.depth}", f"-v2-{spec.depth}") + ", pre-activation"
        name = ("SE-" if spec.attention == "se" else "") + base
    deform = [f"res{i + 2}" for i, on in enumerate(spec.deform_on_per_stage) if on]
    if deform:
        name += f", {'DCNv2' if spec.deform_modulated else 'DCN'} in {', '.join(deform)}"
    return name


def describe_backbone(name: str, model: nn.Module, size: int = 224) -> Card:
    """Read ``model`` (a backbone with res2..res5 built) into a card; FLOPs on one size x size image."""
    from fvcore.nn import FlopCountAnalysis

    from .complexity import flop_analysis

    with torch.no_grad():
        flops = flop_analysis(FlopCountAnalysis, model.eval(), (torch.zeros(1, 3, size, size),)).by_module()
    rows = []
    for stage_name, stage in zip(model.stage_names, model.stages):
        first = stage[0]
        rows.append(StageRow(stage_name, len(stage), first.in_channels, first.out_channels, first.conv1.out_channels,
                             model._out_feature_strides[stage_name], _short_transform(first), _params(stage),
                             flops.get(stage_name, 0)))
    stem_row = StageRow("stem", 1, model.stem.in_channels, model.stem.out_channels, model.stem.out_channels,
                        model.stem.stride, "", _params(model.stem), flops.get("stem", 0))
    other = [("output norms", _params(model.output_norms), flops.get("output_norms", 0))] if model.output_norms else []
    block, shortcut, stride_at = _block_steps(model.res3[0])
    return Card(name, _family(model.spec), _stem_steps(model.stem), block, shortcut, stride_at, [stem_row] + rows,
                other, size)


_COLOURS = {"conv": "#cfe2f3", "deform": "#d9c3e6", "attention": "#fde2c4", "pool": "#d9ead3", "norm": "#eeeeee",
            "sum": "#ffffff", "io": "#fff2cc", "stage": "#dfe9f7"}


def _box(ax, x, y, w, h, step: Step, fontsize=8):
    from matplotlib.patches import FancyBboxPatch

    edge = "#c0392b" if step.strided else "#555555"
    ax.add_patch(FancyBboxPatch((x - w / 2, y - h / 2), w, h, boxstyle="round,pad=0.004,rounding_size=0.01",
                                facecolor=_COLOURS[step.kind], edgecolor=edge, linewidth=1.8 if step.strided else 0.8))
    label = "\n".join(textwrap.fill(line, int(w * 190)) for line in step.label.split("\n"))
    ax.text(x, y, label, ha="center", va="center", fontsize=fontsize)
    if step.strided:
        ax.text(x + w / 2 - 0.004, y + h / 2 - 0.004, "stride", ha="right", va="top", fontsize=6, color="#c0392b")


def _arrow(ax, x0, y0, x1, y1):
    ax.annotate("", xy=(x1, y1), xytext=(x0, y0), arrowprops=dict(arrowstyle="->", color="#333333", lw=0.9))


def _column(ax, x, top, bottom, w, steps, fontsize=8):
    """Steps stacked from top to bottom with arrows; returns the y of each box."""
    n = len(steps)
    gap = (top - bottom) / n
    h = min(0.075, gap * 0.72)
    ys = [top - gap * (i + 0.5) for i in range(n)]
    for i, (y, step) in enumerate(zip(ys, steps)):
        _box(ax, x, y, w, h, step, fontsize)
        if i:
            _arrow(ax, x, ys[i - 1] - h / 2, x, y + h / 2)
    return ys, h


def draw_card(card: Card, path: str, dpi: int = 90) -> str:
    """Write ``card`` as a PNG picture to ``path``."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig = plt.figure(figsize=(12, 8.6), dpi=dpi)
    ax = fig.add_axes([0, 0, 1, 1])
    ax.set_xlim(0, 1)
    ax.set_ylim(0, 1)
    ax.axis("off")
    ax.text(0.02, 0.98, card.name, fontsize=13, weight="bold", va="top")
    ax.text(0.02, 0.948, card.family, fontsize=10.5, va="top")
    ax.text(0.02, 0.92, f"{card.params / 1e6:.2f}M parameters, {card.flops / 1e9:.2f} GFLOPs at {card.size}x{card.size} "
            "(backbone without classifier; fvcore, one multiply-add = one FLOP)", fontsize=9, va="top")

    # The network: input, stem, stages.
    ax.text(0.15, 0.875, "network", fontsize=10, weight="bold", ha="center")
    stages = [Step(f"{r.name}: {r.blocks} blocks, {r.out_channels} ch, /{r.stride}", "stage") for r in card.rows[1:]]
    normalized = " · norm · ReLU each (output norms)" if card.other_params else ""
    net = [Step(f"image 3x{card.size}x{card.size}", "io")] + card.stem + stages + \
        [Step(f"features res2..res5{normalized}", "io")]
    _column(ax, 0.15, 0.865, 0.37, 0.25, net)

    # The block: residual branch in the middle, shortcut on the right.
    ax.text(0.52, 0.875, "bottleneck (res3.0: strided, with projection)", fontsize=10, weight="bold", ha="center")
    ys, h = _column(ax, 0.50, 0.82, 0.37, 0.36, card.block)
    _box(ax, 0.50, 0.845, 0.12, 0.03, Step("block input", "io"))
    _arrow(ax, 0.50, 0.83, 0.50, ys[0] + h / 2)
    sc_ys, sc_h = _column(ax, 0.83, ys[0] + h / 2, ys[-1] + h / 2, 0.27, card.shortcut)
    if card.block[0].kind == "norm" and card.shortcut[-1].kind != "io":  # v2: the projection reads the normalized input
        _arrow(ax, 0.68, ys[0], 0.83, sc_ys[0] + sc_h / 2)
    else:
        _arrow(ax, 0.56, 0.845, 0.83, sc_ys[0] + sc_h / 2)
    _arrow(ax, 0.83, sc_ys[-1] - sc_h / 2, 0.68, ys[-1])
    ax.text(0.83, ys[0] + h / 2 + 0.012, "shortcut", fontsize=9, ha="center", style="italic")
    ax.text(0.50, 0.345, f"a strided block downsamples (red boxes) in: {card.stride_at}", fontsize=9, ha="center",
            color="#c0392b")

    # The per-stage table.
    header = ["stage", "blocks", "in → out ch", "3x3 width", "output stride", "3x3 transform", "params (M)",
              f"GFLOPs @{card.size}"]
    cells = [[r.name, str(r.blocks), f"{r.in_channels} → {r.out_channels}", str(r.width) if r.name != "stem" else "",
              f"/{r.stride}", r.transform, f"{r.params / 1e6:.2f}", f"{r.flops / 1e9:.3f}"] for r in card.rows]
    cells += [[what, "", "", "", "", "", f"{p / 1e6:.3f}", f"{f / 1e9:.3f}"] for what, p, f in card.other_params]
    cells.append(["total", str(sum(r.blocks for r in card.rows[1:])), "", "", "", "", f"{card.params / 1e6:.2f}",
                  f"{card.flops / 1e9:.2f}"])
    table = ax.table(cellText=cells, colLabels=header, bbox=[0.02, 0.02, 0.96, 0.30], cellLoc="center")
    table.auto_set_font_size(False)
    table.set_fontsize(8.5)
    for (row, _), cell in table.get_celld().items():
        cell.set_edgecolor("#bbbbbb")
        if row == 0:
            cell.set_facecolor("#e8e8e8")
    buffer = io.BytesIO()
    fig.savefig(buffer, dpi=dpi)
    plt.close(fig)
    # A diagram of a few flat colours: a 64-colour palette keeps it sharp at a third of the size.
    from PIL import Image

    Image.open(buffer).convert("RGB").quantize(colors=64).save(path, optimize=True)
    return path
