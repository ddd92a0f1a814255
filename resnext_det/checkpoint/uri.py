"""MODEL.WEIGHTS by name: ``torchvision://``, ``timm://`` and ``resnest://`` through Detectron2's PathManager.

:func:`resolve_weights` downloads the publisher's file once into ``$RESNEXT_DET_CACHE/weights/``
(default ``~/.cache/resnext_det``), checks it, converts it with ``convert_state_dict`` and writes the
converted checkpoint atomically; later calls (and other processes) find it there, without network.
One process downloads while the others wait on a file lock. Importing this module registers
:class:`WeightsURIHandler`, so Detectron2's checkpointer and ``PathManager`` accept the URIs; the
converted file names the backbone's own tensors and asks for Detectron2's suffix matching, as
Detectron2's ImageNet files do, so it loads into ``backbone.bottom_up.*`` (FPN) or ``backbone.*``.
"""
import hashlib
import logging
import os
from typing import Dict, Optional
from urllib.parse import urlparse

import torch
from detectron2.utils.file_io import PathHandler, PathManager

from .atomic import atomic_write, remove_stale_temporaries
from .convert import convert_state_dict, input_settings
from .download import MIRROR_ENV, check_sha256, download, https_url, sha256_of
from .io import CheckpointError, read_state_dict
from .sources import SCHEMES, WeightsEntry, is_weights_uri, lookup_weights

__all__ = ["weights_cache_dir", "resolve_weights", "expected_input", "WeightsURIHandler", "local_weights",
           "check_weights_uri"]

logger = logging.getLogger(__name__)


def weights_cache_dir() -> str:
    """``$RESNEXT_DET_CACHE/weights`` (default ``~/.cache/resnext_det/weights``), read at each call."""
    from ..data.datasets import default_cache_dir

    return os.path.join(str(default_cache_dir()), "weights")


def _converted_path(entry: WeightsEntry) -> str:
    """One file per URI and content: another URL, hash, layout or arch registered later is another file."""
    key = hashlib.sha256("\n".join([entry.url, entry.sha256, entry.source, entry.arch]).encode()).hexdigest()[:8]
    scheme, name = entry.uri.split("://", 1)
    return os.path.join(weights_cache_dir(), scheme, f"{name.replace('/', '.')}-{key}.pth")


def _local_file(url: str):
    """The path of a file:// URL or a plain path; None for a URL to download."""
    if url.startswith("file://"):
        return urlparse(url).path
    return None if "://" in url else os.path.expanduser(url)


def _download_path(entry: WeightsEntry) -> str:
    """Where the publisher's file is kept: downloads/HOST/PATH of its URL (also the place to put it by hand)."""
    parsed = urlparse(https_url(entry.url))
    return os.path.join(weights_cache_dir(), "downloads", parsed.netloc, *parsed.path.lstrip("/").split("/"))


def _offline_hint(entry: WeightsEntry, path: str) -> str:
    return (f"Put the file at {path} by hand (it is checked and converted on the next run), set ${MIRROR_ENV}, "
            f"or convert a copy: tools/convert_pretrained.py --source {entry.source} --arch {entry.arch} FILE OUT.pth "
            "and set MODEL.WEIGHTS to OUT.pth")


def _fetch(entry: WeightsEntry) -> str:
    """A checked local copy of the entry's file: a local path, the cached download, or a new download."""
    local = _local_file(entry.url)
    if local is not None:
        if not os.path.isfile(local):
            raise CheckpointError(f"{local} does not exist")
        check_sha256(sha256_of(local), entry.sha256, local)
        return local
    path = _download_path(entry)
    if os.path.isfile(path):  # a previous download, or a file put there by hand
        try:
            check_sha256(sha256_of(path), entry.sha256, path)
        except CheckpointError:
            os.remove(path)
            raise
        return path
    return download(entry.url, path, entry.sha256, _offline_hint(entry, path))


class _Exclusive:
    """A file lock per converted file: one process downloads and converts, the others wait, then find it."""

    def __init__(self, target: str, uri: str):
        from filelock import FileLock

        folder = os.path.join(weights_cache_dir(), ".locks")
        os.makedirs(folder, exist_ok=True)
        name = os.path.relpath(target, weights_cache_dir()).replace(os.sep, ".")
        self.lock, self.uri = FileLock(os.path.join(folder, name + ".lock")), uri

    def __enter__(self):
        from filelock import Timeout

        try:
            self.lock.acquire(timeout=0)
        except Timeout:
            logger.info("Another process is downloading %s; waiting for it", self.uri)
            self.lock.acquire()
        return self

    def __exit__(self, *exc):
        self.lock.release()


def resolve_weights(uri: str) -> str:
    """The converted checkpoint ``uri`` names, downloaded and converted on first use.

    Raises CheckpointError with one line: unknown name, no network (naming the URL, where to put the
    file by hand and the tools/convert_pretrained.py fallback), HTTP error, truncated or corrupt file,
    wrong SHA-256. A file that fails is removed from the cache.
    """
    entry = lookup_weights(uri)
    target = _converted_path(entry)
    if os.path.isfile(target):
        return target
    with _Exclusive(target, entry.uri):
        if os.path.isfile(target):  # another process made it while this one waited
            return target
        try:
            raw = _fetch(entry)
        except CheckpointError as e:
            raise CheckpointError(f"weights {entry.uri}: {e}") from None
        try:
            result = convert_state_dict(read_state_dict(raw), entry.source, entry.arch)
        except CheckpointError as e:
            kept = _local_file(entry.url) is not None
            if not kept:
                os.remove(raw)
            raise CheckpointError(f"weights {entry.uri}: {e}" + ("" if kept else "; removed it from the cache")) \
                from None
        os.makedirs(os.path.dirname(target), exist_ok=True)
        remove_stale_temporaries(os.path.dirname(target))
        checkpoint = {"model": result.state_dict, "__author__": f"resnext_det: {entry.uri} from {entry.url}",
                      "matching_heuristics": True}  # backbone-relative names: Detectron2 matches them by suffix
        atomic_write(target, lambda f: torch.save(checkpoint, f))
        logger.info("Converted %s (%s, %d tensors) to %s", entry.uri, entry.url, len(result.state_dict), target)
    return target


def expected_input(entry: WeightsEntry) -> Dict[str, object]:
    """The config lines the entry's weights expect: INPUT.FORMAT, MODEL.PIXEL_MEAN/STD, STRIDE_IN_1X1."""
    settings = input_settings(entry.source, entry.arch)
    if entry.source != "detectron":
        settings.update({"MODEL.PIXEL_MEAN": list(entry.pixel_mean), "MODEL.PIXEL_STD": list(entry.pixel_std)})
    return settings


class WeightsURIHandler(PathHandler):
    """iopath handler: ``PathManager.get_local_path("torchvision://resnet50")`` is the converted file."""

    def _get_supported_prefixes(self):
        return [f"{scheme}://" for scheme in SCHEMES]

    def _get_local_path(self, path: str, force: bool = False, **kwargs) -> str:
        self._check_kwargs(kwargs)
        return resolve_weights(path)

    def _open(self, path: str, mode: str = "r", buffering: int = -1, **kwargs):
        self._check_kwargs(kwargs)
        if mode not in ("r", "rb"):
            raise CheckpointError(f"{path} is read-only (mode {mode!r})")
        return open(resolve_weights(path), mode, buffering)

    def _exists(self, path: str, **kwargs) -> bool:
        return self._isfile(path, **kwargs)

    def _isfile(self, path: str, **kwargs) -> bool:
        self._check_kwargs(kwargs)
        try:
            lookup_weights(path)
        except CheckpointError:
            return False
        return True


PathManager.register_handler(WeightsURIHandler())


def local_weights(uri: str) -> str:
    """A local file for any MODEL.WEIGHTS URI: ours (resolved and converted) or Detectron2's own
    (``detectron2://``, ``https://``, ``catalog://``: downloaded into iopath's cache as Detectron2 does).
    Raises CheckpointError with one line when it cannot be had."""
    if is_weights_uri(uri):
        return resolve_weights(uri)
    try:
        path = PathManager.get_local_path(uri)
    except Exception as e:  # urllib and iopath errors: no network, HTTP error, unknown catalog name
        url = _detectron2_url(uri)
        raise CheckpointError(f"MODEL.WEIGHTS={uri!r} could not be downloaded from {url} ({type(e).__name__}: "
                              f"{' '.join(str(e).split())}); without network, put the file at "
                              f"{_iopath_cache_path(url)} by hand") from None
    if not os.path.isfile(path):
        raise CheckpointError(f"MODEL.WEIGHTS={uri!r}: no handler knows {uri.split('://')[0]}://; weights URIs are "
                              f"{', '.join(s + '://' for s in SCHEMES)}, and Detectron2's detectron2://, https://")
    return path


def _detectron2_url(uri: str) -> str:
    from detectron2.utils.file_io import Detectron2Handler

    if uri.startswith(Detectron2Handler.PREFIX):
        return Detectron2Handler.S3_DETECTRON2_PREFIX + uri[len(Detectron2Handler.PREFIX):]
    return uri


def _iopath_cache_path(url: str) -> str:
    """Where iopath's HTTPURLHandler looks for ``url`` before downloading it."""
    from iopath.common.file_io import get_cache_dir

    parsed = urlparse(url)
    return os.path.join(get_cache_dir(), os.path.dirname(parsed.path.lstrip("/")), url.split("/")[-1])


def check_weights_file(uri: str, build_model, arch: str, key: str = "MODEL.WEIGHTS",
                       preset: Optional[str] = None, preset_key: str = "") -> Optional[WeightsEntry]:
    """The file ``uri`` names can be had (downloaded and converted now) and fits the model
    ``build_model()`` makes (``arch`` names the setting that chose its backbone). For a weights URI of
    the table, its arch must be ``preset`` (the setting ``preset_key``) where one is given; returns
    that entry, or None for detectron2:// and https:// files."""
    from .model_weights import check_weights_fit

    if not is_weights_uri(uri):
        check_weights_fit(local_weights(uri), build_model, arch, key=key, name=uri)
        return None
    entry = lookup_weights(uri)
    if preset is not None and entry.arch != preset:
        raise CheckpointError(f"{key}={uri!r} holds {entry.arch} weights, but {preset_key}={preset!r}; "
                              f"set {preset_key} {entry.arch}, or name weights for {preset} "
                              "(docs/weights.md lists them)")
    check_weights_fit(resolve_weights(uri), build_model, arch, key=key, name=uri, backbone_relative=True)
    return entry


def check_weights_uri(cfg, uri: str) -> None:
    """check_inputs for a MODEL.WEIGHTS URI, before any model is built: the name exists, its arch is
    MODEL.RESNEXT.ARCH, the file can be had (downloaded and converted now) and fits the model; a
    config whose input settings differ from what the weights expect gets one warning."""
    from .model_weights import arch_setting, model_builder

    ours = cfg.MODEL.BACKBONE.NAME.startswith("build_resnext")
    entry = check_weights_file(uri, model_builder(cfg), arch_setting(cfg),
                               preset=cfg.MODEL.RESNEXT.ARCH if ours else None, preset_key="MODEL.RESNEXT.ARCH")
    if entry is None:
        return
    stride_key = "MODEL.RESNEXT.STRIDE_IN_1X1" if ours else "MODEL.RESNETS.STRIDE_IN_1X1"
    stride = cfg.MODEL.RESNEXT.STRIDE_IN_1X1 if ours else cfg.MODEL.RESNETS.STRIDE_IN_1X1
    actual = {"INPUT.FORMAT": cfg.INPUT.FORMAT, "MODEL.PIXEL_MEAN": list(cfg.MODEL.PIXEL_MEAN),
              "MODEL.PIXEL_STD": list(cfg.MODEL.PIXEL_STD), "MODEL.RESNEXT.STRIDE_IN_1X1": stride}
    differ = [f"{stride_key if k.endswith('STRIDE_IN_1X1') else k} {actual[k]} (expected {v})"
              for k, v in expected_input(entry).items() if not _same(actual[k], v)]
    if differ:
        logger.warning("MODEL.WEIGHTS=%s expects other input settings than the config's: %s", uri, "; ".join(differ))


def _same(a, b) -> bool:
    if isinstance(b, list):
        return len(a) == len(b) and all(abs(float(x) - float(y)) < 1e-3 for x, y in zip(a, b))
    return a == b
