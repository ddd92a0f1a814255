"""Detectron2's event writers, with metrics.json in strict JSON (strict_json.py): an evaluation's NaN
AP (no ground truth in an area range) or a NaN loss is written as null with a note, not as a bare NaN
that most JSON parsers refuse."""
import json

from detectron2.engine.defaults import default_writers
from detectron2.utils.events import JSONWriter

from ..strict_json import dumps

__all__ = ["StrictJSONWriter", "strict_writers"]


class _StrictLines:
    """A file whose ``write`` rewrites each JSON line strictly (JSONWriter writes one record a line)."""

    def __init__(self, handle):
        self._handle = handle

    def write(self, text: str) -> int:
        lines = [dumps(json.loads(line), sort_keys=True) if line.strip() else line for line in text.split("\n")]
        return self._handle.write("\n".join(lines))

    def __getattr__(self, name):
        return getattr(self._handle, name)


class StrictJSONWriter(JSONWriter):
    def __init__(self, json_file, window_size=20):
        super().__init__(json_file, window_size)
        self._file_handle = _StrictLines(self._file_handle)


def strict_writers(output_dir: str, max_iter: int):
    """Detectron2's ``default_writers`` (console, metrics.json, TensorBoard), metrics.json strict."""
    writers = default_writers(output_dir, max_iter)
    for i, writer in enumerate(writers):
        if type(writer) is JSONWriter:
            path = writer._file_handle.name
            writer.close()
            writers[i] = StrictJSONWriter(path)
    return writers
