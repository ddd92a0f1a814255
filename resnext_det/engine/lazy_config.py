"""LazyConfig Python files: loading and ``key=value`` overrides with one-line errors.

Overrides follow Hydra's grammar, as in Detectron2's ``tools/lazyconfig_train_net.py``. Unlike
there, a key the config does not have is an error with a suggestion (Detectron2 would add it
silently, so ``train.max_itr=100`` would train for the full schedule), unless it is an argument
that the call it belongs to accepts, a trainer option listed in :data:`OPTIONAL_TRAIN_KEYS`, or is
written ``+key=value`` (Hydra's way of adding a key).
"""
import difflib
import inspect
import os
from typing import Iterator, Sequence

from omegaconf import DictConfig, ListConfig

from ..errors import ConfigError

__all__ = ["OPTIONAL_TRAIN_KEYS", "is_lazy_config", "load_lazy_config", "apply_overrides", "require"]

# train.* keys the lazy trainer reads that Detectron2's configs/common/train.py does not define.
OPTIONAL_TRAIN_KEYS = ("seed", "cudnn_benchmark")


def is_lazy_config(path: str) -> bool:
    """A Python config file (LazyConfig), rather than a YAML one."""
    return str(path).endswith(".py")


def load_lazy_config(path: str, overrides: Sequence[str] = ()) -> DictConfig:
    """The config of a LazyConfig Python file with ``key=value`` overrides applied."""
    from detectron2.config import LazyConfig

    if not os.path.isfile(path):
        raise ConfigError(f"config file {path!r} does not exist; pass a Python config, "
                          "e.g. --config-file configs/lazy/faster_rcnn_X101_32x8d_FPN.py")
    try:
        cfg = LazyConfig.load(path)
    except ConfigError:
        raise
    except SyntaxError as e:
        cause = e.__cause__ or e
        where = f" (line {cause.lineno})" if getattr(cause, "lineno", None) else ""
        raise ConfigError(f"{path} is not valid Python{where}: {getattr(cause, 'msg', cause)}") from None
    except Exception as e:
        raise ConfigError(f"{path} could not be loaded ({type(e).__name__}: {_first_line(e)})") from None
    return apply_overrides(cfg, overrides)


def apply_overrides(cfg: DictConfig, overrides: Sequence[str]) -> DictConfig:
    """Detectron2's ``LazyConfig.apply_overrides``, after checking every key exists (see module doc)."""
    from detectron2.config import LazyConfig

    for item in overrides:
        key, sep, _ = str(item).partition("=")
        if not sep or not key.strip():
            raise ConfigError(f"override {item!r} is not key=value; a Python config takes overrides such as "
                              "train.max_iter=100 (YAML's KEY VALUE pairs are for .yaml configs)")
        if not key.startswith("+"):
            _check_key(cfg, key.strip())
    try:
        return LazyConfig.apply_overrides(cfg, [o.lstrip("+") for o in overrides])
    except Exception as e:
        raise ConfigError(f"command-line override: {_first_line(e)}") from None


def require(cfg: DictConfig, path: str, keys: Sequence[str], why: str) -> None:
    """ConfigError unless ``cfg`` has every one of ``keys``."""
    missing = [k for k in keys if _node(cfg, k) is None]
    if missing:
        raise ConfigError(f"{path} defines no {', '.join(missing)}; {why}")


def _check_key(cfg: DictConfig, key: str) -> None:
    parts = key.split(".")
    parent = _node(cfg, ".".join(parts[:-1])) if len(parts) > 1 else cfg
    if _node(cfg, key) is not None or _accepts(parent, parts[-1]):
        return
    if parts[:-1] == ["train"] and parts[-1] in OPTIONAL_TRAIN_KEYS:
        return
    siblings = list(parent.keys()) if isinstance(parent, DictConfig) else []
    prefix = key[: len(key) - len(parts[-1])]
    close = [prefix + k for k in difflib.get_close_matches(parts[-1], siblings, n=2, cutoff=0.6)] or \
        difflib.get_close_matches(key, list(_keys(cfg)), n=2, cutoff=0.8)
    hint = f"; did you mean {' or '.join(close)}?" if close else ""
    raise ConfigError(f"override {key}: the config has no such key{hint} (to add a new key, write +{key}=...)")


def _node(cfg, key: str):
    """The config node at dotted ``key`` (not resolving interpolations), or None."""
    node = cfg
    for part in key.split(".") if key else ():
        if isinstance(node, DictConfig) and part in node.keys():
            node = node._get_node(part)
        elif isinstance(node, ListConfig) and part.isdigit() and int(part) < len(node):
            node = node._get_node(int(part))
        else:
            return None
    return node


def _accepts(node, name: str) -> bool:
    """Whether ``node`` is a call (``_target_``) whose callable takes the keyword ``name``."""
    if not isinstance(node, DictConfig) or "_target_" not in node.keys():
        return False
    from detectron2.utils.registry import locate

    target = node._target_
    try:
        target = locate(target) if isinstance(target, str) else target
        params = inspect.signature(target).parameters
    except Exception:
        return False
    return name in params or any(p.kind is p.VAR_KEYWORD for p in params.values())


def _keys(node, prefix: str = "") -> Iterator[str]:
    if isinstance(node, DictConfig):
        for key in node.keys():
            yield f"{prefix}{key}"
            yield from _keys(node._get_node(key), f"{prefix}{key}.")


def _first_line(e: Exception) -> str:
    return (str(e).strip().splitlines() or [type(e).__name__])[0]
