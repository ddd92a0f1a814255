"""Weights by name: which publisher's file a ``torchvision://``, ``timm://`` or ``resnest://`` URI means.

The built-in entries are one table of facts (:data:`BUILTIN_WEIGHTS`: the publishers' URLs and the
SHA-256 digits they publish). Names outside it are looked up in the publishers' own catalogues:
torchvision's weights enums (``torchvision://resnet50/IMAGENET1K_V2``) and timm's pretrained configs
(``timm://seresnext50_32x4d.racm_in1k``, for the timm models of :data:`TIMM_ARCHS`).
:func:`register_weights` adds or overrides an entry (a mirror, a private file, a test server).
"""
import difflib
import re
from typing import Dict, NamedTuple, Optional, Tuple

from ..archs import ARCHS
from .io import CheckpointError
from .remap import REMAPS

__all__ = ["WeightsEntry", "BUILTIN_WEIGHTS", "TIMM_ARCHS", "SCHEMES", "register_weights", "lookup_weights",
           "known_uris", "is_weights_uri"]

SCHEMES = ("torchvision", "timm", "resnest")
_IMAGENET_MEAN = (123.675, 116.28, 103.53)  # RGB, 0-255
_IMAGENET_STD = (58.395, 57.12, 57.375)


class WeightsEntry(NamedTuple):
    uri: str  # torchvision://resnext101_32x8d
    arch: str  # the plugin preset the weights fit (MODEL.RESNEXT.ARCH)
    source: str  # the layout convert_state_dict reads: torchvision, timm, resnest or detectron
    url: str  # https://..., file://..., a local path, or hf://REPO_ID/FILE (a file on the Hugging Face Hub)
    sha256: str = ""  # the file's SHA-256, or its leading hex digits (as file names carry them); "": unknown
    pixel_mean: Tuple[float, ...] = _IMAGENET_MEAN  # the input the weights expect: RGB, 0-255 ...
    pixel_std: Tuple[float, ...] = _IMAGENET_STD  # ... normalized with this std; stride on the 3x3


_TORCHVISION = "https://download.pytorch.org/models/"
_RESNEST = "https://github.com/zhanghang1989/ResNeSt/releases/download/weights_step1/"

# The built-in table: (uri, arch, source, url, sha256). Sources of the facts: torchvision's weights
# enums (file names end in the first 8 hex digits of the SHA-256, as torch.hub checks them); timm's
# pretrained configs (hf_hub_id; the Hub publishes each file's SHA-256 in its X-Linked-Etag header,
# checked when downloading); the official ResNeSt release (resnest/torch/resnest.py: URL and SHA-256 digits).
BUILTIN_WEIGHTS = [WeightsEntry(*row) for row in [
    ("torchvision://resnet50", "resnet50", "torchvision", _TORCHVISION + "resnet50-0676ba61.pth", "0676ba61"),
    ("torchvision://resnet101", "resnet101", "torchvision", _TORCHVISION + "resnet101-63fe2227.pth", "63fe2227"),
    ("torchvision://resnet152", "resnet152", "torchvision", _TORCHVISION + "resnet152-394f9c45.pth", "394f9c45"),
    ("torchvision://resnext50_32x4d", "resnext50_32x4d", "torchvision",
     _TORCHVISION + "resnext50_32x4d-7cdf4587.pth", "7cdf4587"),
    ("torchvision://resnext101_32x8d", "resnext101_32x8d", "torchvision",
     _TORCHVISION + "resnext101_32x8d-8ba56ff5.pth", "8ba56ff5"),
    ("torchvision://resnext101_64x4d", "resnext101_64x4d", "torchvision",
     _TORCHVISION + "resnext101_64x4d-173b62eb.pth", "173b62eb"),
    ("timm://resnext101_32x4d.gluon_in1k", "resnext101_32x4d", "timm",
     "hf://timm/resnext101_32x4d.gluon_in1k/model.safetensors", ""),
    ("timm://seresnext50_32x4d.gluon_in1k", "seresnext50_32x4d", "timm",
     "hf://timm/seresnext50_32x4d.gluon_in1k/model.safetensors", ""),
    ("timm://seresnext50_32x4d.racm_in1k", "seresnext50_32x4d", "timm",
     "hf://timm/seresnext50_32x4d.racm_in1k/model.safetensors", ""),
    ("timm://seresnext101_32x4d.gluon_in1k", "seresnext101_32x4d", "timm",
     "hf://timm/seresnext101_32x4d.gluon_in1k/model.safetensors", ""),
    ("timm://seresnext101_32x8d.ah_in1k", "seresnext101_32x8d", "timm",
     "hf://timm/seresnext101_32x8d.ah_in1k/model.safetensors", ""),
    ("timm://skresnext50_32x4d.ra_in1k", "skresnext50_32x4d", "timm",
     "hf://timm/skresnext50_32x4d.ra_in1k/model.safetensors", ""),
    ("resnest://resnest50", "resnest50", "resnest", _RESNEST + "resnest50-528c19ca.pth", "528c19ca"),
    ("resnest://resnest101", "resnest101", "resnest", _RESNEST + "resnest101-22405ba7.pth", "22405ba7"),
    ("resnest://resnest200", "resnest200", "resnest", _RESNEST + "resnest200-75117900.pth", "75117900"),
    ("resnest://resnest269", "resnest269", "resnest", _RESNEST + "resnest269-0cc87c48.pth", "0cc87c48"),
]]

# timm model name -> the plugin preset its weights convert to (the "timm" layout of remap.py). With timm
# installed, timm://NAME[.TAG] resolves through timm's pretrained config for every name here; a new arch
# whose timm weights convert is one row.
TIMM_ARCHS: Dict[str, str] = {
    "resnet50": "resnet50", "resnet101": "resnet101", "resnet152": "resnet152",
    "resnext50_32x4d": "resnext50_32x4d", "resnext101_32x4d": "resnext101_32x4d",
    "resnext101_32x8d": "resnext101_32x8d", "resnext101_64x4d": "resnext101_64x4d",
    "seresnext50_32x4d": "seresnext50_32x4d", "seresnext101_32x4d": "seresnext101_32x4d",
    "seresnext101_32x8d": "seresnext101_32x8d", "skresnext50_32x4d": "skresnext50_32x4d",
    "resnest50d": "resnest50", "resnest101e": "resnest101", "resnest200e": "resnest200", "resnest269e": "resnest269",
    "seresnet50": "seresnet50", "seresnet101": "seresnet101", "seresnet152": "seresnet152",
    "resnetv2_50": "resnetv2_50", "resnetv2_101": "resnetv2_101",
}

# torchvision's default tag, as mmdetection's torchvision:// takes it: the original ImageNet weights
# (torchvision's own DEFAULT is the newer IMAGENET1K_V2 recipe where one exists).
TORCHVISION_DEFAULT_TAG = "IMAGENET1K_V1"

_registry: Dict[str, WeightsEntry] = {entry.uri: entry for entry in BUILTIN_WEIGHTS}
_URI = re.compile(r"^([a-z0-9]+)://(.+)$")


def is_weights_uri(path: str) -> bool:
    """True for a ``torchvision://``, ``timm://`` or ``resnest://`` URI (the ones this module resolves)."""
    match = _URI.match(path or "")
    return bool(match) and match.group(1) in SCHEMES


def _canonical(uri: str) -> str:
    """The registry key: no trailing slash, torchvision's default tag spelled out or not alike."""
    uri = uri.rstrip("/")
    if uri.startswith("torchvision://") and uri.endswith("/" + TORCHVISION_DEFAULT_TAG):
        uri = uri[: -len(TORCHVISION_DEFAULT_TAG) - 1]
    return uri


def register_weights(uri: str, url: str, sha256: str = "", source: Optional[str] = None,
                     arch: Optional[str] = None, pixel_mean=_IMAGENET_MEAN, pixel_std=_IMAGENET_STD) -> WeightsEntry:
    """Add or replace the entry for ``uri``: its weights are the file at ``url``.

    ``url``: https://, http://, file://, a local path, or hf://REPO_ID/FILE. ``sha256``: the file's
    SHA-256 (or its leading hex digits), checked after each download; "" checks nothing. ``source``:
    the layout to convert from (default: the URI's scheme). ``arch``: the plugin preset the weights
    fit (default: the replaced entry's, else the URI's name as a preset, or as a timm model of
    TIMM_ARCHS). ``pixel_mean`` / ``pixel_std``: the RGB input the weights expect (default ImageNet's).
    """
    match = _URI.match(uri)
    if not match or match.group(1) not in SCHEMES:
        raise CheckpointError(f"register_weights: {uri!r} is not a weights URI; use one of "
                              f"{', '.join(s + '://NAME' for s in SCHEMES)}")
    uri = _canonical(uri)
    source = source or match.group(1)
    if source not in REMAPS:
        raise CheckpointError(f"register_weights({uri!r}): source={source!r} is invalid; valid: {list(REMAPS)}")
    name = match.group(2).split("/")[0].split(".")[0]
    if not arch:
        arch = _registry[uri].arch if uri in _registry else TIMM_ARCHS.get(name) if source == "timm" else name
    if arch not in ARCHS:
        raise CheckpointError(f"register_weights({uri!r}): arch={arch!r} is not a preset; pass arch= one of "
                              f"{list(ARCHS)}")
    if sha256 and not re.fullmatch(r"[0-9a-f]{6,64}", sha256.lower()):
        raise CheckpointError(f"register_weights({uri!r}): sha256={sha256!r} is not hex digits of a SHA-256")
    entry = WeightsEntry(uri, arch, source, url, sha256.lower(), tuple(pixel_mean), tuple(pixel_std))
    _registry[uri] = entry
    return entry


def known_uris():
    """Every URI the table holds, plus the names the publishers' catalogues resolve."""
    return sorted(set(_registry) | {f"torchvision://{a}" for a in ARCHS if _torchvision_enum(a)}
                  | {f"timm://{name}" for name in TIMM_ARCHS})


def _unknown(uri: str, why: str) -> CheckpointError:
    close = difflib.get_close_matches(uri, known_uris(), n=3, cutoff=0.6)
    hint = f"did you mean {' or '.join(close)}? " if close else ""
    return CheckpointError(f"unknown weights {uri!r} ({why}); {hint}the names that exist are in docs/weights.md, "
                           "and resnext_det.register_weights adds one")


def _torchvision_enum(name: str):
    from torchvision.models import get_model_weights

    try:
        return get_model_weights(name)
    except (ValueError, KeyError):
        return None


def _from_torchvision(uri: str, name: str, tag: str) -> WeightsEntry:
    enum = _torchvision_enum(name) if name in ARCHS else None
    if enum is None:
        raise _unknown(uri, "torchvision has no weights of that name for a plugin preset")
    if tag not in enum.__members__:
        raise CheckpointError(f"unknown weights {uri!r}: torchvision's {enum.__name__} has the tags "
                              f"{', '.join(enum.__members__)}")
    url = enum[tag].url
    digits = re.search(r"-([0-9a-f]{8,})\.\w+$", url)  # torch.hub's convention: name-<sha256 digits>.ext
    return WeightsEntry(uri, name, "torchvision", url, digits.group(1) if digits else "")


def _from_timm(uri: str, name: str, tag: str) -> WeightsEntry:
    if name not in TIMM_ARCHS:
        raise _unknown(uri, "not a timm model whose weights convert to a plugin preset (TIMM_ARCHS)")
    try:
        import timm.models
    except ImportError:
        raise CheckpointError(f"{uri}: timm is not installed to look up that tag; pip install timm, or name a "
                              f"tag of the built-in table, e.g. {_example_tag(name)}") from None
    try:
        cfg = timm.models.get_pretrained_cfg(f"{name}.{tag}" if tag else name)
    except RuntimeError:
        cfg = None
    if cfg is None or not (cfg.hf_hub_id or cfg.url):
        tags = [t.split(".", 1)[1] for t, c in timm.models.get_arch_pretrained_cfgs(name).items()
                if c.hf_hub_id or c.url]
        raise CheckpointError(f"unknown weights {uri!r}: timm has pretrained weights for {name} with the tags "
                              f"{', '.join(tags) or '(none)'}")
    if cfg.hf_hub_id:  # timm loads these from the Hub, safetensors first
        url = f"hf://{cfg.hf_hub_id}/{cfg.hf_hub_filename or 'model.safetensors'}"
    else:
        url = cfg.url
    canonical = f"timm://{name}.{cfg.tag}" if getattr(cfg, "tag", None) else uri
    return WeightsEntry(canonical, TIMM_ARCHS[name], "timm", url, "",
                        tuple(round(v * 255, 3) for v in cfg.mean), tuple(round(v * 255, 3) for v in cfg.std))


def _example_tag(name: str) -> str:
    return next((uri for uri in _registry if uri.startswith(f"timm://{name}.")), f"timm://{name}.TAG")


def lookup_weights(uri: str) -> WeightsEntry:
    """The entry ``uri`` names: the registry first, then torchvision's enums and timm's configs.

    Raises CheckpointError (one line, with close matches) for a name that does not exist.
    """
    match = _URI.match(uri or "")
    if not match or match.group(1) not in SCHEMES:
        raise CheckpointError(f"{uri!r} is not a weights URI; use one of "
                              f"{', '.join(s + '://NAME' for s in SCHEMES)}")
    key = _canonical(uri)
    if key in _registry:
        return _registry[key]
    scheme, rest = match.group(1), key.split("://", 1)[1]
    if scheme == "torchvision":
        name, _, tag = rest.partition("/")
        entry = _from_torchvision(key, name, tag or TORCHVISION_DEFAULT_TAG)
    elif scheme == "timm":
        name, _, tag = rest.partition(".")
        entry = _from_timm(key, name, tag)
        entry = _registry.get(entry.uri, entry)  # the default tag may be a table row (or a registered mirror)
    else:
        raise _unknown(uri, "the official ResNeSt release has resnest50, resnest101, resnest200 and resnest269")
    return entry
