"""The ResNeXt paper's three equivalent block forms (Fig. 3) give the same output for the same weights.

(a) C explicit paths, each 1x1 -> 3x3 -> 1x1, outputs summed;
(b) C paths up to the 3x3, concatenated, then one 1x1;
(c) one 1x1, one grouped 3x3, one 1x1: the form the plugin implements.
Norms are affine per channel in eval mode, so each path takes its slice of every norm.
"""
import torch
import torch.nn.functional as F

from conftest import random_norm_statistics
from resnext_det import create_backbone


def _affine(norm, x, channels=slice(None)):
    scale = norm.weight / torch.sqrt(norm.running_var + norm.eps)
    shift = norm.bias - norm.running_mean * scale
    return x * scale[channels, None, None] + shift[channels, None, None]


def _block():
    torch.manual_seed(0)
    return random_norm_statistics(create_backbone("resnext50_32x4d", out_features=["res2"]).res2[1].eval())


def _path_to_3x3(block, x, g, width):
    rows = slice(g * width, (g + 1) * width)
    h = F.relu(_affine(block.conv1.norm, F.conv2d(x, block.conv1.weight[rows]), rows))
    return F.relu(_affine(block.conv2.norm, F.conv2d(h, block.conv2.weight[rows], padding=1), rows))


def test_three_forms_are_equivalent():
    block = _block()
    cardinality = block.conv2.groups
    width = block.conv2.out_channels // cardinality
    assert (cardinality, width) == (32, 4)
    x = torch.randn(2, 256, 14, 14)
    with torch.no_grad():
        form_c = block(x)
        paths = [_path_to_3x3(block, x, g, width) for g in range(cardinality)]
        w3 = block.conv3.weight
        form_a = sum(F.conv2d(p, w3[:, g * width:(g + 1) * width]) for g, p in enumerate(paths))
        form_b = F.conv2d(torch.cat(paths, dim=1), w3)
        outs = [F.relu(_affine(block.conv3.norm, s) + x) for s in (form_a, form_b)]
    torch.testing.assert_close(outs[0], form_c, rtol=1e-4, atol=1e-4)
    torch.testing.assert_close(outs[1], form_c, rtol=1e-4, atol=1e-4)


def test_paper_parameter_count_of_one_block():
    # Fig. 3: each form of the 256-d, C=32, d=4 block has 70,144 weights (norms not counted).
    block = _block()
    weights = sum(block.get_submodule(n).weight.numel() for n in ("conv1", "conv2", "conv3"))
    assert weights == 70144
