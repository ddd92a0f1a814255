"""How the tools end on bad input: one ``error: <message>`` line on stderr, exit code 1, no traceback
on the terminal; the traceback stays in OUTPUT_DIR/log.txt for bug reports.

* :func:`keep_tracebacks_in_log_file`: Detectron2 logs "Exception during training:" with the whole
  traceback before re-raising; for the errors the tools turn into one line, such records are kept
  off the terminal handlers (the log file keeps them).
* :func:`exit_with_error`: the line. In processes started by Detectron2's ``launch`` under
  :func:`errors_of_launched_processes`, the line is handed to the parent, which prints one line for
  all processes (each would print its own otherwise, and the launcher may kill the others mid-line).
"""
import contextlib
import errno
import logging
import os
import sys
import tempfile
from typing import Callable, Iterator, Optional

from detectron2.utils import comm

__all__ = ["one_line_errors", "error_message", "keep_tracebacks_in_log_file", "exit_with_error",
           "errors_of_launched_processes"]

_ERROR_DIR = "RESNEXT_DET_ERROR_DIR"


def one_line_errors() -> tuple:
    """The errors the tools end with one line: the plugin's bad-input types and OSError (a file
    system problem: disk full, permission, a folder removed during the run)."""
    from .trainer import BAD_INPUT

    return BAD_INPUT + (OSError,)


def error_message(error: BaseException) -> str:
    """The message of ``error`` on one line; an OSError names its file and the fix for a full disk."""
    if isinstance(error, OSError) and not isinstance(error, FileNotFoundError) or (
            isinstance(error, FileNotFoundError) and error.filename):
        where = f"{error.filename}: " if error.filename else ""
        text = f"{where}{error.strerror or error}"
        if error.errno in (errno.ENOSPC, errno.EDQUOT):
            text += "; free space on that disk, then rerun (with --resume to continue a training)"
    else:
        text = str(error)
    return " ".join(text.split()) or type(error).__name__


class _NoHandledTracebacks(logging.Filter):
    def __init__(self, types: tuple):
        super().__init__()
        self.types = types

    def filter(self, record: logging.LogRecord) -> bool:
        return not (record.exc_info and isinstance(record.exc_info[1], self.types))


def keep_tracebacks_in_log_file(types: Optional[tuple] = None,
                                loggers=("detectron2", "resnext_det", "fvcore", "")) -> None:
    """Keep log records carrying an exception of ``types`` (default :func:`one_line_errors`, and
    Detectron2's FloatingPointError for a NaN loss, which the trainer turns into one) off the terminal
    handlers of ``loggers``; file handlers keep them. Idempotent."""
    types = types or one_line_errors() + (FloatingPointError,)
    # By stream: Detectron2's log file handler is a StreamHandler too.
    terminal = (sys.stdout, sys.stderr, sys.__stdout__, sys.__stderr__)
    for name in loggers:
        for handler in logging.getLogger(name).handlers:
            if getattr(handler, "stream", None) in terminal and \
                    not any(isinstance(f, _NoHandledTracebacks) for f in handler.filters):
                handler.addFilter(_NoHandledTracebacks(types))


def exit_with_error(error: BaseException) -> None:
    """End this process with one ``error:`` line (exit code 1)."""
    line = f"error: {error_message(error)}"
    folder = os.environ.get(_ERROR_DIR)
    if folder and comm.get_world_size() > 1 and os.path.isdir(folder):
        path = os.path.join(folder, f"rank{comm.get_rank():05d}")
        with open(path + ".tmp", "w") as f:
            f.write(line)
        os.replace(path + ".tmp", path)
        sys.exit(1)
    sys.exit(line)


@contextlib.contextmanager
def errors_of_launched_processes() -> Iterator[Callable[[], Optional[str]]]:
    """Around ``launch(...)``: processes it starts hand their error line to this process. Yields a
    function returning the line of the lowest-ranked process that left one (None if none did)."""
    spawn_log = logging.getLogger("torch.multiprocessing.spawn")  # "Terminating process ...": the others, on purpose
    with tempfile.TemporaryDirectory(prefix="resnext_det-errors-") as folder:
        previous, level = os.environ.get(_ERROR_DIR), spawn_log.level
        os.environ[_ERROR_DIR] = folder
        spawn_log.setLevel(logging.ERROR)

        def first_line() -> Optional[str]:
            names = sorted(n for n in os.listdir(folder) if not n.endswith(".tmp"))
            if not names:
                return None
            with open(os.path.join(folder, names[0])) as f:
                return f.read()

        try:
            yield first_line
        finally:
            spawn_log.setLevel(level)
            if previous is None:
                os.environ.pop(_ERROR_DIR, None)
            else:
                os.environ[_ERROR_DIR] = previous
