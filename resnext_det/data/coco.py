"""Your own COCO-format datasets, registered by name (``tools/train_net.py --register-coco``).

A dataset registered here is an ordinary Detectron2 COCO dataset (``register_coco_instances``), so
every check of ``validate.py`` applies to it once a config trains or evaluates on it.
"""
import os
from typing import Iterable, List, Sequence, Tuple

from detectron2.data import DatasetCatalog, MetadataCatalog
from detectron2.data.datasets import register_coco_instances

from ..paths import existing_dir, readable_file
from .validate import DatasetError

__all__ = ["register_coco", "register_coco_datasets"]


def register_coco(name: str, json_file: str, image_root: str) -> str:
    """Register the COCO instances file ``json_file`` with images under ``image_root`` as ``name``.

    The paths are checked first (one-line PathError naming the path and the problem). Registering a name
    again with the same files does nothing; a name that is taken by other files is refused.
    """
    if not name or name != name.strip() or "," in name:
        raise DatasetError(f"--register-coco: dataset name {name!r} is invalid; use a plain name such as mine_train")
    json_file, image_root = _checked_paths(name, json_file, image_root)
    if name in DatasetCatalog.list():
        meta = MetadataCatalog.get(name)
        if (meta.get("json_file"), meta.get("image_root")) == (json_file, image_root):
            return name
        taken = meta.get("json_file") or "another loader"
        raise DatasetError(f"--register-coco {name}: that name is already registered (for {taken}); "
                           "choose another name")
    register_coco_instances(name, {}, json_file, image_root)
    return name


def register_coco_datasets(entries: Iterable[Sequence[str]]) -> List[str]:
    """:func:`register_coco` for each (name, json_file, image_root); returns the names."""
    return [register_coco(*entry) for entry in entries or ()]


def _checked_paths(name: str, json_file: str, image_root: str) -> Tuple[str, str]:
    """The absolute paths of an annotation file and an image folder that exist and can be read
    (resnext_det/paths.py: one-line PathError naming the path and what was expected)."""
    json_file, image_root = (os.path.abspath(os.path.expanduser(p)) for p in (json_file, image_root))
    readable_file(json_file, f"--register-coco {name}: annotation file", "pass the COCO instances JSON file")
    existing_dir(image_root, f"--register-coco {name}: image folder", "pass the folder that holds the images")
    return json_file, image_root
