import importlib.util
import os
import sys

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def _load_script(folder, name):
    spec = importlib.util.spec_from_file_location(f"{folder}_{name}", os.path.join(ROOT, folder, f"{name}.py"))
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def load_tool(name):
    """Import tools/<name>.py as a module (tools/ is scripts, not a package)."""
    return _load_script("tools", name)


def load_example(name):
    """Import examples/<name>.py as a module."""
    return _load_script("examples", name)


@pytest.fixture(autouse=True)
def dataset_uses_per_test():
    """A config's dataset settings (what loading a dataset checks against) are process state, set by
    check_inputs: each test starts from those before it, as each run starts in a fresh process."""
    from resnext_det.data import validate

    saved = dict(validate._SETTINGS)
    yield
    validate._SETTINGS.clear()
    validate._SETTINGS.update(saved)


@pytest.fixture(scope="session")
def tiny_shapes(tmp_path_factory):
    """A small shapes dataset registered as tiny_shapes_train / tiny_shapes_val (8 / 4 images)."""
    from resnext_det.data import ShapesSpec, register_shapes_datasets

    cache = tmp_path_factory.mktemp("shapes-cache")
    return register_shapes_datasets(ShapesSpec(num_train=8, num_val=4), prefix="tiny_shapes", cache_dir=cache)


@pytest.fixture
def detectron2_deform_classes(monkeypatch):
    """Detectron2's own DeformConv / ModulatedDeformConv classes. Without the compiled ``_C`` Detectron2
    replaces them by stubs that refuse to construct; their Python code needs ``_C`` only for CUDA and
    for the modulated op, so its module is loaded again beside an empty ``detectron2._C``."""
    import types

    import detectron2.layers
    import detectron2.modeling.backbone.resnet as resnet

    monkeypatch.setitem(sys.modules, "detectron2._C", types.ModuleType("detectron2._C"))
    path = os.path.join(os.path.dirname(detectron2.layers.__file__), "deform_conv.py")
    spec = importlib.util.spec_from_file_location("detectron2.layers._deform_conv_for_tests", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    monkeypatch.setattr(resnet, "DeformConv", module.DeformConv)
    monkeypatch.setattr(resnet, "ModulatedDeformConv", module.ModulatedDeformConv)
    return resnet


def random_norm_statistics(model, seed=0, scale=(0.5, 1.5)):
    """Random affine parameters and running statistics in every BN / FrozenBN of ``model``, so that a
    norm mapped or folded wrongly cannot go unnoticed. Returns ``model``."""
    import torch
    from detectron2.layers import FrozenBatchNorm2d

    gen = torch.Generator().manual_seed(seed)

    def uniform(t, lo, hi):
        t.copy_(torch.rand(t.shape, generator=gen) * (hi - lo) + lo)

    with torch.no_grad():
        for m in model.modules():
            if isinstance(m, (FrozenBatchNorm2d, torch.nn.BatchNorm2d)):
                uniform(m.weight, *scale)
                uniform(m.bias, -0.2, 0.2)
                uniform(m.running_mean, -0.2, 0.2)
                uniform(m.running_var, 0.5, 1.5)
    return model


def run_python(args, env=None, timeout=600):
    import subprocess

    full_env = dict(os.environ, **(env or {}))
    return subprocess.run([sys.executable] + args, cwd=ROOT, env=full_env, capture_output=True, text=True,
                          timeout=timeout)


def load_strict_json(text: str):
    """json.loads that refuses NaN / Infinity, as strict JSON parsers (JavaScript, jq) do."""
    import json

    def refuse(constant):
        raise ValueError(f"not strict JSON: {constant}")

    return json.loads(text, parse_constant=refuse)
