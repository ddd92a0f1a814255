"""resnext_det: ResNeXt-family backbones (ResNet, ResNeXt, SE-/SK-ResNeXt, ResNeSt) for Detectron2.

Detectron2 itself is not a declared dependency: it is not on PyPI under its own name, and users
who built it from source must keep their build. `make setup` installs it only where it is missing.
"""
from setuptools import find_packages, setup

setup(
    name="resnext_det",
    version="0.1.0",
    description="ResNeXt-family detection backbones as a Detectron2 plugin",
    long_description=open("README.md", encoding="utf-8").read(),
    long_description_content_type="text/markdown",
    python_requires=">=3.9",
    packages=find_packages(include=["resnext_det", "resnext_det.*"]),
    install_requires=[
        "torch>=2.0",
        "torchvision>=0.15",
        "fvcore>=0.1.5",
        "iopath>=0.1.9",
        "pycocotools>=2.0.2",
        "numpy",
        "pillow",
        "matplotlib",
        "safetensors",
        # one process downloads a weights URI's file while the others wait (resnext_det/checkpoint/uri.py)
        "filelock",
        # C++ COCO evaluation (resnext_det.evaluation); pycocotools is the fallback where it is absent.
        "faster-coco-eval>=1.6",
    ],
    # Reference implementations the tests compare against (timm, the official ResNeSt), the
    # ONNX toolchain the export tests check with, and hypothesis for the generated bad input.
    extras_require={"test": ["pytest>=7", "timm>=0.9", "resnest==0.0.5",
                             "onnx", "onnxscript", "onnxruntime", "hypothesis>=6"]},
)
