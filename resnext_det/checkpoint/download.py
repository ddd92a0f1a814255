"""Downloading a weights file whole, checked, or not at all.

:func:`download` streams a URL into a temporary file beside the target and renames it only when the
byte count and the SHA-256 (where known) are right, so an interrupted, truncated or corrupt download
leaves nothing that a later run would trust. Every failure is one line naming the URL and the fix.
"""
import hashlib
import http.client
import logging
import os
import re
import socket
import urllib.error
import urllib.request
from typing import Optional
from urllib.parse import quote, urlparse

from .atomic import atomic_write, remove_stale_temporaries
from .io import CheckpointError

__all__ = ["MIRROR_ENV", "https_url", "download", "check_sha256", "sha256_of"]

logger = logging.getLogger(__name__)

# A base URL (or file:// folder) holding copies of the publishers' files under HOST/PATH of their URLs.
MIRROR_ENV = "RESNEXT_DET_WEIGHTS_MIRROR"
_TIMEOUT_S = 60  # per connection attempt and per read: a stalled download fails instead of hanging
_CHUNK = 1 << 20


def https_url(url: str) -> str:
    """``hf://REPO_ID/FILE`` as the Hub's download URL (``huggingface_hub`` builds it, so HF_ENDPOINT
    applies); any other URL unchanged."""
    if not url.startswith("hf://"):
        return url
    org, repo, filename = url[len("hf://"):].split("/", 2)
    try:
        from huggingface_hub import hf_hub_url
    except ImportError:
        return f"https://huggingface.co/{org}/{repo}/resolve/main/{quote(filename)}"
    return hf_hub_url(f"{org}/{repo}", filename)


def _mirrored(url: str) -> str:
    mirror = os.environ.get(MIRROR_ENV, "").rstrip("/")
    if not mirror or not url.startswith(("http://", "https://")):
        return url
    parsed = urlparse(url)
    return f"{mirror}/{parsed.netloc}{parsed.path}"


def sha256_of(path: str) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(_CHUNK), b""):
            digest.update(chunk)
    return digest.hexdigest()


def check_sha256(actual: str, expected: str, what: str) -> None:
    """``expected``: the full digest or its leading hex digits (as publishers put them in file names)."""
    if expected and not actual.startswith(expected.lower()):
        raise CheckpointError(f"{what} has SHA-256 {actual[:16]}..., not the published {expected[:16]}...: a "
                              "corrupt or changed file; nothing was kept. Download again, or register the file's "
                              "hash with resnext_det.register_weights(..., sha256=...)")


class _KeepRedirectHeaders(urllib.request.HTTPRedirectHandler):
    """Follows redirects as urllib does, keeping each redirect's headers (the Hub publishes a file's
    SHA-256 as ``X-Linked-Etag`` on the redirect to its storage)."""

    def __init__(self):
        super().__init__()
        self.headers = []

    def redirect_request(self, req, fp, code, msg, headers, newurl):
        self.headers.append(headers)
        return super().redirect_request(req, fp, code, msg, headers, newurl)


def _published_sha256(all_headers) -> str:
    for headers in all_headers:
        tag = (headers.get("X-Linked-Etag") or "").strip().strip('"').lower()
        if re.fullmatch(r"[0-9a-f]{64}", tag):
            return tag
    return ""


def download(url: str, path: str, sha256: str = "", offline_hint: str = "") -> str:
    """Download ``url`` (through $RESNEXT_DET_WEIGHTS_MIRROR when set) to ``path`` and return ``path``.

    ``sha256``: the expected digest or its leading digits; a SHA-256 the server publishes (the Hub's
    X-Linked-Etag) is checked too. ``offline_hint``: appended to the message when the host cannot be
    reached. Raises CheckpointError; ``path`` then does not exist.
    """
    source = _mirrored(https_url(url))
    shown = url if source == url else f"{url} (from {source})"
    folder = os.path.dirname(os.path.abspath(path))
    os.makedirs(folder, exist_ok=True)
    remove_stale_temporaries(folder)
    redirects = _KeepRedirectHeaders()
    opener = urllib.request.build_opener(redirects)
    request = urllib.request.Request(source, headers={"User-Agent": "resnext_det"})
    logger.info("Downloading %s to %s", shown, path)
    try:
        with opener.open(request, timeout=_TIMEOUT_S) as response:
            length = response.headers.get("Content-Length")
            expected = sha256 or _published_sha256(redirects.headers + [response.headers])
            atomic_write(path, lambda f: _copy_checked(response, f, shown, int(length) if length else None,
                                                       expected))
    except CheckpointError:
        raise
    except urllib.error.HTTPError as e:
        raise CheckpointError(f"could not download {shown}: the server answered HTTP {e.code} {e.reason}; is the "
                              "URL right? (resnext_det.register_weights or $" + MIRROR_ENV + " set another)") from None
    except http.client.IncompleteRead as e:
        raise CheckpointError(f"the download of {shown} broke off after {len(e.partial)} bytes; nothing was kept; "
                              "download again") from None
    except (urllib.error.URLError, OSError, http.client.HTTPException, socket.timeout) as e:
        reason = getattr(e, "reason", None) or e
        raise CheckpointError(f"could not download {shown} ({type(e).__name__}: {reason}); no network? "
                              f"{offline_hint}".rstrip()) from None
    logger.info("Downloaded %s (%.1f MB)", path, os.path.getsize(path) / 1e6)
    return path


def _copy_checked(response, f, shown: str, length: Optional[int], sha256: str) -> None:
    digest, size, step = hashlib.sha256(), 0, max(length // 10, _CHUNK) if length else 100 * _CHUNK
    for chunk in iter(lambda: response.read(_CHUNK), b""):
        f.write(chunk)
        digest.update(chunk)
        size += len(chunk)
        if size // step != (size - len(chunk)) // step:
            logger.info("  %.0f%s MB", size / 1e6, f" of {length / 1e6:.0f}" if length else "")
    if length is not None and size != length:
        raise CheckpointError(f"the download of {shown} is truncated ({size} of {length} bytes); nothing was kept; "
                              "download again")
    check_sha256(digest.hexdigest(), sha256, f"the download of {shown}")
