"""The review file's schema, checked before a single field is used.

A review file is read back from a disk that other programs, other versions
and other people can write. :func:`check_review` looks at every field the
viewer, the reports and the exports use (type, range, finite numbers, known
categories, unique finding ids, bounded nesting), so a damaged file is named
as damaged in one sentence instead of failing somewhere later with an
AttributeError, an OverflowError or a RecursionError.

Only plain loops, no recursion: a file nested a million levels deep must be
refused, not crash the check itself.
"""

from __future__ import annotations

import math
from typing import Any

from core_model.domain.study import ENERGIES, SIDES, VIEW_KEYS
from core_model.review.lexicon import known_term

# 1: findings, links, assessments, AI summary.
# 2: adds the sign-off (finalised reviews are locked), addenda, lexicon terms per finding, BPE per
#    breast and image assignments. Version 1 files read as they are; every save writes 2, so a
#    version-1 program refuses the file (as newer) instead of ignoring a signature and letting a
#    finalised review be edited.
SCHEMA_VERSION = 2
FORMAT = "nafv-review"

STATES = ("proposed", "accepted", "edited", "rejected")
ORIGINS = ("ai", "reader")
BIRADS = ("0", "1", "2", "3", "4", "4A", "4B", "4C", "5", "6")
DENSITIES = ("a", "b", "c", "d")
# A review file is at most 5 levels deep; free-form parts (the AI summary) are copied whole, and
# copying or re-encoding something nested hundreds of levels deep would hit Python's recursion limit.
MAX_DEPTH = 32


class ReviewSchemaError(ValueError):
    """The file is not a review this version can read; ``str`` says which field and why."""


class NewerSchemaError(ReviewSchemaError):
    """A valid review written by a newer version: not damage, so it must be left where it is."""


def _fail(where: str, what: str) -> None:
    raise ReviewSchemaError(f"{where}: {what}")


def _is_int(v: Any) -> bool:
    return isinstance(v, int) and not isinstance(v, bool)


def _is_number(v: Any) -> bool:
    # bool is an int in Python, but true/false in a coordinate is damage
    if isinstance(v, bool) or not isinstance(v, (int, float)):
        return False
    # a JSON integer has no size limit: one too big for a float would overflow later
    return math.isfinite(v) if isinstance(v, float) else abs(v) <= 2**53


def _depth(obj: Any) -> int:
    deepest, stack = 0, [(obj, 1)]
    while stack:
        o, d = stack.pop()
        deepest = max(deepest, d)
        if d > MAX_DEPTH:
            break
        if isinstance(o, dict):
            stack.extend((v, d + 1) for v in o.values())
        elif isinstance(o, list):
            stack.extend((v, d + 1) for v in o)
    return deepest


def _object(d: dict, name: str, required: bool = False) -> dict:
    v = d.get(name, None if required else {})
    if not isinstance(v, dict):
        _fail(name, "is not an object" if v is not None else "is missing")
    return v


def _optional(d: dict, name: str, ok, what: str, where: str = "") -> None:
    if name in d and d[name] is not None and not ok(d[name]):
        _fail(f"{where}{name}", f"is not {what}")


def _polygon(points: Any, where: str) -> None:
    if not isinstance(points, list):
        _fail(where, "is not a list of points")
    if len(points) < 3:
        _fail(where, f"a contour needs at least 3 points, has {len(points)}")
    for i, p in enumerate(points):
        if not (isinstance(p, list) and len(p) == 2 and _is_number(p[0]) and _is_number(p[1])):
            _fail(where, f"point {i} is not two finite numbers")


def _finding(f: Any, where: str) -> str:
    if not isinstance(f, dict):
        _fail(where, "is not an object")
    fid = f.get("id")
    if not isinstance(fid, str) or not fid:
        _fail(f"{where}.id", "is missing or not text")
    if f.get("key") not in VIEW_KEYS:
        _fail(f"{where}.key", f"{f.get('key')!r} is not one of {', '.join(VIEW_KEYS)}")
    _polygon(f.get("polygon"), f"{where}.polygon")
    if f.get("state") not in STATES:
        _fail(f"{where}.state", f"{f.get('state')!r} is not one of {', '.join(STATES)}")
    if f.get("origin", "ai") not in ORIGINS:
        _fail(f"{where}.origin", f"{f.get('origin')!r} is not one of {', '.join(ORIGINS)}")
    _optional(f, "ai_score", _is_number, "a finite number", f"{where}.")
    if f.get("ai_polygon") is not None:
        _polygon(f["ai_polygon"], f"{where}.ai_polygon")
    _optional(f, "link", lambda v: isinstance(v, str), "a finding id", f"{where}.")
    _optional(f, "descriptors", lambda v: isinstance(v, dict) and all(isinstance(x, str) for x in v.values()),
              "an object of lexicon terms", f"{where}.")
    _descriptors(f.get("descriptors") or {}, f"{where}.descriptors")
    return fid


def _descriptors(d: dict, where: str) -> None:
    # Every field and term of the lexicon for any type: a term an older review stored for a type that no
    # longer takes it still loads (flagged by lexicon.stray_terms); a word the lexicon does not have is damage.
    for name, term in d.items():
        try:
            stored = known_term(name, term)
        except ValueError as err:
            _fail(f"{where}.{name}", str(err))
        if stored != term:
            _fail(f"{where}.{name}", f"{term!r} is not written as the lexicon writes it ({stored!r})")


def _assessments(a: dict) -> None:
    for side, v in a.items():
        where = f"assessments.{side}"
        if side not in SIDES:
            _fail(where, "is not a breast side (R or L)")
        if not isinstance(v, dict):
            _fail(where, "is not an object")
        if v.get("birads") is not None and v["birads"] not in BIRADS:
            _fail(f"{where}.birads", f"{v['birads']!r} is not a BI-RADS category")
        if v.get("density") is not None and v["density"] not in DENSITIES:
            _fail(f"{where}.density", f"{v['density']!r} is not an ACR density (a-d)")
        _optional(v, "text", lambda t: isinstance(t, str), "text", f"{where}.")
        if v.get("bpe") is not None and v["bpe"] not in ("minimal", "mild", "moderate", "marked"):
            _fail(f"{where}.bpe", f"{v['bpe']!r} is not a BPE level (minimal, mild, moderate, marked)")


def _images(images: dict) -> None:
    for key, v in images.items():
        where = f"images.{key}"
        if key not in VIEW_KEYS or not isinstance(v, dict):
            _fail(where, "is not a view's image size and spacing")
        sp = v.get("pixel_spacing_mm")
        if sp is not None and not (isinstance(sp, list) and len(sp) == 2 and all(_is_number(x) for x in sp)):
            _fail(f"{where}.pixel_spacing_mm", "is not two numbers")
        shape = v.get("shape")
        if shape is not None and not (isinstance(shape, list) and len(shape) == 2 and all(_is_int(x) and x > 0 for x in shape)):
            _fail(f"{where}.shape", "is not two positive whole numbers")


def _assignments(a: dict) -> None:
    for uid, v in a.items():
        where = f"assignments.{uid}"
        if not isinstance(v, dict) or v.get("key") not in VIEW_KEYS:
            _fail(where, f"is not a placement on one of {', '.join(VIEW_KEYS)}")
        if v.get("energy", "le") not in ENERGIES:
            _fail(f"{where}.energy", f"{v.get('energy')!r} is not le or rc")


def _ai(ai: dict) -> None:
    # Shown as written (a NaN prints as "nan"): only a kind that cannot be printed as a score is damage.
    _optional(ai, "malignancy_probability", lambda v: isinstance(v, (int, float)) and not isinstance(v, bool),
              "a number", "ai.")
    _optional(ai, "affected_side", lambda v: v in SIDES, "R or L", "ai.")
    _optional(ai, "models", lambda v: isinstance(v, dict), "an object", "ai.")
    _optional(ai, "warnings", lambda v: isinstance(v, list) and all(isinstance(w, str) for w in v), "a list of text", "ai.")
    for flag in ("ran", "not_for_clinical_use"):
        _optional(ai, flag, lambda v: isinstance(v, bool), "true or false", "ai.")


def check_review(d: Any) -> None:
    """Raise :class:`ReviewSchemaError` naming the first field that is not as a review file has it."""
    if not isinstance(d, dict):
        raise ReviewSchemaError(f"the file holds a {type(d).__name__}, not a review")
    if d.get("format") != FORMAT:
        raise ReviewSchemaError("not a NaFV review file")
    if _depth(d) > MAX_DEPTH:
        raise ReviewSchemaError(f"nested deeper than {MAX_DEPTH} levels")
    version = d.get("schema_version", 0)
    if not _is_int(version) or version < 0:
        _fail("schema_version", f"{version!r} is not a version number")
    if version > SCHEMA_VERSION:
        raise NewerSchemaError(f"written by a newer version of NaFV Viewer (schema {version})")
    identity = _object(d, "identity", required=True)
    for name in ("patient_id", "study_id"):
        if not isinstance(identity.get(name), str):
            _fail(f"identity.{name}", "is missing or not text")
    for name in ("reader", "created", "modified"):
        _optional(d, name, lambda v: isinstance(v, str), "text")
    _optional(d, "revision", lambda v: _is_int(v) and v >= 0, "a whole number")
    _optional(d, "next_number", lambda v: _is_int(v) and v >= 1, "a whole number")
    _ai(_object(d, "ai"))
    _images(_object(d, "images"))
    _assignments(_object(d, "assignments"))
    _assessments(_object(d, "assessments"))
    if d.get("signoff") is not None:
        from core_model.review.signoff import check_signoff

        try:
            check_signoff(d["signoff"])
        except ValueError as err:
            raise ReviewSchemaError(str(err)) from None
    findings = d.get("findings", [])
    if not isinstance(findings, list):
        _fail("findings", "is not a list")
    seen: set[str] = set()
    for i, f in enumerate(findings):
        fid = _finding(f, f"findings[{i}]")
        if fid in seen:
            _fail(f"findings[{i}].id", f"{fid} is used twice")
        seen.add(fid)
