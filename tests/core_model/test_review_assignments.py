"""Images the files gave no slot: the reader's placement is an undoable review command, saved by SOP Instance UID."""

from __future__ import annotations

import json

import pytest

from core_model.io import load_study
from core_model.review.merge import merge
from core_model.review.model import AssignImage, Review, ReviewError, ReviewSession
from core_model.review.schema import ReviewSchemaError, check_review
from core_model.review.store import ReviewStore, study_identity
from tests.study_files import cbis_ddsm_study

THREE_VIEWS = (("R", "CC"), ("L", "CC"), ("R", "MLO"))


@pytest.fixture
def exam(tmp_path, demo_dir):
    folder = tmp_path / "exam"
    written = cbis_ddsm_study(folder, demo_dir, views=THREE_VIEWS, unplaced=1)
    return folder, written


@pytest.fixture
def opened(exam, tmp_path):
    """The exam loaded with its review opened from a store under tmp_path, and an editing session on it."""
    store = ReviewStore(tmp_path / "reviews")
    study = load_study(exam[0])
    review = store.open(study)
    return store, study, review, ReviewSession(review, store)


def test_placing_an_image_is_saved_and_hangs_it_on_the_next_open(exam, opened, tmp_path):
    folder, _ = exam
    store, study, review, session = opened
    (waiting,) = study.unassigned

    session.do(AssignImage(waiting.uid, "L_MLO", study))
    assert study.get("L_MLO", "le").source == waiting.source and not study.unassigned
    assert review.assignments == {waiting.uid: {"key": "L_MLO", "energy": "le"}}
    assert review.images["L_MLO"]["shape"] == list(waiting.pixels.shape)
    on_disk = json.loads(store.path_for(review.identity).read_text())
    assert on_disk["assignments"] == {waiting.uid: {"key": "L_MLO", "energy": "le"}}

    # The next open: the saved placement hangs the image before the review is restored, which then matches.
    again = load_study(folder)
    assert again.get("L_MLO", "le") is None and len(again.unassigned) == 1
    assert ReviewStore(tmp_path / "reviews").hang_saved_assignments(again) == []
    assert again.get("L_MLO", "le").source == waiting.source and not again.unassigned
    fresh_store = ReviewStore(tmp_path / "reviews")
    restored = fresh_store.open(again)
    assert restored.restore_warnings == [] and fresh_store.warnings == []
    assert restored.assignments == review.assignments


def test_undo_takes_the_image_back_and_redo_hangs_it_again(opened):
    store, study, review, session = opened
    uid = study.unassigned[0].uid
    before = dict(review.identity)
    session.do(AssignImage(uid, "L_MLO", study))
    assert review.identity["digest"] != before["digest"]

    session.undo()
    assert study.get("L_MLO", "le") is None and [u.uid for u in study.unassigned] == [uid]
    assert review.assignments == {} and "L_MLO" not in review.images and review.identity == before
    assert json.loads(store.path_for(review.identity).read_text())["assignments"] == {}

    session.redo()
    assert study.get("L_MLO", "le") is not None and review.assignments[uid]["key"] == "L_MLO"


def test_an_occupied_slot_is_refused_in_words_and_nothing_changes(opened):
    _, study, review, session = opened
    uid = study.unassigned[0].uid
    with pytest.raises(ReviewError, match="R_CC LE already holds 1-1.dcm"):
        session.do(AssignImage(uid, "R_CC", study))
    assert review.assignments == {} and len(study.unassigned) == 1 and not session.can_undo


def test_a_saved_placement_that_no_longer_fits_is_said_not_forced(exam, tmp_path):
    folder, _ = exam
    study = load_study(folder)
    uid = study.unassigned[0].uid
    notes = study.apply_assignments({uid: {"key": "R_CC", "energy": "le"}, "1.2.3.absent": {"key": "L_MLO"}})
    assert len(notes) == 1 and uid in notes[0] and "R_CC" in notes[0]
    assert len(study.unassigned) == 1


def test_schema_old_files_and_merge():
    review = Review(identity={"patient_id": "P", "study_id": "S"})
    old = review.to_dict()
    del old["assignments"]  # written before placements existed
    check_review(old)
    assert Review.from_dict(old).assignments == {}
    bad = {**review.to_dict(), "assignments": {"1.2.3": {"key": "L_XX"}}}
    with pytest.raises(ReviewSchemaError, match="assignments.1.2.3"):
        check_review(bad)
    with pytest.raises(ReviewSchemaError, match="energy"):
        check_review({**review.to_dict(), "assignments": {"1.2.3": {"key": "L_CC", "energy": "he"}}})
    # Another viewer placed an image meanwhile: a save of an unrelated change keeps their placement.
    base = review.to_dict()
    theirs = {**base, "assignments": {"1.2.3": {"key": "L_CC", "energy": "le"}}}
    mine = {**base, "reader": "Dr A"}
    merged = merge(base, mine, theirs)
    assert merged.data["assignments"] == theirs["assignments"] and merged.data["reader"] == "Dr A"
    assert "the placed images" in merged.theirs


def test_identity_counts_only_hung_images(exam):
    folder, _ = exam
    study = load_study(folder)
    ident = study_identity(study)
    assert sorted(ident["images"]) == ["L_CC le", "R_CC le", "R_MLO le"]
