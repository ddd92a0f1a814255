"""Your own COCO-format datasets, registered by name (``tools/train_net.py --register-coco``).

A dataset registered here is an ordinary Detectron2 COCO dataset (``register_coco_instances``), so
every check of ``validate.py`` applies to it once a config trains or evaluates on it.
"""
import os
from typing import Iterable, List, Sequence

from detectron2.data import DatasetCatalog, MetadataCatalog
from detectron2.data.datasets import register_coco_instances

from .validate import DatasetError

__all__ = ["register_coco", "register_coco_datasets"]


def register_coco(name: str, json_file: str, image_root: str) -> str:
    """Register the COCO instances file ``json_file`` with images under ``image_root`` as ``name``.

    The paths are checked first (one-line DatasetError naming the problem). Registering a name
    again with the same files does nothing; a name that is taken by other files is refused.
    """
    if not name or name != name.strip() or "," in name:
        raise DatasetError(f"--register-coco: dataset name {name!r} is invalid; use a plain name such as mine_train")
    json_file = _checked_path(name, json_file, "annotation file")
    image_root = _checked_path(name, image_root, "image folder")
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


def _checked_path(name: str, path: str, what: str) -> str:
    """The absolute ``path`` of an annotation file or image folder that exists and can be read."""
    full = os.path.abspath(os.path.expanduser(path))
    folder = what == "image folder"
    where = f"--register-coco {name}: {what} {full}"
    if not os.path.exists(full):
        raise DatasetError(f"{where} does not exist; check the path")
    if folder != os.path.isdir(full):
        raise DatasetError(f"{where} is a {'file' if folder else 'folder'}; pass "
                           f"{'the folder that holds the images' if folder else 'the COCO instances JSON file'}")
    if not os.access(full, os.R_OK | (os.X_OK if folder else 0)):
        raise DatasetError(f"{where} cannot be read (permission denied); fix its permissions")
    return full
