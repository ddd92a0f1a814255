"""Datasets: the embedded synthetic shapes detection dataset, your own COCO-format datasets
registered by name, and dataset checks.

Importing this package registers `shapes_train` and `shapes_val` (default :class:`ShapesSpec`)
in Detectron2's catalogs. Their files are drawn on first use, under :func:`default_cache_dir`.
:func:`check_datasets` has any registered dataset checked when loaded (see ``validate.py``).
"""
from .coco import register_coco, register_coco_datasets
from .datasets import (
    DatasetNotFoundError,
    check_dataset_available,
    default_cache_dir,
    ensure_shapes_generated,
    register_shapes_datasets,
    shapes_dataset_root,
)
from .synthetic import SHAPE_CLASSES, ShapesSpec, generate_shapes_dataset, render_shapes_image
from .validate import DatasetError, check_datasets

__all__ = [
    "SHAPE_CLASSES",
    "DatasetError",
    "DatasetNotFoundError",
    "ShapesSpec",
    "check_dataset_available",
    "check_datasets",
    "default_cache_dir",
    "ensure_shapes_generated",
    "generate_shapes_dataset",
    "register_coco",
    "register_coco_datasets",
    "register_shapes_datasets",
    "render_shapes_image",
    "shapes_dataset_root",
]

register_shapes_datasets()
