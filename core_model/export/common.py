"""What every export of a review shares: identifiers (or their pseudonym), notice, sizes."""

from __future__ import annotations

import datetime as _dt
from typing import Any

from pathlib import Path

from core_model import __version__
from core_model.domain.errors import NafvError
from core_model.domain.notice import NOT_FOR_CLINICAL_USE
from core_model.domain.study import file_safe_id
from core_model.review.model import Finding, Review, finding_size_mm

SOFTWARE = f"NaFV Viewer {__version__}"


def shown_ids(review: Review, deidentify: bool) -> tuple[str, str]:
    """(patient id, study id) as printed; a de-identified export shows a stable pseudonym instead.

    The pseudonym comes from the study digest (pixel data), so it
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


def _metric_value(value: Any) -> str | None:
    if isinstance(value, bool) or value is None:
        return None
    if isinstance(value, float):
        return f"{value:.3f}"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, str) and len(value) <= 120:
        return value
    if isinstance(value, (list, tuple)) and len(value) == 2 and all(isinstance(v, (int, float)) for v in value):
        return f"[{value[0]:.3f}, {value[1]:.3f}]"
    return None


def metrics_text(metrics: Any, limit: int = 8) -> str:
    """The model card's validation metrics in one short line ("val_dice 0.537, ..."), or ''."""
    if not isinstance(metrics, dict):
        return ""
    parts = []
    for key, value in metrics.items():
        shown = _metric_value(value)
        if shown is not None and "definition" not in key:
            parts.append(f"{key} {shown}")
        if len(parts) >= limit:
            break
    return ", ".join(parts)


def model_lines(review: Review) -> list[str]:
    """One line per model that contributed: name, weights digest, training data, card status and validation metrics."""
    out = []
    for role, m in review.ai.get("models", {}).items():
        sha = str(m.get("weights_sha256", ""))
        sha = sha[:16] + "…" if len(sha) > 16 else sha
        line = f"{role}: {m.get('name', m.get('architecture', '?'))} (weights sha256 {sha}, trained on {m.get('trained_on', 'unknown')})"
        line += f"; status: {m.get('status') or 'not stated on the model card'}"
        shown = metrics_text(m.get("metrics"))
        line += f"; validation: {shown}" if shown else "; validation: no metrics on the model card"
        out.append(line)
    return out


class ExportExistsError(NafvError):
    """An export would replace a file that is already there (perhaps another patient's report)."""


def export_stem(review: Review, deidentify: bool) -> str:
    """The start of every export's file name: patient and study, so reports of two studies never share a name.

    A de-identified export uses the pseudonym, never the patient id.
    """
    pid, sid = shown_ids(review, deidentify)
    if deidentify:
        return file_safe_id(pid, 40)
    return f"{file_safe_id(pid or 'patient', 40)}_{file_safe_id(sid or 'study', 40)}"


def refuse_overwrite(paths: list[Path] | tuple[Path, ...], overwrite: bool) -> None:
    """Raise :class:`ExportExistsError` naming the first of ``paths`` that exists, unless ``overwrite``."""
    if overwrite:
        return
    for p in paths:
        p = Path(p)
        if p.exists():
            raise ExportExistsError(f"{p.name} already exists in {p.parent}: nothing was written. "
                                    "Choose another folder or name, or allow overwriting it")


def _dicom_date(v: Any) -> str:
    v = str(v or "").strip()
    return f"{v[:4]}-{v[4:6]}-{v[6:8]}" if len(v) >= 8 and v[:8].isdigit() else ""


def _age(header: Any, study_date: str) -> str:
    age = str(getattr(header, "PatientAge", "") or "").strip().upper()  # "052Y", "011M"
    if len(age) == 4 and age[:3].isdigit() and age[3] in "YMWD":
        n, unit = int(age[:3]), {"Y": "years", "M": "months", "W": "weeks", "D": "days"}[age[3]]
        return f"{n} {unit}"
    birth = _dicom_date(getattr(header, "PatientBirthDate", ""))
    if birth and study_date:
        y0, m0, d0 = (int(x) for x in birth.split("-"))
        y1, m1, d1 = (int(x) for x in study_date.split("-"))
        return f"{y1 - y0 - ((m1, d1) < (m0, d0))} years"
    return ""


def study_facts(study: Any, deidentify: bool = False) -> dict[str, str]:
    """What the files say about the examination: study date, patient age, indication, technique.

    Read from the first DICOM header of the study (without the pixels); '' where
    the files do not say (JPEG/PNG collections carry none of it). A de-identified
    report leaves the study date out and keeps only the age.
    """
    facts = {"study_date": "", "age": "", "indication": "", "technique": ""}
    if study is None:
        return facts
    views = sorted({k for k, _ in study.images})
    energies = sorted({e for _, e in study.images})
    words = {"le": "low-energy", "rc": "recombined"}
    facts["technique"] = ("Contrast-enhanced mammography, " + " and ".join(words.get(e, e) for e in energies)
                          + " images; views " + ", ".join(v.replace("_", "-") for v in views))
    sources = [img.source for img in study.images.values() if str(img.source).lower().endswith((".dcm", ".dicom"))]
    if not sources:
        return facts
    try:
        import pydicom

        h = pydicom.dcmread(str(sources[0]), stop_before_pixels=True)
    except Exception:  # noqa: BLE001 - an unreadable header only leaves the facts out
        return facts
    date = _dicom_date(getattr(h, "StudyDate", ""))
    facts["age"] = _age(h, date)
    facts["study_date"] = "" if deidentify else date
    for tag in ("ReasonForTheRequestedProcedure", "ReasonForStudy", "RequestedProcedureDescription"):
        v = str(getattr(h, tag, "") or "").strip()
        if v:
            facts["indication"] = v
            break
    desc = str(getattr(h, "StudyDescription", "") or "").strip()
    if desc and not deidentify:
        facts["technique"] = f"{desc}. " + facts["technique"]
    return facts
