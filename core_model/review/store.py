"""Autosave of reviews: one file per study, keyed by study identity, written atomically.

The file is keyed by patient id + study id, so a review survives adding a
view or re-exporting the images. Inside the file the identity also holds a
digest of every image's pixels (one per slot and one over all): when the
study opened later differs from the one reviewed, the review is still
restored, with a warning that names the images added, removed or changed
(:attr:`Review.restore_warnings`, :attr:`ReviewStore.warnings`). Two patients
never share a review: their ids differ, and a file whose stored patient or
study id differs from the study opened is refused. A write goes through :mod:`core_model.io.atomic`
(temp file -> fsync -> rename -> fsync of the directory), so a crash or kill at
any moment leaves either the previous complete file or the new complete file,
never a torn one.

Two viewers (two windows, two workstations on a shared folder) may save the
same review. A save holds a lock beside the file (:mod:`core_model.io.file_lock`)
while it reads what is on disk and writes: when the file is no longer what
this viewer last read or wrote, another viewer saved in between, and only
this viewer's own changes are applied on top of theirs
(:mod:`core_model.review.merge`); when both changed the same thing, the save
is refused with :class:`ReviewConflictError`, which names it and carries the
file's content to reload. A read-only file is never replaced. A damaged file
(not JSON, not a review, a field of the wrong kind) is moved aside under a
dated name, never deleted, and the study opens with a new review.

Location: ``$NAFV_DATA_DIR/reviews`` when that variable is set (tests), else
the platform's per-user data directory (``~/.local/share/nafv-viewer`` on
Linux, ``~/Library/Application Support/nafv-viewer`` on macOS,
``%APPDATA%\\nafv-viewer`` on Windows).
"""

from __future__ import annotations

import datetime as _dt
import hashlib
import json
import os
import re
import stat
import sys
from pathlib import Path
from typing import Any

from core_model.domain.errors import NafvError
from core_model.io.atomic import write_bytes
from core_model.io.file_lock import FileLock, LockTimeout, break_if_stale, pid_alive
from core_model.review.merge import MergeConflict, merge
from core_model.review.model import Review, review_from_analysis
from core_model.review.schema import NewerSchemaError, check_review

APP_DIR_NAME = "nafv-viewer"
# Read at each save, so tests can shorten them.
LOCK_WAIT_S = 10.0  # a save holds the lock for milliseconds: waiting longer means something is wrong
LOCK_STALE_S = 30.0
PRIVATE = 0o600  # a review names the patient: only its owner reads it


class ReviewStoreError(NafvError):
    """A review file could not be written or read back."""


class ReviewConflictError(ReviewStoreError):
    """Another viewer changed the same thing: this change was not saved.

    ``reload`` is the review as the file holds it now and ``reload_base`` the
    file's content, so the caller can show what is on disk (see ReviewSession).
    """

    def __init__(self, message: str, path: Path, reload: Review, reload_base: dict[str, Any]):
        super().__init__(message, path)
        self.reload, self.reload_base = reload, reload_base


# What reading a damaged file can raise: bad JSON or UTF-8 (ValueError), nesting (RecursionError), and, in
# case a check misses a field, what using it would raise.
DAMAGE = (ValueError, RecursionError, KeyError, TypeError, OverflowError)


def lock_path(path: Path) -> Path:
    return path.with_name(f".{path.name}.lock")


def _plain(obj: Any) -> Any:
    """``obj`` as the file will hold it (lists, not tuples), so it compares equal to what is read back."""
    return json.loads(json.dumps(obj, ensure_ascii=False))


def _read_only(path: Path) -> bool:
    """True when the file exists and is protected against writing.

    The mode bits are checked first: root (and a Windows administrator) may
    write anyway, and ``os.access`` says so, but a file nobody may write was
    protected on purpose and must not be replaced by a rename.
    """
    try:
        st = os.stat(path)
    except FileNotFoundError:
        return False
    if not st.st_mode & (stat.S_IWUSR | stat.S_IWGRP | stat.S_IWOTH):
        return True
    return not os.access(path, os.W_OK)


def _one_line(text: Any, limit: int = 160) -> str:
    text = " ".join(str(text).split())
    return text if len(text) <= limit else text[: limit - 1] + "…"


def data_dir() -> Path:
    env = os.environ.get("NAFV_DATA_DIR")
    if env:
        return Path(env)
    home = Path.home()
    if sys.platform == "win32":
        return Path(os.environ.get("APPDATA", home / "AppData" / "Roaming")) / APP_DIR_NAME
    if sys.platform == "darwin":
        return home / "Library" / "Application Support" / APP_DIR_NAME
    return Path(os.environ.get("XDG_DATA_HOME") or home / ".local" / "share") / APP_DIR_NAME


def safe_name(text: Any) -> str:
    """``text`` made safe for a file name (letters, digits, . _ -; at most 40 characters)."""
    return re.sub(r"[^A-Za-z0-9._-]+", "-", str(text)).strip("-.")[:40] or "x"


def review_key(study: Any) -> str:
    """The review file's name stem: the patient and study ids only (a hash of both keeps ids that sanitise alike apart)."""
    ids = hashlib.sha256(f"{study.patient_id}\0{study.study_id}".encode()).hexdigest()
    return f"{safe_name(study.patient_id)}_{safe_name(study.study_id)}_{ids[:12]}"


def study_identity(study: Any) -> dict[str, Any]:
    """patient id, study id, the file key, and pixel digests (per slot and over all slots).

    The key depends on the patient and study ids only (a hash of both keeps ids
    that sanitise alike apart); the digests travel inside the file.
    """
    h = hashlib.sha256()
    h.update(f"{study.patient_id}\0{study.study_id}\0".encode())
    per_slot: dict[str, str] = {}
    for (key, energy) in sorted(study.images):
        img = study.images[(key, energy)]
        coded = getattr(img, "content_digest", None)
        if coded is not None:
            # a losslessly coded image (JPEG 2000) is identified by its code stream: no full decode
            pix, shape, dtype = coded, tuple(img.shape), img.pixel_dtype.str
        else:
            px = img.pixels
            pix = hashlib.sha256(px.tobytes() if px.flags.c_contiguous else px.copy(order="C").tobytes()).hexdigest()
            shape, dtype = px.shape, px.dtype.str
        per_slot[f"{key} {energy}"] = pix
        h.update(f"{key}\0{energy}\0{shape}\0{dtype}\0{pix}\n".encode())
    return {
        "patient_id": str(study.patient_id),
        "study_id": str(study.study_id),
        "digest": h.hexdigest(),
        "images": per_slot,
        "key": review_key(study),
        "synthetic": bool(getattr(study, "synthetic", False)),  # reports must never pass a phantom off as a patient
    }


def describe_change(saved: dict[str, Any], current: dict[str, Any]) -> str:
    """Which images differ between the study reviewed and the one opened now, in words."""
    old, new = saved.get("images"), current.get("images")
    if not isinstance(old, dict) or not isinstance(new, dict):
        return "the images differ from those reviewed"
    added = [k for k in new if k not in old]
    removed = [k for k in old if k not in new]
    changed = [k for k in new if k in old and new[k] != old[k]]
    parts = [f"{label}: {', '.join(sorted(keys))}" for label, keys in
             (("added", added), ("removed", removed), ("pixels changed", changed)) if keys]
    return "; ".join(parts) or "the images differ from those reviewed"


def review_file_bytes(data: dict[str, Any]) -> bytes:
    """A review file's text: one top-level field, and one finding, per line.

    Still readable and diff-friendly, and written by json's C encoder: the
    indented encoder is pure Python and made a save of a 300-finding review
    cost tens of milliseconds, which a busy shared review must not.
    """
    def dump(v: Any) -> str:
        return json.dumps(v, ensure_ascii=False)

    lines = []
    for k, v in data.items():
        if k == "findings" and v:
            v = "[\n  " + ",\n  ".join(dump(f) for f in v) + "\n ]"
        else:
            v = dump(v)
        lines.append(f" {dump(k)}: {v}")
    return ("{\n" + ",\n".join(lines) + "\n}\n").encode("utf-8")


def _writer_alive(tmp: Path) -> bool:
    """True when the process named in a temp file's name still runs (it may be writing right now)."""
    try:
        pid = int(tmp.name.rsplit(".", 2)[-2])
    except (ValueError, IndexError):
        return False
    if pid == os.getpid():
        return False  # our own leftover from a failed write
    return pid_alive(pid)  # on Windows always True: a stale temp file is harmless


class ReviewStore:
    """Saves and restores reviews under ``root`` (default ``data_dir()/reviews``)."""

    def __init__(self, root: str | Path | None = None):
        self.root = Path(root) if root is not None else data_dir() / "reviews"
        # Warnings of the last load()/open() (e.g. images changed since the review was saved).
        self.warnings: list[str] = []

    def path_for(self, identity: dict[str, Any]) -> Path:
        return self.root / f"{identity['key']}.review.json"

    def _lock(self, path: Path) -> FileLock:
        return FileLock(lock_path(path), wait_s=LOCK_WAIT_S, stale_s=LOCK_STALE_S)

    def save(self, review: Review) -> Path:
        """Write ``review``, merged with what another viewer saved since this one last read or wrote.

        On success ``review`` holds what was written (with the other viewer's
        changes, if any: see ``review.merge_note`` and ``review.renamed_ids``).
        """
        path = self.path_for(review.identity)
        if _read_only(path):
            raise ReviewStoreError("the saved review is read-only, so your change was not saved; "
                                   "make the file writable to go on editing", path)
        try:
            path.parent.mkdir(parents=True, exist_ok=True)  # the lock lives beside the file
            with self._lock(path):
                data, note, renamed = self._merged_with_disk(review, path)
                write_bytes(path, review_file_bytes(data), mode=PRIVATE)
        except LockTimeout:
            raise ReviewStoreError(f"another viewer is saving this review and has not finished for {LOCK_WAIT_S:.0f} s; "
                                   "your change was not saved: try again", path) from None
        except OSError as exc:
            raise ReviewStoreError(f"the review could not be saved ({exc.strerror or exc}); the last change was undone", path) from None
        if note or renamed:
            review.adopt(Review.from_dict(_plain(data)))  # a copy: the base must not change with the review
        review.revision = data["revision"]
        review.base, review.merge_note, review.renamed_ids = data, note, renamed
        return path

    def _merged_with_disk(self, review: Review, path: Path) -> tuple[dict[str, Any], str, dict[str, str]]:
        """What to write: this viewer's review, on top of another viewer's save when there was one.

        Called with the lock held, so the file cannot change between this read and the write.
        """
        data = _plain(review.to_dict())
        disk, note = self._read_under_lock(path, review.base)
        if disk is None or disk == review.base:
            return data, note, {}
        if review.base is None:
            # This viewer never read the file (e.g. two windows opened a new study at once):
            # writing would wipe the other's review whole.
            raise ReviewConflictError("another viewer started a review of this study meanwhile; "
                                      "your change was not saved and the review was reloaded", path,
                                      Review.from_dict(disk), disk)
        try:
            merged = merge(review.base, data, disk)
        except MergeConflict as clash:
            raise ReviewConflictError(
                f"another viewer saved this review meanwhile and changed the same thing ({clash}); "
                "your change was not saved and the review was reloaded with theirs", path,
                Review.from_dict(disk), disk) from None
        note = "another viewer saved this review meanwhile: " + (
            f"its changes ({', '.join(merged.theirs)}) were merged with yours" if merged.theirs else "your change was merged")
        if merged.renamed:
            note += "; your new finding " + ", ".join(f"{a} is now {b}" for a, b in merged.renamed.items())
        return merged.data, note, merged.renamed

    def _read_under_lock(self, path: Path, base: dict[str, Any] | None) -> tuple[dict[str, Any] | None, str]:
        """The file's content (None when there is none), and a note when a damaged one was moved aside."""
        try:
            raw = path.read_bytes()
        except FileNotFoundError:
            return None, ""
        try:
            disk = json.loads(raw.decode("utf-8"))
            if disk != base:  # the base was checked when it was read or written
                check_review(disk)
            return disk, ""
        except NewerSchemaError:
            raise ReviewStoreError("a newer version of NaFV Viewer saved this review meanwhile; your change was not "
                                   "saved: open the study in that version", path) from None
        except DAMAGE as exc:
            backup = self._move_aside(path)
            return None, (f"the saved review had been damaged ({_one_line(exc)}); it was moved aside to "
                          f"{backup.name} and yours was saved in its place")

    def _move_aside(self, path: Path) -> Path:
        """Rename a damaged file to a dated name that no other backup has; never delete it."""
        stamp = _dt.datetime.now().strftime("%Y%m%d-%H%M%S")
        n = 0
        while True:
            backup = path.with_name(f"{path.name}.damaged-{stamp}" + (f"-{n}" if n else ""))
            if not backup.exists():
                break
            n += 1
        os.rename(path, backup)
        return backup

    def load(self, identity: dict[str, Any]) -> Review | None:
        """The saved review of this study, or None when there is none yet (or it was damaged: see warnings)."""
        self.warnings = []
        path = self.path_for(identity)
        # Temp files of a writer killed before its rename hold nothing the review lacks.
        for stale in path.parent.glob(f".{path.name}.*.tmp"):
            if not _writer_alive(stale):
                stale.unlink(missing_ok=True)
        lock = lock_path(path)
        if lock.exists():
            break_if_stale(lock, LOCK_STALE_S)  # left by a viewer killed while saving
        if not path.is_file():
            return None
        try:
            raw = path.read_bytes()
        except OSError as exc:
            raise ReviewStoreError(f"the saved review of this study cannot be read ({exc.strerror or exc}); "
                                   "it was left untouched", path) from None
        try:
            data = json.loads(raw.decode("utf-8"))
            review = Review.from_dict(data)
        except NewerSchemaError as exc:
            raise ReviewStoreError(f"the saved review of this study was {exc}: open it with that version; "
                                   "it was left untouched", path) from None  # not damage: never moved aside
        except DAMAGE as exc:
            return self._damaged(identity, path, raw, exc)
        review.base = _plain(data)
        stored = review.identity
        if any(stored.get(k) != identity.get(k) for k in ("patient_id", "study_id")):
            raise ReviewStoreError("the saved review belongs to a different study; it was left untouched", path)
        if stored.get("digest") != identity.get("digest"):
            # Same patient and study, other images (a view added, a re-export): the
            # reader's work is kept, but they must check it still fits the images.
            msg = (f"the images of this study changed since the review was saved ({describe_change(stored, identity)}); "
                   "the saved review was restored: check that its findings still match the images")
            review.restore_warnings.append(msg)
            self.warnings.append(msg)
            review.identity = {**identity}  # the next save records the images now reviewed
        return review

    def _damaged(self, identity: dict[str, Any], path: Path, raw: bytes, exc: BaseException) -> Review | None:
        """Move a damaged file aside (under the lock: a viewer may be replacing it right now) and say so."""
        try:
            with self._lock(path):
                try:
                    replaced = path.read_bytes() != raw
                except FileNotFoundError:
                    return None  # moved aside by another viewer meanwhile
                backup = None if replaced else self._move_aside(path)
        except (LockTimeout, OSError) as err:
            raise ReviewStoreError(f"the saved review of this study is damaged ({_one_line(exc)}) and could not be "
                                   f"moved aside ({_one_line(getattr(err, 'strerror', None) or err)}); it was left untouched",
                                   path) from None
        if backup is None:
            return self.load(identity)  # replaced meanwhile by a complete save: read that one
        self.warnings.append(f"the saved review of this study was damaged ({_one_line(exc)}); it was moved aside to "
                             f"{backup.name} and a new review was started")
        return None

    def hang_saved_assignments(self, study: Any) -> list[str]:
        """Hang the images whose slot the reader chose in this study's saved review (before the review opens).

        Reads the file by patient and study id only, without hashing pixels; a
        missing, unreadable or damaged file places nothing here (:meth:`load`
        reports it when the review opens). Returns a sentence per image that
        could not be placed.
        """
        if not getattr(study, "unassigned", None):
            return []
        path = self.root / f"{review_key(study)}.review.json"
        try:
            data = json.loads(path.read_bytes().decode("utf-8"))
            check_review(data)
        except (OSError, *DAMAGE):
            return []
        identity = data["identity"]
        if identity.get("patient_id") != str(study.patient_id) or identity.get("study_id") != str(study.study_id):
            return []
        return study.apply_assignments(data.get("assignments") or {})

    def open(self, study: Any, analysis: Any = None) -> Review:
        """Restore this study's review, or start one from ``analysis`` and save it at once."""
        identity = study_identity(study)
        review = self.load(identity)
        if review is None:
            review = review_from_analysis(analysis, study, identity)
            try:
                self.save(review)
            except ReviewConflictError:
                # Another viewer created it between our look and our save: theirs is the review.
                said = self.warnings
                review = self.load(identity) or review
                self.warnings = said + self.warnings
        return review
