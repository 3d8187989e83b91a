"""JSON export: the whole review, sizes in mm, notice, de-identification."""

from __future__ import annotations

import json

import pytest

from core_model.export.review_json import export_review_json
from core_model.imaging.geometry import max_diameter
from core_model.review.model import MoveVertex, Review, ReviewSession, SetAssessment, SetDescriptor, accept, reject


def test_json_holds_whole_review_with_sizes_and_reads_back(dicom_review, tmp_path):
    study, review = dicom_review
    s = ReviewSession(review)
    s.do(accept("F1"))
    s.do(reject("F2"))
    s.do(MoveVertex("F1", 0, (100.5, 99.25)))
    s.do(SetAssessment("L", "birads", "4A"))
    path = export_review_json(review, tmp_path / "review.json")
    d = json.loads(path.read_text(encoding="utf-8"))
    assert d["identity"]["patient_id"] == "P12"
    assert [(f["id"], f["state"]) for f in d["findings"]] == [("F1", "edited"), ("F2", "rejected")]  # all states kept
    f1 = review.findings["F1"]
    assert d["findings"][0]["size"]["max_diameter_mm"] == pytest.approx(0.1 * max_diameter(f1.polygon), abs=0.01)
    assert d["findings"][0]["polygon"][0] == [100.5, 99.25]
    assert d["ai"]["malignancy_probability"] == pytest.approx(0.64)
    assert d["assessments"]["L"]["birads"] == "4A"
    assert "not for clinical use" in d["export"]["notice"]
    # the export is a superset of the review file: it reads back as the same review
    assert Review.from_dict(d).to_dict() == review.to_dict()


def test_deidentified_json_has_no_patient_or_study_id(dicom_review, tmp_path):
    study, review = dicom_review
    review.ai["warnings"] = ["skipped P12_L_DM_CC_old.dcm"]
    text = export_review_json(review, tmp_path / "anon.json", deidentify=True).read_text()
    d = json.loads(text)
    assert d["identity"]["patient_id"].startswith("ANON-") and d["export"]["deidentified"] is True
    assert "P12" not in text and review.identity["study_id"] not in text


def test_json_never_holds_nan_tokens(dicom_review, tmp_path):
    # a model card metric that could not be computed, and a score that came out NaN
    study, review = dicom_review
    review.ai["malignancy_probability"] = float("nan")
    next(iter(review.ai["models"].values()))["metrics"] = {"val_auc": float("inf"), "val_dice": 0.5}

    def refuse(token):
        raise ValueError(f"non-standard JSON token {token}")

    d = json.loads(export_review_json(review, tmp_path / "review.json").read_text(encoding="utf-8"), parse_constant=refuse)
    assert d["ai"]["malignancy_probability"] is None
    assert next(iter(d["ai"]["models"].values()))["metrics"] == {"val_auc": None, "val_dice": 0.5}


def test_json_carries_the_type_dependent_terms_and_names_those_an_older_review_left(dicom_review, tmp_path):
    study, review = dicom_review
    s = ReviewSession(review)
    s.do(SetDescriptor("F1", "type", "calcifications"))
    s.do(SetDescriptor("F1", "morphology", "fine linear or fine-linear branching"))
    s.do(SetDescriptor("F1", "distribution", "linear"))
    review.findings["F2"].descriptors = {"type": "asymmetry", "margin": "obscured"}  # as an older review stored it
    d = json.loads(export_review_json(review, tmp_path / "review.json").read_text(encoding="utf-8"))
    f1, f2 = d["findings"]
    assert f1["descriptors"] == {"type": "calcifications", "morphology": "fine linear or fine-linear branching",
                                 "distribution": "linear"} and "descriptors_not_for_type" not in f1
    assert f2["descriptors"] == {"type": "asymmetry", "margin": "obscured"}
    assert f2["descriptors_not_for_type"] == {"margin": "obscured"}
