"""JSON export of a whole review: every finding (all states), links, assessment, AI output, sizes.

The file is the review's own format (``Review.to_dict``) plus an ``export``
block (date, software, notice), each finding's size in mm when the view's
pixel spacing is known, and, where an older review stored lexicon terms the
finding's type does not take, those terms named under
``descriptors_not_for_type``, so another tool can read it without this package.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from core_model.export.common import SOFTWARE, notice, now_utc, refuse_overwrite, shown_ids, size_dict
from core_model.io.atomic import write_text
from core_model.io.jsonsafe import dumps
from core_model.review.lexicon import stray_terms
from core_model.review.model import Review
from core_model.review.store import PRIVATE


def review_json(review: Review, *, deidentify: bool = False) -> dict[str, Any]:
    d = review.to_dict()
    if deidentify:
        pid, sid = shown_ids(review, True)
        d["identity"] = {"patient_id": pid, "study_id": sid, "digest": review.identity.get("digest", ""), "deidentified": True}
        d["ai"].pop("warnings", None)  # load warnings name source files, which may carry identifiers
    for fd in d["findings"]:
        fd["size"] = size_dict(review, review.findings[fd["id"]])
        stray = stray_terms(fd["descriptors"])
        if stray:  # terms an older review stored that the finding's type does not take (kept, as recorded)
            fd["descriptors_not_for_type"] = stray
    d["export"] = {
        "exported_at": now_utc(),
        "software": SOFTWARE,
        "coordinates": "polygon points are (x, y) = (column, row) in pixels of the view's original image",
        "notice": notice(review),
        "deidentified": deidentify,
    }
    return d


def export_review_json(review: Review, path: str | Path, *, deidentify: bool = False, overwrite: bool = False) -> Path:
    """Write the JSON; an existing file is replaced only with ``overwrite`` (else ExportExistsError)."""
    path = Path(path)
    refuse_overwrite([path], overwrite)
    # strict JSON: another tool reads this file, and NaN is not JSON (a NaN score becomes null)
    text = dumps(review_json(review, deidentify=deidentify), indent=1, ensure_ascii=False) + "\n"
    write_text(path, text, mode=PRIVATE)
    return path
