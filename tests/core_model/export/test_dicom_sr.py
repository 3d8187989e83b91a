"""DICOM SR (TID 1500): written beside the SEG, read back by highdicom/pydicom with the same measurements and references."""

from __future__ import annotations

import highdicom as hd
import numpy as np
import pydicom
import pytest

from core_model.export.bundle import export_ai_report
from core_model.export.dicom_sr import export_dicom_sr, read_sr_findings
from core_model.export.pdf import report_content
from core_model.imaging.geometry import max_diameter, polygon_area
from core_model.imaging.location import locate_review
from core_model.io import load_study
from core_model.review.model import (AddFinding, Link, MoveVertex, ReviewSession, SetDescriptor, accept,
                                     reject, review_from_analysis, with_study_spacing)
from core_model.review.store import study_identity
from review_export_helpers import analysis_from_masks


def test_sr_round_trip_gives_back_measurements_references_location_and_decisions(dicom_review, tmp_path):
    study, review = dicom_review
    s = ReviewSession(review)
    s.do(accept("F1"))
    s.do(MoveVertex("F2", 0, (review.findings["F2"].polygon[0][0] + 5, review.findings["F2"].polygon[0][1] + 3)))
    s.do(Link("F1", "F2"))
    s.do(AddFinding("L_CC", [(200, 200), (230, 200), (215, 240)]))
    s.do(reject("F3"))
    review.reader = "Reader^Test"
    out = export_dicom_sr(review, study, tmp_path / "sr.dcm")
    assert out.written == tmp_path / "sr.dcm" and out.skipped == []

    ds = pydicom.dcmread(out.written)
    src_cc = pydicom.dcmread(study.get("L_CC", "rc").source, stop_before_pixels=True)
    assert ds.Modality == "SR" and ds.PatientID == "P12" and ds.StudyInstanceUID == src_cc.StudyInstanceUID
    assert "not for clinical use" in ds.SeriesDescription
    assert ds.ConceptNameCodeSequence[0].CodeMeaning == "Imaging Measurement Report"
    assert ds.ContentTemplateSequence[0].TemplateIdentifier == "1500"
    assert len(hd.sr.srread(out.written).content.get_planar_roi_measurement_groups()) == 3

    back = {f["tracking_id"].split("(")[-1].rstrip(")"): f for f in read_sr_findings(out.written)}
    assert sorted(back) == ["F1", "F2", "F3"]
    locations = locate_review(review, study)
    for fid, got in back.items():
        f = review.findings[fid]
        src = pydicom.dcmread(study.get(f.key, "rc").source, stop_before_pixels=True)
        assert got["source_sop_instance_uid"] == src.SOPInstanceUID  # the region is on the image it was drawn on
        assert got["laterality"] == "Left" and got["finding_type"] == "Lesion"
        assert np.allclose(got["polygon"], f.polygon, atol=1e-3)
        m = got["measurements"]
        assert m["Diameter"] == (pytest.approx(max_diameter(f.polygon, (0.1, 0.1)), abs=0.01), "mm")
        assert m["Area"] == (pytest.approx(polygon_area(f.polygon, (0.1, 0.1)), abs=0.01), "mm2")
        assert m["Distance from nipple"] == (pytest.approx(locations[fid]["nipple_distance_mm"]), "mm")
        depth = got["evaluations"]["Depth"].split()[0].lower()
        assert depth == locations[fid]["depth"]
    assert back["F1"]["evaluations"]["Reader decision"] == "Accepted"
    assert back["F2"]["evaluations"]["Reader decision"] == "Edited"
    assert back["F3"]["evaluations"]["Reader decision"] == "Rejected"
    assert back["F3"]["evaluations"]["Contour origin"] == "Drawn by the reader"
    # the linked pair: one tracking UID, a clock face and a quadrant from CC + MLO; the unlinked one has none
    assert back["F1"]["tracking_uid"] == back["F2"]["tracking_uid"] != back["F3"]["tracking_uid"]
    hour = locations["F1"]["clock"]
    assert back["F1"]["evaluations"]["Clockface or region"] == f"{int(hour + 0.5) % 12 or 12} o'clock position"
    assert back["F1"]["evaluations"]["Quadrant location"].lower().startswith(locations["F1"]["quadrant"])
    assert "Clockface or region" not in back["F3"]["evaluations"]
    # the AI score with the model that made it as the algorithm; the reader's own contour has none
    score, unit = back["F1"]["measurements"]["AI lesion score"]
    assert score == pytest.approx(0.8) and unit == "1"
    algo = back["F1"]["algorithms"]["AI lesion score"]
    assert algo == {"name": "nafv_seg_test", "version": "c0ffee" * 10 + "abcd"}
    assert "AI lesion score" not in back["F3"]["measurements"]


def test_nafv_analyze_report_bundle_writes_the_sr_beside_the_seg(dicom_study_dir, cdd_test_dir, tmp_path):
    study = load_study(dicom_study_dir)
    analysis = analysis_from_masks(study, cdd_test_dir / "masks")
    bundle = export_ai_report(analysis, study, tmp_path / "out")
    assert bundle.sr.written.parent == tmp_path / "out" and bundle.sr.written.name.startswith("P12_")
    assert bundle.sr.written.name == bundle.pdf.name.replace("_report.pdf", "_report_sr.dcm")  # named as the PDF
    assert f"wrote {bundle.sr.written}" in bundle.messages()
    found = read_sr_findings(bundle.sr.written)
    assert [f["evaluations"]["Reader decision"] for f in found] == ["Not reviewed", "Not reviewed"]
    seg_src = {pydicom.dcmread(p).ReferencedSeriesSequence[0].ReferencedInstanceSequence[0].ReferencedSOPInstanceUID
               for p in bundle.seg.written.values()}
    assert {f["source_sop_instance_uid"] for f in found} == seg_src  # SR and SEG reference the same images
    anon = export_ai_report(analysis, study, tmp_path / "anon", deidentify=True)
    assert anon.sr.written is None and any(m.startswith("DICOM SR: not written") for m in anon.messages())


def test_sr_skips_views_that_are_not_dicom(demo_dir, tmp_path):
    study = load_study(demo_dir)
    review = review_from_analysis(analysis_from_masks(study, demo_dir.parent / "demo_masks"), study, study_identity(study))
    out = export_dicom_sr(review, study, tmp_path / "sr.dcm", include_proposed=True)
    assert out.written is None and not (tmp_path / "sr.dcm").exists()
    assert out.skipped and all("not DICOM" in m for m in out.skipped)


def _accept_all(review):
    # the report's findings table lists the lesions a reader confirmed
    s = ReviewSession(review)
    for fid in list(review.findings):
        s.do(accept(fid))
    return review


def test_report_sizes_in_mm_with_spacing_and_in_pixels_only_without(dicom_review, demo_dir):
    study, review = dicom_review
    _accept_all(review)
    rows = report_content(review, locations=locate_review(review, study))["findings"][1:]
    # columns: #, breast and view, location, size, descriptors, reader's call, AI score
    assert rows and all(" mm, " in r[3] and "from nipple" in r[2] for r in rows)
    assert not any("px" in r[3] for r in rows)
    # a review saved without the spacing its study carries is measured with the study's spacing
    review.images = {k: {**v, "pixel_spacing_mm": None} for k, v in review.images.items()}
    assert all("no spacing in the file" in r[3] for r in report_content(review)["findings"][1:])
    fixed = with_study_spacing(review, study)
    assert all(" mm, " in r[3] for r in report_content(fixed)["findings"][1:])
    assert review.pixel_spacing("L_CC") is None  # the review itself is left as it was
    demo = load_study(demo_dir)  # JPEGs: truly no spacing
    plain = _accept_all(review_from_analysis(analysis_from_masks(demo, demo_dir.parent / "demo_masks"), demo,
                                             study_identity(demo)))
    texts = [r[3] for r in report_content(plain, locations=locate_review(plain, demo))["findings"][1:]]
    assert texts and all("px (in pixels, no spacing in the file)" in t for t in texts)


def test_sr_carries_the_lexicon_terms_the_finding_type_takes(dicom_review, tmp_path):
    study, review = dicom_review
    s = ReviewSession(review)
    s.do(Link("F1", "F2"))
    s.do(SetDescriptor("F1", "type", "calcifications"))
    s.do(SetDescriptor("F1", "morphology", "amorphous"))
    s.do(SetDescriptor("F1", "distribution", "grouped"))
    s.do(accept("F1"))
    s.do(accept("F2"))
    s.do(AddFinding("L_CC", [(200, 200), (230, 200), (215, 240)]))  # F3, drawn by the reader, no terms
    review.findings["F2"].descriptors["margin"] = "spiculated"  # an older review's term: not a calcification's
    out = export_dicom_sr(review, study, tmp_path / "sr.dcm")
    back = {f["tracking_id"].split("(")[-1].rstrip(")"): f["evaluations"] for f in read_sr_findings(out.written)}
    for fid in ("F1", "F2"):
        assert back[fid]["Finding type"] == "calcifications"
        assert back[fid]["Calcification morphology"] == "amorphous" and back[fid]["Distribution"] == "grouped"
    assert "Mass margin" not in back["F2"]  # a coded report does not contradict its own finding type
    assert "Finding type" not in back["F3"]  # nothing recorded, nothing reported


def test_every_lexicon_field_has_a_concept_in_the_report():
    from core_model.export.dicom_sr import LEXICON_CONCEPTS, lexicon_evaluations
    from core_model.review.lexicon import DESCRIPTORS, FIELDS

    assert set(LEXICON_CONCEPTS) == set(FIELDS)
    for kind, fields in DESCRIPTORS.items():
        terms = {"type": kind, **{n: ts[0] for n, ts in fields.items()}}
        items = lexicon_evaluations(terms)
        assert [i.name.meaning for i in items] == [LEXICON_CONCEPTS[n][1] for n in FIELDS if n in terms]
