"""Three-way merge of one review saved by two viewers (two windows, two workstations).

Each viewer keeps the file's content as it last read or wrote it (the *base*).
When it saves and the file no longer holds that base, another viewer saved in
between: this viewer's changes are the differences base -> mine, the other's
base -> theirs. They are combined field by field (reader name, each
assessment field of each breast, each finding by id, and within a finding
each field), so neither viewer loses a committed change. When both changed
the same field to different values, nothing is guessed: :class:`MergeConflict`
names what clashed, and the caller refuses the save.

Works on the plain dicts of the file format (``Review.to_dict``), never on Qt
or on live objects, so it is the same for the viewer, the CLI and the tests.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from core_model.domain.study import SIDE_NAMES, SIDES

# Whole-value fields, in the words the message uses.
WHOLE_FIELDS = {"reader": "the reader name", "identity": "the study identity", "ai": "the AI summary",
                "images": "the image sizes", "assignments": "the placed images", "signoff": "the sign-off"}
ASSESSMENT_WORDS = {"birads": "BI-RADS", "density": "density", "text": "findings text", "bpe": "BPE"}


class MergeConflict(Exception):
    """Both viewers changed the same thing differently; ``clashes`` says what, in words."""

    def __init__(self, clashes: list[str]):
        self.clashes = clashes
        super().__init__(", ".join(clashes))


@dataclass
class Merged:
    data: dict[str, Any]
    theirs: list[str] = field(default_factory=list)  # what the other viewer had changed, in words
    renamed: dict[str, str] = field(default_factory=dict)  # my new finding ids the other viewer had taken


def _three(base: Any, mine: Any, theirs: Any) -> tuple[Any, bool, bool]:
    """(merged value, the other viewer changed it, both changed it differently)."""
    if mine == base:
        return theirs, theirs != base, False
    if theirs == base or theirs == mine:
        return mine, False, False
    return None, True, True


def _merge_finding(fid: str, b: dict, m: dict, t: dict) -> tuple[dict | None, bool]:
    """Field by field: one viewer accepts a contour while the other links it, both stay."""
    out: dict[str, Any] = {}
    for name in list(m) + [k for k in t if k not in m]:
        v, _, clash = _three(b.get(name), m.get(name), t.get(name))
        if clash:
            return None, True
        out[name] = v
    return out, False


def merge(base: dict[str, Any], mine: dict[str, Any], theirs: dict[str, Any]) -> Merged:
    """This viewer's changes (base -> mine) applied on top of the file as it is now (theirs)."""
    out = dict(mine)
    clashes: list[str] = []
    changed: list[str] = []

    for name, words in WHOLE_FIELDS.items():
        v, by_them, clash = _three(base.get(name), mine.get(name), theirs.get(name))
        if clash:
            clashes.append(words)
        elif by_them:
            changed.append(words)
        out[name] = v

    assessments: dict[str, dict[str, Any]] = {}
    for side in SIDES:
        b, m, t = ((d.get("assessments") or {}).get(side) or {} for d in (base, mine, theirs))
        merged_side: dict[str, Any] = {}
        for name, words in ASSESSMENT_WORDS.items():
            v, by_them, clash = _three(b.get(name), m.get(name), t.get(name))
            what = f"{words} of the {SIDE_NAMES[side]} breast"
            if clash:
                clashes.append(what)
            elif by_them:
                changed.append(what)
            merged_side[name] = v
        assessments[side] = merged_side
    out["assessments"] = assessments

    bf, mf, tf = ({f["id"]: f for f in d.get("findings", [])} for d in (base, mine, theirs))
    next_number = max(int(d.get("next_number", 1)) for d in (base, mine, theirs))
    findings: dict[str, dict] = {}
    mine_new: list[dict] = []  # mine, added under an id the other viewer also took: renumbered below
    added = removed = edited = 0
    for fid in list(mf) + [i for i in tf if i not in mf]:
        b, m, t = bf.get(fid), mf.get(fid), tf.get(fid)
        if m == b:
            v = t
            added += b is None and t is not None
            removed += b is not None and t is None
            edited += b is not None and t is not None and t != b
        elif t == b or t == m:
            v = m
        elif b is None:
            # Both drew a finding and both numbered it fid: both are kept, mine gets the next number.
            v = t
            added += 1
            mine_new.append(m)
        elif m is None or t is None:
            clashes.append(f"finding {fid} (deleted in one viewer, changed in the other)")
            continue
        else:
            v, clash = _merge_finding(fid, b, m, t)
            if clash:
                clashes.append(f"finding {fid}")
                continue
            edited += 1
        if v is not None:
            findings[fid] = v
    if clashes:
        raise MergeConflict(clashes)

    renamed: dict[str, str] = {}
    for m in mine_new:
        new_id = f"F{next_number}"
        while new_id in findings:
            next_number += 1
            new_id = f"F{next_number}"
        next_number += 1
        renamed[m["id"]] = new_id
        findings[new_id] = {**m, "id": new_id}
    out["findings"] = list(findings.values())
    out["next_number"] = next_number
    out["created"] = theirs.get("created", mine.get("created"))
    out["revision"] = int(theirs.get("revision", 0)) + 1  # the file's revisions only ever go up

    for n, what in ((added, "added"), (edited, "changed"), (removed, "deleted")):
        if n:
            changed.insert(0, f"{n} finding{'s' if n > 1 else ''} {what}")
    return Merged(out, changed, renamed)
