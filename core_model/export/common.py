"""What every export of a review shares: identifiers (or their pseudonym), notice, sizes."""

from __future__ import annotations

import datetime as _dt
from typing import Any

from core_model import __version__
from core_model.checkpoint import NOT_FOR_CLINICAL_USE
from core_model.review import Finding, Review, finding_size_mm

SOFTWARE = f"NaFV Viewer {__version__}"


def shown_ids(review: Review, deidentify: bool) -> tuple[str, str]:
    """(patient id, study id) as printed; a de-identified export shows a stable pseudonym instead.

    The pseudonym comes from the study digest (pixel data and file sizes), so it
    is the same for every export of one study and reveals nothing about the name.
    """
    if not deidentify:
        return review.identity.get("patient_id", ""), review.identity.get("study_id", "")
    tag = review.identity.get("digest", "")[:10] or "unknown"
    return f"ANON-{tag}", f"ANON-{tag}"


def notice(review: Review) -> str | None:
    """The not-for-clinical-use notice when any contributing model is unvalidated (or none ran)."""
    if not review.not_for_clinical_use:
        return None
    for m in review.ai.get("models", {}).values():
        if m.get("notice"):
            return str(m["notice"])
    return NOT_FOR_CLINICAL_USE


def size_dict(review: Review, f: Finding) -> dict[str, float] | None:
    size = finding_size_mm(review, f)
    if size is None:
        return None
    return {"max_diameter_mm": round(size[0], 2), "area_mm2": round(size[1], 2)}


def now_utc() -> str:
    return _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds")


def model_lines(review: Review) -> list[str]:
    """One line per model that contributed: name, weights digest, training data."""
    out = []
    for role, m in review.ai.get("models", {}).items():
        sha = str(m.get("weights_sha256", ""))
        sha = sha[:16] + "…" if len(sha) > 16 else sha
        out.append(f"{role}: {m.get('name', m.get('architecture', '?'))} (weights sha256 {sha}, trained on {m.get('trained_on', 'unknown')})")
    return out


def ai_summary(review: Review) -> dict[str, Any]:
    return {
        "ran": bool(review.ai.get("ran", False)),
        "affected_side": review.ai.get("affected_side"),
        "malignancy_probability": review.ai.get("malignancy_probability"),
        "classifier_mode": review.ai.get("classifier_mode"),
    }
