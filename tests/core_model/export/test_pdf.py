"""PDF report: content rows (ids, sizes in mm, states, AI beside reader), a valid one-page PDF, contours drawn."""

from __future__ import annotations

import re
import shutil
import subprocess

import numpy as np
import pytest
from PIL import Image

from core_model.export.pdf import export_pdf, report_content
from core_model.imaging.geometry import max_diameter, polygon_area
from core_model.review.model import (
    AddFinding,
    Link,
    MoveVertex,
    ReviewSession,
    SetAssessment,
    SetDescriptor,
    SetReader,
    accept,
    reject,
)

HAVE_POPPLER = shutil.which("pdftoppm") is not None and shutil.which("pdftotext") is not None


def _reviewed(dicom_review):
    study, review = dicom_review
    s = ReviewSession(review)
    s.do(accept("F1"))
    s.do(MoveVertex("F2", 0, (review.findings["F2"].polygon[0][0] + 5, review.findings["F2"].polygon[0][1])))
    s.do(Link("F1", "F2"))
    s.do(AddFinding("L_CC", [(60, 60), (90, 62), (80, 95)]))
    s.do(reject("F3"))
    s.do(SetAssessment("L", "birads", "4C"))
    s.do(SetAssessment("L", "density", "b"))
    s.do(SetAssessment("L", "text", "Irregular enhancing mass with non-mass enhancement."))
    s.do(SetAssessment("L", "bpe", "mild"))
    s.do(SetDescriptor("F1", "type", "mass"))
    s.do(SetDescriptor("F1", "shape", "irregular"))
    s.do(SetDescriptor("F1", "margin", "spiculated"))
    s.do(SetDescriptor("F1", "internal_enhancement", "heterogeneous"))
    s.do(SetReader("Dr. Ünal"))
    return study, review


def _pages(pdf: bytes) -> int:
    return len(re.findall(rb"/Type /Page[^s]", pdf))


def test_report_of_a_phantom_says_synthetic(dicom_review):
    study, review = dicom_review
    assert "SYNTHETIC" not in str(report_content(review)["identity"])  # real images
    review.identity["synthetic"] = True  # what study_identity records for a phantom study
    study_row = report_content(review)["identity"][1]
    assert study_row[0] == "Study" and "SYNTHETIC phantom, not patient data" in study_row[1]


def test_report_content_rows(dicom_review):
    study, review = _reviewed(dicom_review)
    c = report_content(review)
    assert c["identity"][0][:2] == ["Patient ID", "P12"] and c["identity"][2][1] == "Dr. Ünal"
    assert "not for clinical use" in c["notice"]
    assert "nafv_seg_test" in c["models"][0] and "c0ffeec0ffeec0ff…" in c["models"][0]
    # the fixture's card states neither: the report says so rather than staying silent
    assert "status: not stated on the model card" in c["models"][0]
    assert "validation: no metrics on the model card" in c["models"][0]
    # one row per lesion: F1 (accepted) and F2 (edited) are linked, so they are one lesion
    rows = {r[0]: r for r in c["findings"][1:]}
    f1, f2 = review.findings["F1"], review.findings["F2"]
    d1, a1 = 0.1 * max_diameter(f1.polygon), 0.01 * polygon_area(f1.polygon)
    d2, a2 = 0.1 * max_diameter(f2.polygon), 0.01 * polygon_area(f2.polygon)
    assert rows["F1 + F2"] == ["F1 + F2", "left CC + MLO", "—",
                               f"CC {d1:.1f} mm, {a1:.0f} mm²; MLO {d2:.1f} mm, {a2:.0f} mm²",
                               "mass, irregular shape, spiculated margin, heterogeneous internal enhancement",
                               "AI contour accepted; AI contour edited", "0.80 / " + f"{f2.ai_score:.2f}"]
    assert "F3" not in str(c["findings"])  # drawn, then withdrawn by the reader
    assert c["assessment"][0] == ["Breast", "BI-RADS (reader)", "Recommendation", "Composition, BPE", "AI classifier score"]
    assert c["assessment"][1] == ["right", "not given", "—", "not given; BPE not given",
                                  "— (scored for the affected breast only)"]
    # AI beside the reader's call, labelled as a score, never as a probability of cancer; BI-RADS with its name
    assert c["assessment"][2] == ["left", "4C — Suspicious (high suspicion for malignancy)", "Tissue diagnosis",
                                  "ACR B — scattered areas of fibroglandular density; BPE mild",
                                  "0.64: uncalibrated model score, not a probability of cancer, dual-view"]
    assert c["impression"] == ("BI-RADS 4C — Suspicious (high suspicion for malignancy). "
                               "Recommendation: Tissue diagnosis.")
    assert c["reviewed"] and c["signoff"] == "" and c["dismissed"] == [c["dismissed"][0]]
    assert c["notes"] == [("Left", "Irregular enhancing mass with non-mass enhancement.")]
    anon = report_content(review, deidentify=True)
    assert anon["patient_id"].startswith("ANON-") and "P12" not in str(anon["identity"])


def test_report_says_who_chose_the_affected_breast_and_carries_the_ai_notes(dicom_review, tmp_path):
    study, review = _reviewed(dicom_review)
    review.ai.update(affected_side="L", affected_side_source="segmentation",
                     warnings=["lesions were outlined in both breasts; the model score is for the left breast only"])
    c = report_content(review)
    assert c["ai_side_text"].startswith("The AI took the left breast as the affected one (decided from the segmentation).")
    assert c["ai_notes"] == ["lesions were outlined in both breasts; the model score is for the left breast only"]
    review.ai.update(affected_side_source="caller", warnings=[])
    c = report_content(review)
    assert c["ai_side_text"].startswith("The affected breast was set explicitly (left), not decided from the images")
    assert "The AI took" not in c["ai_side_text"] and c["ai_notes"] == []
    review.ai.update(affected_side_source="segmentation", warnings=["the <b>other</b> breast"])
    path = export_pdf(review, study, tmp_path / "notes.pdf")
    if not HAVE_POPPLER:
        pytest.skip("poppler-utils (pdftoppm/pdftotext) not installed: rendering checks skipped")
    text = " ".join(subprocess.run(["pdftotext", str(path), "-"], capture_output=True, text=True, check=True).stdout.split())
    assert "AI analysis notes: The <b>other</b> breast." in text  # printed as written, never read as markup
    assert "The AI took the left breast as the affected one" in text


def test_pdf_is_a_page_and_an_appendix_and_draws_the_confirmed_contours_in_the_viewers_colours(dicom_review, tmp_path):
    study, review = _reviewed(dicom_review)
    path = export_pdf(review, study, tmp_path / "report.pdf")
    pdf = path.read_bytes()
    assert pdf.startswith(b"%PDF-") and pdf.rstrip().endswith(b"%%EOF") and _pages(pdf) == 2
    assert not list(tmp_path.glob(".*.tmp"))
    if not HAVE_POPPLER:
        pytest.skip("poppler-utils (pdftoppm/pdftotext) not installed: rendering checks skipped")
    pages = subprocess.run(["pdftotext", "-layout", str(path), "-"], capture_output=True, text=True, check=True).stdout.split("\f")
    page1, appendix = pages[0], pages[1]
    for needle in ("P12", "Dr. Ünal", "4C — Suspicious", "Tissue diagnosis", "0.64: uncalibrated", "edited",
                   "Key images", "Impression", "Not finalised"):
        assert needle in page1, needle
    # model identity and validation figures are in the appendix, not before the clinical content
    assert "status: not stated" in appendix and "status: not stated" not in page1 and "sha256" not in page1
    for page in pages[:2]:  # the notice in the header and the footer of every page
        assert page.lower().count("not for clinical use") >= 2
    assert "choose" not in " ".join(pages).lower()  # no software instruction in a report
    # the same review with every finding back to proposed draws no contour on page 1; the reviewed one
    # draws its accepted contour in the viewer's green (nafv_viewer.widgets.review_editor.STATE_PENS)
    ACCEPTED_RGB = (60, 220, 90)  # STATE_PENS[ACCEPTED] of the viewer; tests/nafv_viewer checks that they agree

    for fid in list(review.findings):
        review.findings[fid].state = "proposed"
    bare = export_pdf(review, study, tmp_path / "bare.pdf")
    green = []
    for p in (path, bare):
        subprocess.run(["pdftoppm", "-r", "60", "-png", "-singlefile", str(p), str(p.with_suffix(""))], check=True)
        rgb = np.array(Image.open(p.with_suffix(".png")).convert("RGB"), dtype=np.int16)
        green.append(int((np.abs(rgb - np.array(ACCEPTED_RGB)).max(axis=2) < 40).sum()))
    assert green[0] > 30 and green[1] == 0


def test_deidentified_pdf_and_heatmap_option(dicom_review, tmp_path):
    study, review = _reviewed(dicom_review)
    heat = np.zeros(study.get("L_CC", "rc").shape, np.float32)
    heat[100:300, 150:350] = np.linspace(0.3, 1.0, 200)[None, :]  # a Grad-CAM-like ramp
    path = export_pdf(review, study, tmp_path / "anon.pdf", deidentify=True, heatmaps={"L_CC": heat})
    pdf = path.read_bytes()
    assert _pages(pdf) == 2 and b"P12" not in pdf  # not even in the document metadata
    if not HAVE_POPPLER:
        pytest.skip("poppler-utils not installed")
    text = subprocess.run(["pdftotext", str(path), "-"], capture_output=True, text=True, check=True).stdout
    assert "ANON-" in text and "P12" not in text and "Grad-CAM" in text
    plain = export_pdf(review, study, tmp_path / "plain.pdf", deidentify=True)
    colourful = []
    for p in (path, plain):
        # the heatmaps are in the appendix (page 2)
        subprocess.run(["pdftoppm", "-r", "40", "-png", "-f", "2", "-l", "2", "-singlefile", str(p), str(p.with_suffix(""))],
                       check=True)
        rgb = np.array(Image.open(p.with_suffix(".png")).convert("RGB"), dtype=np.int16)
        colourful.append(int((np.abs(rgb[..., 0] - rgb[..., 2]) > 60).sum()))
    # the heat overlay adds colour (contours are coloured in both); without heatmaps the views are grey
    assert colourful[0] > colourful[1] + 150


def test_demo_study_without_pixel_spacing_says_so(demo_dir, tmp_path):
    from core_model.cli.demo_report import stand_in_analysis
    from core_model.io import load_study
    from core_model.review.model import review_from_analysis
    from core_model.review.store import study_identity

    study = load_study(demo_dir)
    review = review_from_analysis(stand_in_analysis(study), study, study_identity(study))
    c = report_content(review)
    # nothing decided by a reader yet: the findings are the AI proposals, said so, and none is "dismissed"
    assert not c["reviewed"] and len(c["findings"]) > 2 and len(c["dismissed"]) == 1
    assert all(r[5] == "not reviewed" for r in c["findings"][1:])
    s = ReviewSession(review)
    s.do(reject(next(iter(review.findings))))
    c = report_content(review)
    assert c["reviewed"] and len(c["dismissed"]) > 2  # once the reader decides, what they did not confirm moves out
    assert [r[4] for r in c["dismissed"][1:]].count("dismissed") == 1
    s.undo()
    s = ReviewSession(review)
    for fid in list(review.findings):
        s.do(accept(fid))
    c = report_content(review)
    assert len(c["findings"]) > 2
    assert all(r[3].endswith(" px (in pixels, no spacing in the file)") and r[6] == "—" for r in c["findings"][1:])
    assert "stand-in" in c["models"][0]
    assert _pages(export_pdf(review, study, tmp_path / "demo.pdf").read_bytes()) == 2


def test_demo_command_end_to_end(tmp_path, monkeypatch, capsys):
    from core_model.cli.demo_report import main

    monkeypatch.setenv("NAFV_DATA_DIR", str(tmp_path / "data"))
    assert main([str(tmp_path / "out")]) == 0
    out = capsys.readouterr().out
    stem = "P66_CDD-CESM-P66"
    assert (tmp_path / "out" / f"{stem}_report.pdf").is_file() and (tmp_path / "out" / f"{stem}_review.json").is_file()
    assert "is not DICOM" in out
    import json

    d = json.loads((tmp_path / "out" / f"{stem}_review.json").read_text())
    assert sorted({f["state"] for f in d["findings"]}) == ["accepted", "edited"]
    # the demo links one CC and one MLO finding per breast (the AI may propose more than one per view)
    sides = {f["key"][0] for f in d["findings"]}
    assert sides and all(any(f["link"] for f in d["findings"] if f["key"][0] == s) for s in sides)
    # run again: the saved review is restored, not redone
    assert main([str(tmp_path / "out2")]) == 0
    assert json.loads((tmp_path / "out2" / f"{stem}_review.json").read_text())["revision"] == d["revision"]
    # the same folder again: refused, nothing replaced, unless --overwrite
    before = (tmp_path / "out" / f"{stem}_report.pdf").read_bytes()
    assert main([str(tmp_path / "out")]) == 2
    assert "already exists" in capsys.readouterr().err
    assert (tmp_path / "out" / f"{stem}_report.pdf").read_bytes() == before
    assert main([str(tmp_path / "out"), "--overwrite"]) == 0


def test_model_block_shows_card_status_and_validation_metrics(dicom_review):
    from core_model.export.common import metrics_text

    study, review = _reviewed(dicom_review)
    review.ai["models"]["classifier"] = {
        "name": "nafv_cls_test", "weights_sha256": "ab" * 32, "trained_on": "phantoms",
        "status": "demo weights: synthetic studies only",
        "metrics": {"evaluation": "5-fold CV", "auc": "0.599 ± 0.061", "pooled_auc": 0.6141,
                    "val_dice_ci95": [0.455, 0.6248], "curve": list(range(50)),
                    "source_resolution_definition": "long text"},
    }
    line = report_content(review)["models"][1]
    assert line.startswith("classifier: nafv_cls_test (weights sha256 abababababababab…, trained on phantoms)")
    assert "status: demo weights: synthetic studies only" in line
    assert "validation: evaluation 5-fold CV, auc 0.599 ± 0.061, pooled_auc 0.614, val_dice_ci95 [0.455, 0.625]" in line
    assert "curve" not in line and "long text" not in line
    assert metrics_text(None) == "" and metrics_text({"a": True}) == ""


def test_very_long_patient_id_is_cut_and_overprints_nothing(dicom_review, tmp_path, monkeypatch):
    # a 300-character PatientID (longer than DICOM allows, but met in the wild)
    from reportlab.lib.pagesizes import A4
    from reportlab.lib.units import mm
    from reportlab.pdfbase.pdfmetrics import stringWidth
    from reportlab.pdfgen.canvas import Canvas

    study, review = dicom_review
    review.identity["patient_id"] = "Q" * 299 + "Z"
    content = report_content(review)
    assert len(content["patient_id"]) <= 64 and content["patient_id"].startswith("Q" * 40)
    assert content["identity"][0][1] == content["patient_id"]

    drawn = []  # (text, page y, left x, right x) of every string drawn directly on the canvas
    for name in ("drawString", "drawRightString", "drawCentredString"):
        def spy(self, x, y, text, *args, _real=getattr(Canvas, name), _name=name, **kw):
            a, b, c, d, e, f = self._currentMatrix
            w = stringWidth(str(text), self._fontname, self._fontsize)
            left = x - {"drawString": 0, "drawRightString": w, "drawCentredString": w / 2}[_name]
            drawn.append((str(text), round(b * x + d * y + f, 1), a * left + e, a * (left + w) + e, self.getPageNumber()))
            return _real(self, x, y, text, *args, **kw)

        monkeypatch.setattr(Canvas, name, spy)
    export_pdf(review, study, tmp_path / "r.pdf")
    assert drawn
    right = A4[0] - 15 * mm
    assert [t for t, _, _, x1, _ in drawn if x1 > right + 0.5] == []  # nothing runs past the margin
    for i, (t1, y1, l1, r1, p1) in enumerate(drawn):  # nor over another string on the same line of the page
        for t2, y2, l2, r2, p2 in drawn[i + 1:]:
            assert not (p1 == p2 and y1 == y2 and l1 < r2 - 0.5 and l2 < r1 - 0.5), (t1[:30], t2[:30])


def test_export_refuses_to_overwrite_an_existing_report(dicom_review, tmp_path):
    from core_model.export.common import ExportExistsError, export_stem
    from core_model.export.review_json import export_review_json

    study, review = _reviewed(dicom_review)
    target = tmp_path / f"{export_stem(review, False)}_report.pdf"
    assert target.name.startswith(review.identity["patient_id"])
    target.write_bytes(b"another patient's report")
    with pytest.raises(ExportExistsError, match="already exists"):
        export_pdf(review, study, target)
    assert target.read_bytes() == b"another patient's report"
    js = tmp_path / "r.json"
    js.write_text("{}")
    with pytest.raises(ExportExistsError):
        export_review_json(review, js)
    assert js.read_text() == "{}"
    assert export_pdf(review, study, target, overwrite=True).read_bytes()[:5] == b"%PDF-"


def test_unreviewed_export_is_titled_as_ai_output_and_a_signed_one_carries_its_addenda(dicom_review, tmp_path):
    from core_model.review.signoff import Finalise, OpenAddendum

    study, review = dicom_review
    if not HAVE_POPPLER:
        pytest.skip("poppler-utils not installed")

    def page1(p):
        return " ".join(subprocess.run(["pdftotext", "-l", "1", str(p), "-"], capture_output=True, text=True,
                                       check=True).stdout.split())

    text = page1(export_pdf(review, study, tmp_path / "ai.pdf"))
    assert "AI output, not reviewed by a reader" in text and "Contrast-enhanced mammography report" not in text
    study, review = _reviewed((study, review))
    s = ReviewSession(review)
    s.do(Finalise("Dr. Ünal"))
    s.do(OpenAddendum("Dr. Ünal", reason="prior study compared"))
    s.do(SetAssessment("L", "birads", "5"))
    s.do(Finalise("Dr. Ünal"))
    text = page1(export_pdf(review, study, tmp_path / "signed.pdf"))
    assert "AI output, not reviewed" not in text and "Contrast-enhanced mammography report" in text
    assert "Finalised by Dr. Ünal on " in text and "1 addendum" in text
    assert "Addendum 1 by Dr. Ünal" in text and "Reason: prior study compared." in text and "set L birads" in text
    assert "5 — Highly suggestive of malignancy" in text


def test_identification_takes_study_date_and_age_from_the_dicom_header(dicom_review, tmp_path):
    import pydicom

    from core_model.export.common import study_facts

    study, review = dicom_review
    first = next(img.source for img in study.images.values())
    ds = pydicom.dcmread(first)
    date = str(ds.StudyDate)
    for img in study.images.values():  # every file of the study says the same
        d = pydicom.dcmread(img.source)
        d.PatientAge = "052Y"
        d.save_as(img.source)
    facts = study_facts(study)
    assert facts["study_date"] == f"{date[:4]}-{date[4:6]}-{date[6:8]}" and facts["age"] == "52 years"
    assert facts["technique"].startswith("Contrast-enhanced mammography") or "Contrast-enhanced mammography" in facts["technique"]
    anon = study_facts(study, deidentify=True)
    assert anon["study_date"] == "" and anon["age"] == "52 years"
    rows = report_content(review, facts=facts)["identity"]
    assert rows[1][2:] == ["Study date", facts["study_date"]] and rows[2][2:] == ["Age", "52 years"]


def test_pdf_prints_calcification_morphology_and_distribution_and_flags_an_older_term(dicom_review, tmp_path):
    study, review = _reviewed(dicom_review)
    s = ReviewSession(review)
    s.do(SetDescriptor("F1", "type", "calcifications"))  # drops the mass terms _reviewed set
    s.do(SetDescriptor("F1", "morphology", "fine pleomorphic"))
    s.do(SetDescriptor("F1", "distribution", "segmental"))
    row = {r[0]: r for r in report_content(review)["findings"][1:]}["F1 + F2"]
    assert row[4] == "calcifications, fine pleomorphic morphology (suspicious), segmental distribution"
    review.findings["F1"].descriptors["shape"] = review.findings["F2"].descriptors["shape"] = "oval"  # older review
    row = {r[0]: r for r in report_content(review)["findings"][1:]}["F1 + F2"]
    assert row[4].endswith("segmental distribution, from an earlier review, not used for calcifications: oval shape")
    path = export_pdf(review, study, tmp_path / "calc.pdf")
    if not HAVE_POPPLER:
        pytest.skip("poppler-utils (pdftoppm/pdftotext) not installed: rendering checks skipped")
    text = " ".join(subprocess.run(["pdftotext", str(path), "-"], capture_output=True, text=True, check=True).stdout.split())
    assert ("calcifications, fine pleomorphic morphology (suspicious), segmental distribution, from an earlier review, "
            "not used for calcifications: oval shape") in text
