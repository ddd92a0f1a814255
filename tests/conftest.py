import importlib.util
import os
import sys

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def load_tool(name):
    """Import tools/<name>.py as a module (tools/ is scripts, not a package)."""
    spec = importlib.util.spec_from_file_location(f"tool_{name}", os.path.join(ROOT, "tools", f"{name}.py"))
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="session")
def tiny_shapes(tmp_path_factory):
    """A small shapes dataset registered as tiny_shapes_train / tiny_shapes_val (8 / 4 images)."""
    from resnext_det.data import ShapesSpec, register_shapes_datasets

    cache = tmp_path_factory.mktemp("shapes-cache")
    return register_shapes_datasets(ShapesSpec(num_train=8, num_val=4), prefix="tiny_shapes", cache_dir=cache)


def run_python(args, env=None, timeout=600):
    import subprocess

    full_env = dict(os.environ, **(env or {}))
    return subprocess.run([sys.executable] + args, cwd=ROOT, env=full_env, capture_output=True, text=True,
                          timeout=timeout)
