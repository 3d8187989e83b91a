"""The analysis's proposed CC/MLO pairs become linked findings, also when they join a reader's review."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from core_model.domain.analysis import Analysis, Lesion, ViewResult
from core_model.domain.study import Study, StudyImage
from core_model.review.model import AddFinding, Review, ReviewSession, add_ai_findings, review_from_analysis


def _study() -> Study:
    images = {}
    for key in ("L_CC", "L_MLO"):
        side, view = key.split("_")
        for energy, sp in (("le", None), ("rc", (0.1, 0.1))):  # only the RC file gives the spacing
            images[(key, energy)] = StudyImage(side=side, view=view, energy=energy, pixels=np.zeros((80, 60), np.uint16),
                                               source=Path(f"{key}_{energy}.dcm"), pixel_spacing_mm=sp)
    return Study(patient_id="T", study_id="T1", images=images)


def _analysis() -> Analysis:
    def les(x, pair):
        poly = np.array([[x, 10], [x + 10, 10], [x + 10, 20], [x, 20]], np.float32)
        return Lesion(poly, 0.9, 100.0, (x, 10, x + 10, 20), pair=pair)

    views = {"L_CC": ViewResult("L_CC", np.zeros((80, 60), np.uint8), lesions=[les(5, None), les(30, "L_MLO:0")]),
             "L_MLO": ViewResult("L_MLO", np.zeros((80, 60), np.uint8), lesions=[les(30, "L_CC:1")])}
    return Analysis(models={}, device="cpu", affected_side="L", affected_side_source="segmentation",
                    malignancy_probability=None, classifier_mode=None, views=views)


def test_proposed_pairs_start_linked_and_spacing_comes_from_the_file_that_has_it():
    review = review_from_analysis(_analysis(), _study(), {"patient_id": "T", "study_id": "T1"})
    f1, f2, f3 = (review.findings[i] for i in ("F1", "F2", "F3"))
    assert f1.link is None and f2.link == "F3" and f3.link == "F2"
    assert review.pixel_spacing("L_CC") == (0.1, 0.1)


def test_ai_findings_joining_a_reader_review_keep_their_pairs_under_new_ids():
    review = Review(identity={"patient_id": "T", "study_id": "T1"})
    ReviewSession(review).do(AddFinding("L_CC", [(1, 1), (5, 1), (5, 5)]))  # the reader's F1
    fresh = review_from_analysis(_analysis(), _study(), review.identity)
    add_ai_findings(review, fresh)
    assert sorted(review.findings) == ["F1", "F2", "F3", "F4"]
    assert review.findings["F1"].origin == "reader" and review.findings["F1"].link is None
    assert review.findings["F3"].link == "F4" and review.findings["F4"].link == "F3"  # not the reader's F1
    assert review.findings["F2"].link is None
