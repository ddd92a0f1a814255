"""Detectron2's checkpointer that reads checkpoints as data only, with atomic writes and clear errors for
unreadable checkpoints."""
import os

from detectron2.checkpoint import DetectionCheckpointer

from ..checkpoint import CheckpointError
from ..checkpoint.atomic import atomic_write, remove_stale_temporaries
from ..checkpoint.io import UnsafeCheckpointError, load_pickle, load_torch

__all__ = ["SafeCheckpointer", "AtomicCheckpointer", "CheckpointWriteError", "atomic_write",
           "remove_stale_temporaries"]


class CheckpointWriteError(CheckpointError):
    """A checkpoint that could not be written (disk full, folder removed ...); the previous one is kept."""


def _is_local(path: str) -> bool:
    return "://" not in path


class SafeCheckpointer(DetectionCheckpointer):
    """``DetectionCheckpointer`` whose reads run no code from the file: ``.pkl`` files (Detectron2 and
    Detectron/Caffe2 model zoo: pickles of numpy arrays) are unpickled with an arrays-only unpickler,
    ``.pyth`` and every other file with ``torch.load(weights_only=True)`` (resnext_det/checkpoint/io.py).
    A file that needs code to load raises :class:`UnsafeCheckpointError` (a :class:`CheckpointError`),
    naming it and the fix; an unreadable one a :class:`CheckpointError`. What is read
    is laid out as Detectron2 lays it out (model zoo format, Caffe2 blobs, pycls ``model_state``)."""

    def _load_file(self, filename):
        if filename.endswith(".pkl"):
            data = self._read(filename, load_pickle)
            if not isinstance(data, dict):
                raise CheckpointError(f"{filename} holds a {type(data).__name__}, not a dict of arrays; "
                                      "is it a weights file?")
            if "model" in data and "__author__" in data:  # Detectron2 model zoo format
                self.logger.info("Reading a file from '%s'", data["__author__"])
                return data
            if "blobs" in data:  # Caffe2 / Detectron1 detection models
                data = data["blobs"]
            data = {k: v for k, v in data.items() if not k.endswith("_momentum")}
            return {"model": data, "__author__": "Caffe2", "matching_heuristics": True}
        if filename.endswith(".pyth"):  # pycls
            data = self._read(filename, load_torch)
            if not isinstance(data, dict) or "model_state" not in data:
                raise CheckpointError(f"cannot load .pyth file {filename}: pycls checkpoints hold 'model_state'")
            state = {k: v for k, v in data["model_state"].items() if not k.endswith("num_batches_tracked")}
            return {"model": state, "__author__": "pycls", "matching_heuristics": True}
        return super()._load_file(filename)  # its query handling; the file is read by _torch_load

    def _torch_load(self, f):
        return self._read(f, load_torch)

    def _read(self, filename, load):
        try:
            return load(filename)
        except CheckpointError:
            raise
        except Exception as e:  # truncated, or no checkpoint at all
            raise self._unreadable(filename, e) from e

    def _unreadable(self, filename, error: Exception) -> CheckpointError:
        first_line = (str(error).splitlines() or [""])[0]
        return CheckpointError(f"{filename} is not a readable checkpoint ({type(error).__name__}: {first_line}); "
                               f"{self._unreadable_fix()}")

    def _unreadable_fix(self) -> str:
        return "check the file (MODEL.WEIGHTS)"


class AtomicCheckpointer(SafeCheckpointer):
    """:class:`SafeCheckpointer` whose ``model_*.pth`` and ``last_checkpoint`` writes are atomic
    (:func:`atomic_write`; the checkpoint first, then ``last_checkpoint``), so a process killed while
    saving leaves the previous checkpoint and a ``last_checkpoint`` naming it. Resuming from a
    ``last_checkpoint`` that names a missing or unreadable file raises :class:`CheckpointError`.
    Folders given as URLs are written as Detectron2 does."""

    def save(self, name: str, **kwargs) -> None:
        if not self.save_dir or not self.save_to_disk or not _is_local(self.save_dir):
            return super().save(name, **kwargs)
        import torch

        data = {"model": self.model.state_dict()}
        for key, obj in self.checkpointables.items():
            data[key] = obj.state_dict()
        data.update(kwargs)
        basename = f"{name}.pth"
        path = os.path.join(self.save_dir, basename)
        self.logger.info("Saving checkpoint to %s", path)
        remove_stale_temporaries(self.save_dir)
        try:
            atomic_write(path, lambda f: torch.save(data, f))
        except OSError as e:
            raise self._write_error(path, e) from e
        self.tag_last_checkpoint(basename)

    def tag_last_checkpoint(self, last_filename_basename: str) -> None:
        if not _is_local(self.save_dir):
            return super().tag_last_checkpoint(last_filename_basename)
        path = os.path.join(self.save_dir, "last_checkpoint")
        try:
            atomic_write(path, lambda f: f.write(last_filename_basename.encode()))
        except OSError as e:
            raise self._write_error(path, e) from e

    def _write_error(self, path: str, error: OSError) -> "CheckpointWriteError":
        """One line: what could not be written, why, and which checkpoint a --resume continues from."""
        last = os.path.join(self.save_dir, "last_checkpoint")
        try:
            with open(last) as f:
                previous = f.read().strip()
        except OSError:
            previous = ""
        kept = (f"the previous checkpoint {previous} is intact and last_checkpoint names it: free space and rerun "
                "with --resume to continue from it") if previous else "no earlier checkpoint was saved"
        return CheckpointWriteError(f"could not write {path} ({error.strerror or error}); {kept}")

    _resuming = False

    def resume_or_load(self, path: str, *, resume: bool = True):
        self._resuming = resume and self.has_checkpoint() and _is_local(self.save_dir)
        try:
            if self._resuming:
                last = self.get_checkpoint_file()
                if not os.path.isfile(last):
                    raise CheckpointError(f"--resume: {os.path.join(self.save_dir, 'last_checkpoint')} names "
                                          f"{last}, which does not exist; {self._fix()}")
            return super().resume_or_load(path, resume=resume)
        finally:
            self._resuming = False

    def _load_model(self, checkpoint):
        if self._resuming:  # Detectron2 would skip mismatching tensors with a log line: a silent fresh init
            self._check_same_model(checkpoint.get("model", {}))
        return super()._load_model(checkpoint)

    def _check_same_model(self, saved) -> None:
        ours = {k: tuple(v.shape) for k, v in self.model.state_dict().items() if not k.endswith("num_batches_tracked")}
        theirs = {k: tuple(getattr(v, "shape", ())) for k, v in saved.items() if not k.endswith("num_batches_tracked")}
        differ = sorted(k for k in set(ours) | set(theirs) if ours.get(k) != theirs.get(k))
        if differ:
            k = differ[0]
            raise CheckpointError(f"--resume: {self.get_checkpoint_file()} holds a model other than the one this config "
                                  f"builds ({len(differ)} tensors differ, e.g. {k}: {theirs.get(k, 'absent')} in the "
                                  f"checkpoint, {ours.get(k, 'absent')} in the model); resume with the config it was "
                                  "trained with, or train into another OUTPUT_DIR")

    def _load_file(self, filename):
        try:
            return super()._load_file(filename)
        except UnsafeCheckpointError as e:
            if self._resuming:  # the file last_checkpoint names
                raise UnsafeCheckpointError(f"--resume: {e}") from None
            raise

    def _unreadable_fix(self) -> str:
        return self._fix() if self._resuming else super()._unreadable_fix()

    def _fix(self) -> str:
        others = sorted(n for n in os.listdir(self.save_dir) if n.startswith("model_") and n.endswith(".pth")) \
            if os.path.isdir(self.save_dir) else []
        return ("to resume from another checkpoint, write its file name into "
                f"{os.path.join(self.save_dir, 'last_checkpoint')} (there: {', '.join(others) or 'none'}), "
                "or train without --resume")
