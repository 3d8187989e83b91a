"""Signing a review: finalise (reader and time, then locked) and addenda for later changes.

Qt-free. A finalised review refuses every edit with a message that says who
signed it and how to change it. To change it afterwards the reader opens an
addendum (reader, time, reason): the edits made while it is open are allowed
and listed in it, and finalising again signs the addendum and locks the
review once more. Reports print the sign-off and every addendum, so what a
report says can always be traced to who decided it and when.

The sign-off lives in ``Review.signoff``::

    {"finalised": {"reader": str, "time": iso} | None,
     "addenda": [{"reader", "opened", "reason", "changes": [str], "signed": iso | None}]}
"""

from __future__ import annotations

import copy
import datetime as _dt
from dataclasses import dataclass
from typing import Any

from core_model.domain.errors import NafvError


class ReviewLockedError(NafvError):
    """An edit of a finalised review with no addendum open."""


def empty_signoff() -> dict[str, Any]:
    return {"finalised": None, "addenda": []}


def _now() -> str:
    return _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds")


def _when(iso: str) -> str:
    return iso.replace("T", " ")[:16] + " UTC" if iso else "?"


def open_addendum(review: Any) -> dict[str, Any] | None:
    """The addendum being written (opened, not yet signed), or None."""
    adds = review.signoff.get("addenda") or []
    return adds[-1] if adds and not adds[-1].get("signed") else None


def is_finalised(review: Any) -> bool:
    return bool(review.signoff.get("finalised"))


def is_locked(review: Any) -> bool:
    """Finalised and no addendum open: no edit is accepted."""
    return is_finalised(review) and open_addendum(review) is None


def status_text(review: Any) -> str:
    """One line on the sign-off, for the viewer and the report ('' for a review still being read)."""
    fin = review.signoff.get("finalised")
    if not fin:
        return ""
    text = f"Finalised by {fin['reader']} on {_when(fin['time'])}"
    signed = [a for a in review.signoff.get("addenda") or [] if a.get("signed")]
    if signed:
        text += f"; {len(signed)} addendum" + ("" if len(signed) == 1 else "s")
    add = open_addendum(review)
    if add is not None:
        text += f"; addendum by {add['reader']} open since {_when(add['opened'])}, not signed yet"
    return text


def addendum_lines(review: Any) -> list[str]:
    """Each addendum in one paragraph: who, when opened and signed, why, what changed."""
    out = []
    for i, a in enumerate(review.signoff.get("addenda") or [], 1):
        signed = f"signed {_when(a['signed'])}" if a.get("signed") else "NOT SIGNED"
        changes = "; ".join(a.get("changes") or []) or "no change"
        reason = f" Reason: {a['reason']}." if a.get("reason") else ""
        out.append(f"Addendum {i} by {a['reader']}, opened {_when(a['opened'])}, {signed}.{reason} Changes: {changes}.")
    return out


def check_editable(review: Any, cmd: Any) -> None:
    """Raise :class:`ReviewLockedError` when ``cmd`` would change a locked review."""
    if isinstance(cmd, SignoffCommand) or not is_locked(review):
        return
    fin = review.signoff["finalised"]
    raise ReviewLockedError(
        f"This review was finalised by {fin['reader']} on {_when(fin['time'])} and is locked: "
        "open an addendum to change it.")


def note_change(review: Any, cmd: Any, how: str) -> None:
    """List an edit made while an addendum is open in that addendum (undo takes it off again)."""
    add = open_addendum(review)
    if add is None or isinstance(cmd, SignoffCommand):
        return
    changes = add.setdefault("changes", [])
    if how == "undo":
        if cmd.text in changes:
            del changes[len(changes) - 1 - changes[::-1].index(cmd.text)]
    elif how in ("do", "redo"):
        changes.append(cmd.text)


class SignoffCommand:
    """Base of the sign-off commands: they are not undone (a signature is amended, never withdrawn)."""

    text = "sign-off"

    def apply(self, review: Any) -> None:  # pragma: no cover - interface
        raise NotImplementedError

    def undo(self, review: Any) -> None:
        # Only reached when a save failed and the session rolls the change back.
        review.signoff = self._old

    def rename_ids(self, renamed: dict[str, str]) -> None:
        pass


@dataclass
class Finalise(SignoffCommand):
    """Sign the review (or the open addendum) as ``reader``; the review is then locked."""

    reader: str
    text: str = "finalise"

    def apply(self, review: Any) -> None:
        reader = str(self.reader or "").strip()
        if not reader:
            raise NafvError("Enter the reader's name before finalising: the report names who signed it.")
        self._old = copy.deepcopy(review.signoff)
        add = open_addendum(review)
        if add is not None:
            add["signed"], add["reader"] = _now(), reader
            self.text = "sign addendum"
        elif is_finalised(review):
            raise NafvError("This review is already finalised: open an addendum to change it.")
        else:
            review.signoff["finalised"] = {"reader": reader, "time": _now()}


@dataclass
class OpenAddendum(SignoffCommand):
    """Unlock a finalised review for changes that will be listed, with ``reason``, in a new addendum."""

    reader: str
    reason: str = ""
    text: str = "open addendum"

    def apply(self, review: Any) -> None:
        reader = str(self.reader or "").strip()
        if not is_finalised(review):
            raise NafvError("The review is not finalised yet: change it directly.")
        if open_addendum(review) is not None:
            raise NafvError("An addendum is already open: finalise it first.")
        if not reader:
            raise NafvError("Enter the reader's name before opening an addendum.")
        self._old = copy.deepcopy(review.signoff)
        review.signoff.setdefault("addenda", []).append(
            {"reader": reader, "opened": _now(), "reason": str(self.reason or "").strip(), "changes": [], "signed": None})


def check_signoff(s: Any) -> None:
    """Raise ValueError naming what is wrong with a file's sign-off block."""
    if not isinstance(s, dict):
        raise ValueError("signoff: is not an object")
    fin = s.get("finalised")
    if fin is not None and not (isinstance(fin, dict) and isinstance(fin.get("reader"), str)
                                and isinstance(fin.get("time"), str)):
        raise ValueError("signoff.finalised: is not a reader and a time")
    adds = s.get("addenda", [])
    if not isinstance(adds, list):
        raise ValueError("signoff.addenda: is not a list")
    for i, a in enumerate(adds):
        ok = isinstance(a, dict) and isinstance(a.get("reader"), str) and isinstance(a.get("opened"), str) \
            and isinstance(a.get("changes", []), list) and all(isinstance(c, str) for c in a.get("changes", [])) \
            and (a.get("signed") is None or isinstance(a.get("signed"), str))
        if not ok:
            raise ValueError(f"signoff.addenda[{i}]: is not an addendum")
