"""Checks of the files and folders a user names, each failing with one PathError line that names the
path, what it was expected to be and what it is.

``what`` names the path for the user: a config key ("OUTPUT_DIR", shown as ``OUTPUT_DIR='out'``) or a
description ("config file", shown as ``config file out.yaml``). ``fix`` is appended after "; ".
Paths with ``://`` (URLs, ``detectron2://``, ``torchvision://`` ...) are not local files: the
callers leave them to their handlers.

For a dataset registered with ``register_coco_instances(name, {}, json_file, image_root)`` the two
checks are :func:`coco_dataset_paths` (``tools/train_net.py --register-coco`` calls it).
"""
import errno
import os
import re
import shutil
import stat
import tempfile
from typing import Optional

from .errors import PathError

__all__ = ["PathError", "readable_file", "existing_dir", "writable_dir", "writable_file_path", "free_bytes",
           "check_free_space", "coco_dataset_paths", "human_bytes", "is_local"]


def is_local(path) -> bool:
    return "://" not in str(path)


def _label(what: str, path) -> str:
    if re.fullmatch(r"[A-Z][A-Z0-9_.]*", what):
        return f"{what}={str(path)!r}"
    return f"{what} {path}" if str(path).isprintable() else f"{what} {str(path)!r}"


def _fail(what: str, path, problem: str, fix: str = "") -> PathError:
    return PathError(f"{_label(what, path)} {problem}" + (f"; {fix}" if fix else ""))


def _check_name(path, what: str, fix: str, kind: str) -> None:
    """A path that names something: not blank, no NUL character (no file name can hold one)."""
    if not str(path).strip():
        raise _fail(what, path, f"is empty: name a {kind}", fix)
    if "\0" in str(path):
        raise _fail(what, path, "contains a NUL character, which no file name can", fix)


def _stat(path, what, fix):
    """os.stat, or None if nothing is there; a PathError for a path that cannot be looked at."""
    try:
        return os.stat(path)
    except FileNotFoundError:
        return None
    except NotADirectoryError:
        return None  # a parent is a file: reported as missing, with the parent named by the caller
    except OSError as e:  # permission denied on a parent, name too long, a loop of links ...
        raise _fail(what, path, f"cannot be looked at ({e.strerror})", fix) from None


def _missing_reason(path) -> str:
    """'does not exist', or why not: the first ancestor that is missing or is a file."""
    parent = os.path.dirname(os.path.abspath(path))
    while parent and not os.path.exists(parent):
        parent = os.path.dirname(parent)
    if parent and not os.path.isdir(parent):
        return f"does not exist ({parent} is a file, not a folder)"
    return "does not exist"


def readable_file(path, what: str, fix: str = "", allow_empty: bool = False) -> str:
    """``path`` is a regular file that can be opened for reading (and, unless ``allow_empty``, is not
    empty). Returns it unchanged."""
    _check_name(path, what, fix, "file")
    st = _stat(path, what, fix)
    if st is None:
        raise _fail(what, path, _missing_reason(path), fix)
    if stat.S_ISDIR(st.st_mode):
        raise _fail(what, path, "is a folder, not a file", fix)
    if not stat.S_ISREG(st.st_mode):
        raise _fail(what, path, "is not a regular file (a device, pipe or socket)", fix)
    try:
        with open(path, "rb"):
            pass
    except OSError as e:
        raise _fail(what, path, f"cannot be read ({e.strerror})", fix) from None
    if st.st_size == 0 and not allow_empty:
        raise _fail(what, path, "is empty (0 bytes)", fix)
    return path


def existing_dir(path, what: str, fix: str = "") -> str:
    """``path`` is a folder whose entries can be listed. Returns it unchanged."""
    _check_name(path, what, fix, "folder")
    st = _stat(path, what, fix)
    if st is None:
        raise _fail(what, path, _missing_reason(path), fix)
    if not stat.S_ISDIR(st.st_mode):
        raise _fail(what, path, "is a file, not a folder", fix)
    try:
        os.listdir(path)
    except OSError as e:
        raise _fail(what, path, f"cannot be listed ({e.strerror})", fix) from None
    return path


def _nearest_existing(path: str) -> str:
    path = os.path.abspath(path)
    while not os.path.lexists(path):
        path = os.path.dirname(path)
    return path


def _probe_write(folder: str) -> Optional[str]:
    """None if a file can be created in ``folder``, else why not (the OS's words). A real write,
    since permission bits do not tell (root, read-only mounts, ACLs)."""
    try:
        fd, probe = tempfile.mkstemp(dir=folder, prefix=".write-test-")
    except OSError as e:
        return e.strerror or str(e)
    os.close(fd)
    os.remove(probe)
    return None


def writable_dir(path, what: str, fix: str = "", create: bool = False) -> str:
    """``path`` is a folder in which files can be written, or can be created as one (then created if
    ``create``). Returns it unchanged."""
    _check_name(path, what, fix, "folder")
    st = _stat(path, what, fix)
    if st is not None:
        if not stat.S_ISDIR(st.st_mode):
            raise _fail(what, path, "is a file, not a folder", fix)
        why = _probe_write(path)
        if why:
            raise _fail(what, path, f"is not writable ({why})", fix)
        return path
    ancestor = _nearest_existing(path)
    if not os.path.isdir(ancestor):
        raise _fail(what, path, f"cannot be created: {ancestor} is a file, not a folder", fix)
    why = _probe_write(ancestor)
    if why:
        raise _fail(what, path, f"cannot be created: {ancestor} is not writable ({why})", fix)
    if create:
        try:
            os.makedirs(path, exist_ok=True)
        except OSError as e:
            raise _fail(what, path, f"cannot be created ({e.strerror})", fix) from None
    return path


def writable_file_path(path, what: str, fix: str = "") -> str:
    """``path`` can be written as a file: it is not a folder, and its folder is (or can be made)
    writable. Returns it unchanged."""
    _check_name(path, what, fix, "file")
    if os.path.isdir(path):
        raise _fail(what, path, "is a folder, not a file", fix)
    folder = os.path.dirname(os.path.abspath(path))
    try:
        writable_dir(folder, "its folder", fix)
    except PathError as e:
        raise _fail(what, path, f"cannot be written: {e}", fix) from None
    return path


def free_bytes(path) -> int:
    """Free bytes (for this user) on the disk that holds ``path`` or would hold it."""
    return shutil.disk_usage(_nearest_existing(str(path))).free


def human_bytes(n: float) -> str:
    for unit in ("bytes", "KB", "MB", "GB"):
        if abs(n) < 1000 or unit == "GB":
            return f"{n:.0f} {unit}" if unit == "bytes" else f"{n:.1f} {unit}"
        n /= 1000
    return f"{n:.1f} TB"


def check_free_space(path, needed: int, what: str, for_what: str, fix: str = "") -> int:
    """PathError unless the disk of ``path`` has ``needed`` bytes free. Returns the free bytes."""
    free = free_bytes(path)
    if free < needed:
        raise _fail(what, path, f"is on a disk with {human_bytes(free)} free, less than the "
                                f"{human_bytes(needed)} {for_what} needs", fix or "free space or choose another folder")
    return free


def coco_dataset_paths(json_file, image_root, name: str = "") -> None:
    """The paths of a COCO-format dataset (``register_coco_instances`` / ``--register-coco``): the
    annotation file is a readable, non-empty file, the image folder a listable folder."""
    dataset = f"dataset '{name}': " if name else ""
    if is_local(json_file):
        readable_file(json_file, f"{dataset}annotation file", "pass the COCO-format .json of the dataset")
    if is_local(image_root):
        existing_dir(image_root, f"{dataset}image folder", "pass the folder the json's file_name entries are "
                                                           "relative to")


def is_disk_full(error: BaseException) -> bool:
    return isinstance(error, OSError) and error.errno in (errno.ENOSPC, errno.EDQUOT, errno.EFBIG)
