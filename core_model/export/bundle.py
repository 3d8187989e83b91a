"""Batch export straight from the AI output: the PDF, JSON, DICOM SEG and DICOM SR of an unreviewed study.

For ``nafv-analyze ... --report``: no reader has looked, so every AI contour
is a *proposal* and the exports say so (dotted in the PDF, AUTOMATIC segments
in the SEG, state "proposed" in the JSON). The same writers as the reviewed
exports are used, so a batch report and a reviewed one differ only in that.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from core_model.export.common import export_stem
from core_model.export.dicom_seg import SegExport, export_dicom_seg
from core_model.export.dicom_sr import SrExport, export_dicom_sr
from core_model.export.pdf import export_pdf, heatmaps_from
from core_model.export.review_json import export_review_json
from core_model.review.model import Review, review_from_analysis, with_study_spacing
from core_model.review.store import safe_name, study_identity


@dataclass
class ReportBundle:
    pdf: Path
    json: Path
    seg: SegExport = field(default_factory=SegExport)
    sr: SrExport = field(default_factory=SrExport)

    def messages(self) -> list[str]:
        """Lines for a CLI or a dialog: what was written and what was not, and why."""
        out = [f"wrote {self.pdf}", f"wrote {self.json}"]
        out += [f"wrote {p}" for p in self.seg.written.values()]
        out += [f"DICOM SEG: {m}" for m in self.seg.skipped]
        out += [f"wrote {self.sr.written}"] if self.sr.written is not None else []
        out += [f"DICOM SR: {m}" for m in self.sr.skipped]
        return out


def export_ai_report(
    analysis: Any,
    study: Any,
    out_dir: str | Path,
    *,
    review: Review | None = None,
    deidentify: bool = False,
    heatmaps: bool = True,
    stem: str | None = None,
) -> ReportBundle:
    """Write ``<stem>.pdf``, ``<stem>.json`` and ``<VIEW>_seg.dcm`` files into ``out_dir``.

    ``review`` defaults to a fresh one made from ``analysis`` (all proposals);
    pass the reader's saved review to export that instead (its unreviewed
    proposals are still drawn, dotted). ``deidentify`` applies to the PDF and
    JSON and skips the SEG (said in :meth:`ReportBundle.messages`): a SEG
    carries its source images' patient identity, which is what lets an archive
    attach it to them. The patient and study ids in file names are sanitised.
    """
    out_dir = Path(out_dir)
    review = review or review_from_analysis(analysis, study, study_identity(study))
    stem = stem or ("report" if deidentify else f"{export_stem(review, False)}_report")
    heat = heatmaps_from(analysis) if (heatmaps and analysis is not None) else None
    pdf = export_pdf(review, study, out_dir / f"{stem}.pdf", deidentify=deidentify, heatmaps=heat or None, include_proposed=True)
    js = export_review_json(review, out_dir / f"{stem}.json", deidentify=deidentify)
    if deidentify:
        seg = SegExport(skipped=["not written: a DICOM SEG must carry the patient's identity to attach to the "
                                 "images, and this report was de-identified"])
        sr = SrExport(skipped=["not written: a DICOM SR must carry the patient's identity to attach to the "
                               "images, and this report was de-identified"])
    else:
        seg = export_dicom_seg(review, study, out_dir / f"{stem}_seg", include_proposed=True)
        sr = export_dicom_sr(with_study_spacing(review, study), study, out_dir / f"{stem}_sr.dcm", include_proposed=True)
    return ReportBundle(pdf=pdf, json=js, seg=seg, sr=sr)
