"""Batch export from the AI output (for nafv-analyze --report): proposals marked as such in every file."""

from __future__ import annotations

import json
import shutil
import subprocess

import pydicom

from core_model.domain.study import file_safe_id

from core_model.export.bundle import export_ai_report
from core_model.export.pdf import report_content
from core_model.io import load_study
from review_export_helpers import analysis_from_masks


def test_ai_report_on_dicom_study_exports_unreviewed_proposals(dicom_study_dir, cdd_test_dir, tmp_path):
    study = load_study(dicom_study_dir)
    analysis = analysis_from_masks(study, cdd_test_dir / "masks")
    bundle = export_ai_report(analysis, study, tmp_path / "out")
    assert bundle.pdf.name == f"P12_{file_safe_id(study.study_id, 40)}_report.pdf" and bundle.pdf.read_bytes().startswith(b"%PDF-")
    d = json.loads(bundle.json.read_text())
    assert [f["state"] for f in d["findings"]] == ["proposed", "proposed"]
    assert sorted(bundle.seg.written) == ["L_CC", "L_MLO"] and bundle.seg.skipped == []
    ds = pydicom.dcmread(bundle.seg.written["L_CC"])
    assert ds.SegmentSequence[0].SegmentAlgorithmType == "AUTOMATIC"
    assert ds.SeriesDescription == "NaFV AI contours (not all reviewed)"
    assert ds.SegmentSequence[0].SegmentationAlgorithmIdentificationSequence[0].AlgorithmName == "nafv_seg_test"
    assert any(line.startswith("wrote ") and line.endswith("L_MLO_seg.dcm") for line in bundle.messages())


def test_ai_report_on_jpeg_demo_says_why_there_is_no_seg(demo_dir, tmp_path):
    study = load_study(demo_dir)
    analysis = analysis_from_masks(study, demo_dir.parent / "demo_masks")
    bundle = export_ai_report(analysis, study, tmp_path / "plain")
    assert bundle.pdf.name == "P66_CDD-CESM-P66_report.pdf" and bundle.seg.written == {}
    assert sum("is not DICOM" in m for m in bundle.messages()) >= 2
    anon = export_ai_report(analysis, study, tmp_path / "anon", deidentify=True)
    assert anon.pdf.name == "report.pdf" and "P66" not in anon.json.read_text()


def test_deidentified_report_writes_no_seg_and_says_so(dicom_study_dir, cdd_test_dir, tmp_path):
    study = load_study(dicom_study_dir)
    analysis = analysis_from_masks(study, cdd_test_dir / "masks")
    bundle = export_ai_report(analysis, study, tmp_path / "out", deidentify=True)
    assert bundle.seg.written == {}
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == ["report.json", "report.pdf"]
    assert any(m.startswith("DICOM SEG: not written") and "de-identified" in m for m in bundle.messages())
    assert "P12" not in (tmp_path / "out" / "report.json").read_text(encoding="utf-8")
    # the PDF's words and its (uncompressed) document information, not its compressed image bytes,
    # where any three-byte run turns up by chance
    pdf = (tmp_path / "out" / "report.pdf").read_bytes()
    start = pdf.rfind(b"/Producer")
    assert start > 0
    info = pdf[pdf.rfind(b"obj", 0, start):pdf.find(b"endobj", start)]  # the document information object only
    assert b"/Producer" in info and b"P12" not in info
    if shutil.which("pdftotext"):
        text = subprocess.run(["pdftotext", str(tmp_path / "out" / "report.pdf"), "-"], capture_output=True,
                              text=True, check=True).stdout
        assert "P12" not in text and "de-identified" in text.lower()


def test_patient_id_is_sanitised_in_file_names(demo_dir, tmp_path):
    study = load_study(demo_dir)
    study.patient_id = "../../evil/P 66"
    bundle = export_ai_report(analysis_from_masks(study, demo_dir.parent / "demo_masks"), study, tmp_path / "out")
    assert bundle.pdf.parent == tmp_path / "out" and bundle.pdf.name == "evil_P_66_CDD-CESM-P66_report.pdf"
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == ["evil_P_66_CDD-CESM-P66_report.json",
                                                                     "evil_P_66_CDD-CESM-P66_report.pdf"]
