"""One run per OUTPUT_DIR: a second run into a folder that a live run holds stops with one line.

The lock is ``flock`` on OUTPUT_DIR/.resnext_det.lock: the operating system releases it when the
holding process ends, however it ends (a SIGKILLed run leaves no stale lock). The file also says
who holds it (pid, host, start time, command), for the message. Locks on network file systems are
only as good as the file system's ``flock`` (NFSv4 and most others support it). Where ``fcntl`` does
not exist (Windows) runs are not locked.
"""
import contextlib
import json
import os
import socket
import sys
import time
from typing import Optional

from ..errors import PathError
from ..paths import writable_dir

try:
    import fcntl
except ImportError:  # Windows
    fcntl = None

__all__ = ["OutputDirInUse", "OutputDirLock", "LOCK_NAME", "hold_output_dir"]

LOCK_NAME = ".resnext_det.lock"


class OutputDirInUse(PathError):
    """OUTPUT_DIR is held by another live run."""


class OutputDirLock:
    """Hold OUTPUT_DIR for this process (``with OutputDirLock(dir, "training"):``). The folder is
    checked (PathError: a file, not writable) and created first."""

    def __init__(self, output_dir: str, purpose: str = "training"):
        self.output_dir = output_dir
        self.purpose = purpose
        self.path = os.path.join(output_dir, LOCK_NAME)
        self._fd: Optional[int] = None

    def acquire(self) -> "OutputDirLock":
        writable_dir(self.output_dir, "OUTPUT_DIR", "name another folder", create=True)
        if fcntl is None:
            return self
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:  # held by another process
            holder = _read_holder(fd)
            os.close(fd)
            raise OutputDirInUse(f"OUTPUT_DIR={self.output_dir!r} is in use by another run ({holder}); wait for it to "
                                 "end or stop it, or choose another OUTPUT_DIR") from None
        os.ftruncate(fd, 0)
        os.write(fd, json.dumps({"pid": os.getpid(), "host": socket.gethostname(), "purpose": self.purpose,
                                 "started": time.strftime("%Y-%m-%d %H:%M:%S"),
                                 "command": " ".join(sys.argv)}).encode())
        self._fd = fd
        return self

    def release(self) -> None:
        if self._fd is not None:
            os.close(self._fd)  # closing the last descriptor releases the lock
            self._fd = None

    def __enter__(self):
        return self.acquire()

    def __exit__(self, *exc):
        self.release()


def _read_holder(fd: int) -> str:
    """Who holds the lock, from what it wrote into the file."""
    try:
        info = json.loads(os.pread(fd, 4096, 0).decode() or "{}")
    except (OSError, ValueError):
        info = {}
    if not info:
        return "details not written yet"
    return (f"{info.get('purpose', 'a run')}, pid {info.get('pid')} on {info.get('host')}, started "
            f"{info.get('started')}: {info.get('command', '')[:120]}")


@contextlib.contextmanager
def hold_output_dir(cfg, resume: bool = False, purpose: str = "training", lock: bool = True):
    """For the whole run: hold the output folder of ``cfg`` (OUTPUT_DIR, or a LazyConfig's
    train.output_dir; unless ``lock`` is False: e.g. on machines other than the first, which share it)
    and, with ``resume``, compare a YAML config with the one saved there (resume_config.py: refuses
    another model). Yields the warnings, already printed to stderr, for the log once logging is set up."""
    from .resume_config import check_resume_config

    lazy = "train" in cfg and "OUTPUT_DIR" not in cfg
    output_dir = cfg.train.output_dir if lazy else cfg.OUTPUT_DIR
    with OutputDirLock(output_dir, purpose) if lock else contextlib.nullcontext():
        notes = check_resume_config(cfg, output_dir) if resume and not lazy else []
        for note in notes:
            print(f"warning: {note}", file=sys.stderr)
        yield notes
