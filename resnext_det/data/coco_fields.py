"""The fields of a COCO-format annotation file that Detectron2 reads, checked by one table of rules.

Each rule names a field, what a valid value is, and what happens to an entry that breaks it:

* ``STOP``: the file cannot be used as it is: one DatasetError line names the file, the field, how
  many entries break the rule and the first of them. Rules on what other entries refer to (images,
  categories, ids) stop: dropping them would silently change what the rest means.
* ``DROP``: the annotation is left out; nothing refers to an annotation, so the rest stays correct.
  One warning per file counts the dropped annotations by rule, with an example of each.
* ``FILL``: the field is replaced by a value derived from the valid box (``area``: the box's area,
  as Detectron2's own COCO export computes it), counted in the same warning.

A file whose every annotation is dropped stops too: what is left would train on nothing.
The boxes' geometry (empty, outside the image) is checked on the loaded records (validate.py), for
every dataset, COCO-format or not.
"""
from __future__ import annotations

import hashlib
import json
import math
import os
from dataclasses import dataclass, field
from typing import Any, Callable, Dict, List, NamedTuple, Optional, Tuple

from ..config_checks import short

__all__ = ["STOP", "DROP", "FILL", "RULES", "CocoFileError", "CocoCheck", "check_coco", "read_coco",
           "check_coco_file"]

STOP, DROP, FILL = "stop", "drop", "fill"
MISSING = object()  # a field the entry does not have


class CocoFileError(ValueError):
    """A COCO file that cannot be used as it is; the message names the file, the field and an example
    (validate.py raises it as a DatasetError naming the dataset too)."""


# ---- what a valid value is ----------------------------------------------------------------------

def _number(v) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)


def _id(v) -> bool:
    return isinstance(v, int) and not isinstance(v, bool) and v >= 0


def _size(v) -> bool:
    return _number(v) and v > 0 and float(v).is_integer()


def _name(v) -> bool:
    return isinstance(v, str) and bool(v.strip())


def _numbers(values) -> bool:
    """All finite numbers, none a bool (one pass for the type, one sum for finiteness: polygons are long)."""
    try:
        return all(type(v) is int or type(v) is float for v in values) and math.isfinite(sum(values))
    except OverflowError:  # an integer beyond float's range
        return False


def _box(v) -> bool:
    return isinstance(v, list) and len(v) == 4 and _numbers(v)


def _crowd(v) -> bool:
    return type(v) in (int, bool) and v in (0, 1)


def _area(v) -> bool:
    return _number(v) and v >= 0


def _polygon(p) -> bool:
    return isinstance(p, list) and len(p) >= 6 and len(p) % 2 == 0 and _numbers(p)


def _segmentation(v, image) -> bool:
    """[] (none), polygons (each at least 3 finite x, y points), or an RLE mask of the image's size."""
    if isinstance(v, list):
        return all(map(_polygon, v))
    if isinstance(v, dict):
        counts, size = v.get("counts"), v.get("size")
        good_counts = isinstance(counts, str) or (isinstance(counts, list) and all(map(_id, counts)))
        return good_counts and isinstance(size, list) and len(size) == 2 and all(map(_id, size)) and \
            image is not None and _size(image.get("height")) and _size(image.get("width")) and \
            [int(image["height"]), int(image["width"])] == size
    return False


def _keypoints(v) -> bool:
    return isinstance(v, list) and len(v) % 3 == 0 and _numbers(v)


def _not_ignored(v) -> bool:
    return type(v) in (int, bool) and v == 0


# ---- the table ---------------------------------------------------------------------------------------

SAME = "same"  # Rule.missing: a missing field breaks the rule like a wrong value


class Rule(NamedTuple):
    section: str  # "images", "categories" or "annotations"
    field: str
    valid: Optional[Callable[..., bool]]  # valid(value) or, with ``needs_image``, valid(value, image or None)
    problem: str  # what an entry breaking the rule has, e.g. "a width that is not a positive whole number"
    action: str  # STOP, DROP or FILL
    fix: str = ""  # what to do about a broken STOP rule
    missing: Optional[str] = SAME  # the action when the field is missing; None: an optional field
    fill: Optional[Callable[[dict], Any]] = None  # FILL: the value from the entry (None: cannot be filled)
    filled_with: str = ""  # FILL: what the value is, for the warning
    needs_image: bool = False
    unique: bool = False  # two entries with the same value break the rule (the later one is named)


def _box_area(entry):
    width, height = entry["bbox"][2:]
    return float(width * height) if width > 0 and height > 0 else None  # empty boxes: dropped by validate.py


_IMAGE = "every image needs a unique id, a unique file_name and its width and height in pixels"
_CATEGORY = "every category needs a unique id and a unique name"
RULES: Tuple[Rule, ...] = (
    Rule("images", "id", _id, "an id that is not a whole number >= 0", STOP, _IMAGE, unique=True),
    Rule("images", "file_name", _name, "a file_name that is not a non-empty string", STOP, _IMAGE, unique=True),
    Rule("images", "width", _size, "a width that is not a positive whole number", STOP, _IMAGE),
    Rule("images", "height", _size, "a height that is not a positive whole number", STOP, _IMAGE),
    Rule("categories", "id", _id, "an id that is not a whole number >= 0", STOP, _CATEGORY, unique=True),
    Rule("categories", "name", _name, "a name that is not a non-empty string", STOP, _CATEGORY, unique=True),
    Rule("annotations", "id", _id, "an id that is not a whole number >= 0", STOP,
         "every annotation needs a unique id (Detectron2 and COCO evaluation refuse duplicates)", unique=True),
    Rule("annotations", "category_id", None, "a category_id that names no category", STOP,
         "add the category to 'categories' (else every object of it would be trained as background), or correct "
         "the category_id"),
    Rule("annotations", "ignore", _not_ignored, "an 'ignore' flag, which Detectron2 does not support", STOP,
         "remove the flag: mark such regions iscrowd 1, or remove them", missing=None),
    Rule("annotations", "image_id", None, "an image_id that names no image", DROP),
    Rule("annotations", "bbox", _box, "a bbox that is not 4 finite numbers [x, y, width, height]", DROP),
    Rule("annotations", "iscrowd", _crowd, "an iscrowd that is not 0 or 1", DROP, missing=FILL,
         fill=lambda entry: 0, filled_with="0, as Detectron2 trains on a missing one"),
    Rule("annotations", "segmentation", _segmentation, "a segmentation that is neither polygons of 3+ finite "
         "points nor an RLE mask of the image's size", DROP, missing=None, needs_image=True),
    Rule("annotations", "keypoints", _keypoints, "keypoints that are not finite (x, y, visibility) triples", DROP,
         missing=None),
    Rule("annotations", "area", _area, "an area that is not a finite number >= 0", FILL, fill=_box_area,
         filled_with="their box's area, as COCO evaluation needs one"),
)
_REFERENCES = {"image_id": "images", "category_id": "categories"}


# ---- applying it ---------------------------------------------------------------------------------------

@dataclass
class Finding:
    count: int = 0
    example: str = ""


@dataclass
class CocoCheck:
    """What checking one file found. ``cleaned``: the file's content with dropped annotations left out
    and filled fields set (None when nothing was changed)."""
    json_file: str
    annotations: int = 0  # in the file
    dropped: Dict[Rule, Finding] = field(default_factory=dict)
    filled: Dict[Rule, Finding] = field(default_factory=dict)
    cleaned: Optional[dict] = None

    @property
    def changed(self) -> bool:
        return bool(self.dropped or self.filled)

    def summary(self) -> str:
        """One line: the dropped annotations by rule and the filled fields, with an example each."""
        parts = []
        if self.dropped:
            n = sum(f.count for f in self.dropped.values())
            reasons = "; ".join(f"{f.count} with {r.problem}, e.g. {f.example}" for r, f in self.dropped.items())
            parts.append(f"dropped {n} of its {self.annotations} annotations ({reasons})")
        for rule, f in self.filled.items():
            parts.append(f"set the {rule.field} of {f.count} annotations to {rule.filled_with} "
                         f"({rule.problem}, e.g. {f.example})")
        return f"{self.json_file}: " + " and ".join(parts)


def _where(section: str, index: int, entry, name: str, value) -> str:
    label = f"{section}[{index}]"
    if isinstance(entry, dict) and "id" in entry and name != "id":
        label += f" (id {short(entry['id'], 20)})"
    return f"{label} has no {name}" if value is MISSING else f"{label}.{name} = {short(value, 50)}"


def _stop(json_file: str, rule: Rule, finding: Finding, total: int) -> CocoFileError:
    return CocoFileError(f"{json_file}: {finding.count} of its {total} {rule.section} have {rule.problem}, "
                         f"e.g. {finding.example}; {rule.fix}")


def check_coco(data: dict, json_file: str) -> CocoCheck:
    """Apply :data:`RULES` to a loaded COCO file. Raises CocoFileError for the first STOP rule broken (in
    table order); returns what DROP and FILL rules found, with the cleaned content if any."""
    result = CocoCheck(json_file)
    sections = {s: data.get(s) if s != "annotations" else data.get(s, []) for s in ("images", "categories",
                                                                                      "annotations")}
    for section, entries in sections.items():
        for i, entry in enumerate(entries):
            if not isinstance(entry, dict):
                if section == "annotations":
                    continue  # dropped below
                raise CocoFileError(f"{json_file}: {section}[{i}] is {short(entry, 40)}, not an object; "
                                    f"{_IMAGE if section == 'images' else _CATEGORY}")
    known = {s: {e.get("id") for e in sections[s] if _id(e.get("id"))} for s in ("images", "categories")}
    images_by_id = {e["id"]: e for e in sections["images"] if _id(e.get("id"))}
    stops: Dict[Rule, Finding] = {}
    seen: Dict[Rule, Dict[Any, int]] = {}
    kept: List[Any] = []
    not_object = Finding()
    for section, entries in sections.items():
        rules = [r for r in RULES if r.section == section]
        for i, entry in enumerate(entries):
            if not isinstance(entry, dict):  # an annotation that is not an object: dropped
                not_object.count += 1
                not_object.example = not_object.example or f"annotations[{i}] = {short(entry, 40)}"
                continue
            dropped = False
            for rule in rules:
                if dropped and rule.action != STOP:
                    break
                value = entry.get(rule.field, MISSING)
                if value is MISSING:
                    if rule.missing is None:
                        continue
                    broken = _missing(rule)
                elif rule.field in _REFERENCES:
                    broken = None if _id(value) and value in known[_REFERENCES[rule.field]] else rule
                elif rule.needs_image:
                    image_id = entry.get("image_id")
                    broken = None if rule.valid(value, images_by_id.get(image_id) if _id(image_id) else None) else rule
                else:
                    broken = None if rule.valid(value) else rule
                if broken is None and rule.unique:
                    first = seen.setdefault(rule, {}).setdefault(_key(value), i)
                    if first != i:
                        broken = _duplicate(rule)
                        value = _Shown(f"{short(value, 50)}, as {section}[{first}]")
                if broken is None:
                    continue
                if broken.action == FILL:
                    filled = broken.fill(entry)
                    if filled is None:
                        continue
                    entry = dict(entry, **{rule.field: filled})
                found = {STOP: stops, DROP: result.dropped, FILL: result.filled}[broken.action].setdefault(
                    broken, Finding())
                found.count += 1
                found.example = found.example or _where(section, i, entry, rule.field, value)
                dropped = dropped or broken.action == DROP
            if section == "annotations" and not dropped:
                kept.append(entry)
    for rule in RULES:  # the first broken STOP rule, in table order
        for broken in (rule, _missing(rule), _duplicate(rule)):
            if broken in stops:
                raise _stop(json_file, broken, stops[broken], len(sections[rule.section]))
    if not_object.count:
        result.dropped = {_NOT_OBJECT: not_object, **result.dropped}
    result.annotations = len(sections["annotations"])
    if result.annotations and not kept:
        raise CocoFileError(f"{result.summary()}: no annotation is left; fix the file")
    if result.changed:
        result.cleaned = dict(data, annotations=kept)
    return result


_NOT_OBJECT = Rule("annotations", "", None, "an entry that is not an object", DROP)


def _duplicate(rule: Rule) -> Rule:
    """The rule a second entry with the same value of a unique field breaks."""
    return rule._replace(problem=f"the same {rule.field} as an earlier entry", unique=False)


def _missing(rule: Rule) -> Rule:
    """The rule an entry without the field breaks."""
    return rule._replace(problem=f"no {rule.field}", action=rule.action if rule.missing == SAME else rule.missing)


class _Shown(str):
    """An example value already written out."""

    def __repr__(self):
        return str(self)


def _key(value):
    """A hashable stand-in for a value compared for uniqueness."""
    try:
        hash(value)
        return (type(value).__name__, value)
    except TypeError:
        return repr(value)


def read_coco(json_file: str, content: Optional[bytes] = None) -> dict:
    """The content of a COCO-format file (``content``: its bytes, if already read), or CocoFileError for a
    file that is not one: invalid JSON, not an object, no ``images`` / ``categories`` list, an
    ``annotations`` that is not a list. A file without ``annotations`` (image lists for inference, like
    COCO's test-dev) is fine."""
    try:
        if content is None:
            with open(json_file, "rb") as f:
                content = f.read()
        data = json.loads(content.decode("utf-8"))
    except json.JSONDecodeError as e:
        raise CocoFileError(f"{json_file} is not valid JSON: {e.msg} at line {e.lineno}, column {e.colno}") from None
    except UnicodeDecodeError:
        raise CocoFileError(f"{json_file} is not UTF-8 text; is it a JSON file?") from None
    except RecursionError:
        raise CocoFileError(f"{json_file} nests too deeply to be a COCO file") from None
    if not isinstance(data, dict):
        kind = {type(None): "null", bool: "true/false", str: "string", int: "number", float: "number"}.get(
            type(data), type(data).__name__)
        raise CocoFileError(f"{json_file} holds a JSON {kind}, not a COCO object with keys "
                            "['images', 'annotations', 'categories']")
    missing = [k for k in ("images", "categories") if not isinstance(data.get(k), list)]
    if "annotations" in data and not isinstance(data["annotations"], list):
        missing.append("annotations")
    if missing:
        raise CocoFileError(f"{json_file} has no {' / '.join(repr(k) for k in missing)} list")
    for key in ("images", "categories"):
        if not data[key]:
            raise CocoFileError(f"{json_file} has an empty {key!r} list")
    return data


# Files found clean, by the digest of their content and of these rules: in this process, and on disk
# (<cache>/checked-annotations/) so that later runs and the other processes of a run skip the parse.
_CLEAN: Dict[str, CocoCheck] = {}
_RULES_DIGEST = hashlib.sha1(open(__file__, "rb").read()).hexdigest()


def _marker(digest: str) -> str:
    from .datasets import default_cache_dir

    return os.path.join(str(default_cache_dir()), "checked-annotations", digest)


def check_coco_file(json_file: str) -> CocoCheck:
    """:func:`read_coco` + :func:`check_coco`, unless this content was found clean before (the file is
    still read and hashed: about 1 s per GB, against a JSON parse of about 30 s per GB)."""
    with open(json_file, "rb") as f:
        content = f.read()
    digest = hashlib.sha1(content + _RULES_DIGEST.encode()).hexdigest()
    found = _CLEAN.get(digest)
    if found is None:
        try:
            with open(_marker(digest)) as f:
                found = CocoCheck(json_file, annotations=json.load(f)["annotations"])
        except (OSError, ValueError, KeyError, TypeError):
            pass
    if found is not None:
        return found if found.json_file == json_file else CocoCheck(json_file, annotations=found.annotations)
    data = read_coco(json_file, content)
    del content  # (as large as the file)
    found = check_coco(data, json_file)
    if not found.changed:  # (a cleaned content is not kept: it is as large as the file)
        _CLEAN[digest] = found
        try:
            os.makedirs(os.path.dirname(_marker(digest)), exist_ok=True)
            with open(_marker(digest) + f".{os.getpid()}", "w") as f:
                json.dump({"json_file": os.path.abspath(json_file), "annotations": found.annotations}, f)
            os.replace(_marker(digest) + f".{os.getpid()}", _marker(digest))
        except OSError:  # a read-only cache folder: checked again next time
            pass
    return found
