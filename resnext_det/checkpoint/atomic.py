"""Files written whole or not at all: a temporary beside the target, flushed, then renamed."""
import os
import re
import secrets
import socket

__all__ = ["atomic_write", "remove_stale_temporaries"]


def atomic_write(path: str, write) -> None:
    """Call ``write(f)`` on a temporary file beside ``path``, flush it to disk, then rename it to
    ``path``: a reader (or a run resumed after a crash) sees the old file or the new one, whole."""
    folder = os.path.dirname(os.path.abspath(path))
    tmp = os.path.join(folder, f".{os.path.basename(path)}.{os.getpid()}@{_HOST}.{secrets.token_hex(4)}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666)  # the umask applies, as for open()
    try:
        with os.fdopen(fd, "wb") as f:
            write(f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.remove(tmp)
        raise
    try:  # make the rename itself durable
        dir_fd = os.open(folder, os.O_RDONLY)
    except OSError:  # e.g. Windows: directories cannot be opened
        return
    try:
        os.fsync(dir_fd)
    finally:
        os.close(dir_fd)


_HOST = re.sub(r"[^A-Za-z0-9_-]", "_", socket.gethostname())
_TEMPORARY = re.compile(r"^\..+\.(\d+)@([A-Za-z0-9_-]*)\.[0-9a-f]{8}\.tmp$")


def remove_stale_temporaries(folder: str) -> None:
    """Delete the temporary files that processes of this host killed during :func:`atomic_write`
    left in ``folder`` (a checkpoint's can be hundreds of MB). Files of live processes are kept."""
    if os.name != "posix":  # os.kill(pid, 0) is no liveness test elsewhere
        return
    for name in os.listdir(folder):
        match = _TEMPORARY.match(name)
        if not match or match.group(2) != _HOST:
            continue
        try:
            os.kill(int(match.group(1)), 0)
        except ProcessLookupError:  # that process is gone
            try:
                os.remove(os.path.join(folder, name))
            except FileNotFoundError:
                pass
        except OSError:  # PermissionError: alive, another user's
            pass
