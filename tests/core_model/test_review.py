"""Review model: findings from an analysis, state changes, contour edits, links, assessment, undo/redo."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from core_model.domain.analysis import Analysis, Lesion, ViewResult
from core_model.domain.study import Study, StudyImage
from core_model.review.model import (
    ACCEPTED,
    EDITED,
    PROPOSED,
    REJECTED,
    AddFinding,
    DeleteFinding,
    InsertVertex,
    Link,
    MoveVertex,
    RemoveVertex,
    Review,
    ReviewError,
    ReviewSession,
    SetAssessment,
    SetReader,
    Unlink,
    accept,
    finding_size_mm,
    max_diameter,
    polygon_area,
    reject,
    review_from_analysis,
)

SQUARE = np.array([[10.0, 10.0], [30.0, 10.0], [30.0, 30.0], [10.0, 30.0]])


def make_study(spacing=(0.1, 0.1)) -> Study:
    s = Study(patient_id="P1", study_id="S1")
    rng = np.random.default_rng(0)
    for key in ("L_CC", "L_MLO", "R_CC", "R_MLO"):
        side, view = key.split("_")
        for e in ("le", "rc"):
            s.add(StudyImage(side, view, e, rng.integers(0, 255, (64, 48), dtype=np.uint8), Path(f"{key}_{e}.png"), spacing))
    return s


def make_analysis() -> Analysis:
    def lesion(poly, score):
        poly = np.asarray(poly, float)
        return Lesion(polygon=poly, score=score, area_px=polygon_area([tuple(p) for p in poly]), bbox=(*poly.min(0), *poly.max(0)))

    views = {
        "L_CC": ViewResult("L_CC", np.zeros((64, 48), np.uint8), lesions=[lesion(SQUARE, 0.8)]),
        "L_MLO": ViewResult("L_MLO", np.zeros((64, 48), np.uint8), lesions=[lesion(SQUARE + 5, 0.6), lesion(SQUARE + 20, 0.3)]),
    }
    return Analysis(
        models={"segmentation": {"name": "nafv_tiny", "weights_sha256": "ab" * 32, "trained_on": "test", "not_for_clinical_use": True}},
        device="cpu",
        affected_side="L",
        affected_side_source="segmentation",
        malignancy_probability=0.73,
        classifier_mode="four-view",
        views=views,
    )


IDENT = {"patient_id": "P1", "study_id": "S1", "digest": "0" * 64, "key": "P1_S1_0000"}


@pytest.fixture
def review() -> Review:
    return review_from_analysis(make_analysis(), make_study(), IDENT)


def test_findings_from_analysis_are_proposed_with_ai_score_and_ai_probability_kept_apart(review):
    assert list(review.findings) == ["F1", "F2", "F3"]
    f1, f2, f3 = review.findings.values()
    assert (f1.key, f2.key, f3.key) == ("L_CC", "L_MLO", "L_MLO")
    assert all(f.state == PROPOSED and f.origin == "ai" for f in (f1, f2, f3))
    assert f2.ai_score == pytest.approx(0.6)
    assert f2.polygon[0] == (15.0, 15.0)
    assert review.ai["malignancy_probability"] == pytest.approx(0.73)
    assert review.ai["not_for_clinical_use"] is True
    # the reader's call starts empty: the AI never fills it in
    assert all(a.birads is None and a.density is None and a.text == "" for a in review.assessments.values())
    assert review.images["L_CC"] == {"shape": [64, 48], "pixel_spacing_mm": [0.1, 0.1]}


def test_accept_reject_undo_redo(review):
    s = ReviewSession(review)
    s.do(accept("F1"))
    s.do(reject("F2"))
    assert (review.findings["F1"].state, review.findings["F2"].state) == (ACCEPTED, REJECTED)
    assert [f.id for f in review.confirmed()] == ["F1"]
    s.undo()
    assert review.findings["F2"].state == PROPOSED
    s.undo()
    assert review.findings["F1"].state == PROPOSED and not s.can_undo
    s.redo()
    assert review.findings["F1"].state == ACCEPTED and s.can_redo
    s.do(accept("F3"))  # a new change drops the redo branch
    assert not s.can_redo
    assert review.revision == 6


def test_accepting_an_edited_finding_keeps_it_edited(review):
    s = ReviewSession(review)
    s.do(MoveVertex("F1", 2, (40.0, 35.0)))
    assert review.findings["F1"].state == EDITED
    s.do(accept("F1"))
    assert review.findings["F1"].state == EDITED  # the reader's contour, not the AI's, is confirmed
    s.do(reject("F1"))
    s.do(accept("F1"))
    assert review.findings["F1"].state == EDITED
    s.undo()
    assert review.findings["F1"].state == REJECTED
    # an unchanged AI contour is accepted as such, and so is one moved back to the AI's
    s.do(accept("F2"))
    assert review.findings["F2"].state == ACCEPTED
    p0 = review.findings["F3"].polygon[0]
    s.do(MoveVertex("F3", 0, (p0[0] + 3, p0[1])))
    s.do(MoveVertex("F3", 0, p0))
    s.do(accept("F3"))
    assert review.findings["F3"].state == ACCEPTED


def test_vertex_edits_mark_ai_finding_edited_and_undo_restores_contour_and_state(review):
    s = ReviewSession(review)
    s.do(accept("F1"))
    original = list(review.findings["F1"].polygon)
    s.do(MoveVertex("F1", 2, (40.0, 35.0)))
    f = review.findings["F1"]
    assert f.state == EDITED and f.polygon[2] == (40.0, 35.0)
    assert f.ai_polygon == original  # the AI's proposal stays on record
    s.do(InsertVertex("F1", 1, (20.0, 5.0)))
    assert f.polygon[:3] == [(10.0, 10.0), (20.0, 5.0), (30.0, 10.0)] and len(f.polygon) == 5
    s.do(RemoveVertex("F1", 0))
    assert len(f.polygon) == 4 and f.polygon[0] == (20.0, 5.0)
    for _ in range(3):
        s.undo()
    assert f.polygon == original and f.state == ACCEPTED
    for _ in range(3):
        s.redo()
    assert f.polygon == [(20.0, 5.0), (30.0, 10.0), (40.0, 35.0), (10.0, 30.0)] and f.state == EDITED


def test_invalid_edits_are_refused_without_changing_anything(review):
    s = ReviewSession(review)
    s.do(RemoveVertex("F1", 0))
    with pytest.raises(ReviewError, match="at least 3"):
        s.do(RemoveVertex("F1", 0))
    with pytest.raises(ReviewError, match="no vertex 7"):
        s.do(MoveVertex("F1", 7, (0, 0)))
    with pytest.raises(ReviewError, match="no finding"):
        s.do(accept("F99"))
    with pytest.raises(ReviewError, match="BI-RADS"):
        SetAssessment("L", "birads", "7")
    with pytest.raises(ReviewError, match="density"):
        SetAssessment("L", "density", "e")
    assert len(review.findings["F1"].polygon) == 3 and review.revision == 1


def test_reader_drawn_finding_add_delete_undo_keeps_id_and_order(review):
    s = ReviewSession(review)
    cmd = s.do(AddFinding("R_CC", [(1, 1), (9, 1), (5, 8)]))
    f = review.findings[cmd.fid]
    assert cmd.fid == "F4" and f.origin == "reader" and f.state == ACCEPTED and f.ai_score is None
    s.do(MoveVertex("F4", 0, (2, 2)))
    assert f.state == ACCEPTED  # the reader's own contour is not "edited AI output"
    s.undo()
    s.undo()
    assert "F4" not in review.findings
    s.redo()
    assert review.findings["F4"].polygon == [(1.0, 1.0), (9.0, 1.0), (5.0, 8.0)]
    s.do(DeleteFinding("F2"))
    assert list(review.findings) == ["F1", "F3", "F4"]
    s.undo()
    assert list(review.findings) == ["F1", "F2", "F3", "F4"]


def test_link_cc_mlo_of_same_breast_relink_unlink_delete(review):
    s = ReviewSession(review)
    with pytest.raises(ReviewError, match="CC contour with an MLO"):
        s.do(Link("F2", "F3"))  # both MLO
    s.do(AddFinding("R_MLO", [(1, 1), (9, 1), (5, 8)]))
    with pytest.raises(ReviewError, match="same breast"):
        s.do(Link("F1", "F4"))
    s.do(Link("F1", "F2"))
    assert review.findings["F1"].link == "F2" and review.findings["F2"].link == "F1"
    s.do(Link("F1", "F3"))  # relinking frees the old partner
    assert review.findings["F1"].link == "F3" and review.findings["F2"].link is None
    s.undo()
    assert review.findings["F1"].link == "F2" and review.findings["F3"].link is None
    s.do(Unlink("F2"))
    assert review.findings["F1"].link is None
    s.undo()
    s.do(DeleteFinding("F2"))
    assert review.findings["F1"].link is None
    s.undo()
    assert review.findings["F1"].link == "F2" and review.findings["F2"].link == "F1"


def test_assessment_and_reader(review):
    s = ReviewSession(review)
    s.do(SetAssessment("l", "birads", "4b"))
    s.do(SetAssessment("L", "density", "C"))
    s.do(SetAssessment("R", "birads", 1))
    s.do(SetAssessment("L", "text", "Irregular enhancing mass, upper outer quadrant."))
    s.do(SetReader("  Dr. A. Reader "))
    a = review.assessments["L"]
    assert (a.birads, a.density, review.assessments["R"].birads, review.reader) == ("4B", "c", "1", "Dr. A. Reader")
    s.undo()
    s.undo()
    assert review.reader == "" and a.text == ""


def test_sizes_in_mm_use_row_and_column_spacing(review):
    f = review.findings["F1"]  # 20 x 20 px square
    d, area = finding_size_mm(review, f)
    assert d == pytest.approx(np.hypot(2.0, 2.0)) and area == pytest.approx(4.0)
    assert polygon_area(f.polygon, (0.2, 0.1)) == pytest.approx(8.0)
    assert max_diameter([(0, 0), (10, 0), (0, 5)], (0.5, 0.1)) == pytest.approx(np.hypot(1.0, 2.5))
    review.images["L_CC"]["pixel_spacing_mm"] = None
    assert finding_size_mm(review, f) is None


def test_round_trip_through_json_is_exact(review):
    s = ReviewSession(review)
    s.do(accept("F1"))
    s.do(MoveVertex("F2", 1, (1 / 3, 2 / 7)))
    s.do(Link("F1", "F2"))
    s.do(SetAssessment("L", "birads", "4C"))
    back = Review.from_dict(json.loads(json.dumps(review.to_dict())))
    assert back.to_dict() == review.to_dict()
    assert back.findings["F2"].polygon[1] == (1 / 3, 2 / 7)
    assert back.next_number == 4


def test_session_listeners_and_failed_save_rolls_back(review):
    events = []

    class Failing:
        fail = False

        def save(self, r):
            if self.fail:
                raise OSError("disk full")

    store = Failing()
    s = ReviewSession(review, store)
    s.subscribe(lambda r, cmd, how: events.append((cmd.text, how)))
    s.do(accept("F1"))
    s.undo()
    assert events == [("accept F1", "do"), ("accept F1", "undo")]
    store.fail = True
    with pytest.raises(OSError):
        s.do(reject("F1"))
    assert review.findings["F1"].state == PROPOSED and review.revision == 2 and not s.can_undo
