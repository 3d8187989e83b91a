"""Autosave of reviews: one file per study, keyed by study identity, written atomically.

The identity is patient id + study id + a digest of every image's file name,
file size and pixel data, so two studies whose files have the same names but
belong to different patients (or differ in a single pixel) never share a
review. A write is temp file -> fsync -> rename -> fsync of the directory, so
a crash or kill at any moment leaves either the previous complete file or the
new complete file, never a torn one.

Location: ``$NAFV_DATA_DIR/reviews`` when that variable is set (tests), else
the platform's per-user data directory (``~/.local/share/nafv-viewer`` on
Linux, ``~/Library/Application Support/nafv-viewer`` on macOS,
``%APPDATA%\\nafv-viewer`` on Windows).
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import sys
from pathlib import Path
from typing import Any

from core_model.errors import NafvError
from core_model.review import Review, review_from_analysis

APP_DIR_NAME = "nafv-viewer"


class ReviewStoreError(NafvError):
    """A review file could not be written or read back."""


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


def study_identity(study: Any) -> dict[str, str]:
    """patient id, study id, and a sha256 over (slot, file name, size, pixel digest) of every image."""
    h = hashlib.sha256()
    h.update(f"{study.patient_id}\0{study.study_id}\0".encode())
    for (key, energy) in sorted(study.images):
        img = study.images[(key, energy)]
        src = Path(img.source)
        try:
            size = src.stat().st_size
        except OSError:
            size = -1  # generated study: the pixel digest still tells studies apart
        px = img.pixels
        pix = hashlib.sha256(px.tobytes() if px.flags.c_contiguous else px.copy(order="C").tobytes()).hexdigest()
        h.update(f"{key}\0{energy}\0{src.name}\0{size}\0{px.shape}\0{px.dtype.str}\0{pix}\n".encode())
    digest = h.hexdigest()
    safe = lambda s: re.sub(r"[^A-Za-z0-9._-]+", "-", str(s)).strip("-.")[:40] or "x"  # noqa: E731
    return {
        "patient_id": str(study.patient_id),
        "study_id": str(study.study_id),
        "digest": digest,
        "key": f"{safe(study.patient_id)}_{safe(study.study_id)}_{digest[:16]}",
    }


def atomic_write_bytes(path: Path, data: bytes) -> None:
    """Write ``data`` to ``path`` so readers only ever see the old or the new content."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    try:
        try:
            view = memoryview(data)
            while view:
                n = os.write(fd, view)
                view = view[n:]
            os.fsync(fd)  # the bytes are on disk before the name points at them
        finally:
            os.close(fd)
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    if hasattr(os, "O_DIRECTORY"):  # the rename itself is durable once the directory is synced
        dfd = os.open(path.parent, os.O_RDONLY | os.O_DIRECTORY)
        try:
            os.fsync(dfd)
        finally:
            os.close(dfd)


def atomic_write_json(path: Path, obj: Any) -> None:
    atomic_write_bytes(path, (json.dumps(obj, indent=1, ensure_ascii=False) + "\n").encode("utf-8"))


def _writer_alive(tmp: Path) -> bool:
    """True when the process named in a temp file's name still runs (it may be writing right now)."""
    try:
        pid = int(tmp.name.rsplit(".", 2)[-2])
    except (ValueError, IndexError):
        return False
    if pid == os.getpid():
        return False  # our own leftover from a failed write
    if sys.platform == "win32":
        return True  # os.kill(pid, 0) would terminate it there; a stale temp file is harmless
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except (PermissionError, OSError):
        return True
    return True


class ReviewStore:
    """Saves and restores reviews under ``root`` (default ``data_dir()/reviews``)."""

    def __init__(self, root: str | Path | None = None):
        self.root = Path(root) if root is not None else data_dir() / "reviews"

    def path_for(self, identity: dict[str, str]) -> Path:
        return self.root / f"{identity['key']}.review.json"

    def save(self, review: Review) -> Path:
        path = self.path_for(review.identity)
        try:
            atomic_write_json(path, review.to_dict())
        except OSError as exc:
            raise ReviewStoreError(f"the review could not be saved ({exc.strerror or exc}); the last change was undone", path) from None
        return path

    def load(self, identity: dict[str, str]) -> Review | None:
        """The saved review of this study, or None when there is none yet."""
        path = self.path_for(identity)
        # Temp files of a writer killed before its rename hold nothing the review lacks.
        for stale in path.parent.glob(f".{path.name}.*.tmp"):
            if not _writer_alive(stale):
                stale.unlink(missing_ok=True)
        if not path.is_file():
            return None
        try:
            review = Review.from_dict(json.loads(path.read_text(encoding="utf-8")))
        except (OSError, ValueError, KeyError, TypeError) as exc:
            raise ReviewStoreError(f"the saved review of this study cannot be read ({exc}); it was left untouched", path) from None
        stored = review.identity
        if any(stored.get(k) != identity.get(k) for k in ("patient_id", "study_id", "digest")):
            raise ReviewStoreError("the saved review belongs to a different study; it was left untouched", path)
        return review

    def open(self, study: Any, analysis: Any = None) -> Review:
        """Restore this study's review, or start one from ``analysis`` and save it at once."""
        identity = study_identity(study)
        review = self.load(identity)
        if review is None:
            review = review_from_analysis(analysis, study, identity)
            self.save(review)
        return review
