"""Lexicon terms per lesion and BPE per breast: validated, undoable, shared by a linked CC/MLO pair, saved."""

from __future__ import annotations

import pytest

from core_model.review.merge import merge
from core_model.review.model import Link, Review, ReviewError, ReviewSession, SetAssessment, SetDescriptor, review_from_analysis

from test_review import IDENT, make_analysis, make_study


@pytest.fixture
def review() -> Review:
    return review_from_analysis(make_analysis(), make_study(), IDENT)


def test_descriptors_are_checked_shared_by_the_linked_view_and_undone(review):
    s = ReviewSession(review)
    s.do(Link("F1", "F2"))
    s.do(SetDescriptor("F1", "type", "Mass"))
    s.do(SetDescriptor("F2", "margin", "spiculated"))
    assert review.findings["F1"].descriptors == review.findings["F2"].descriptors == {"type": "mass", "margin": "spiculated"}
    assert review.findings["F3"].descriptors == {}
    with pytest.raises(ReviewError, match="margin must be one of circumscribed"):
        SetDescriptor("F1", "margin", "fuzzy")
    with pytest.raises(ReviewError, match="unknown finding descriptor"):
        SetDescriptor("F1", "colour", "red")
    s.undo()
    assert review.findings["F1"].descriptors == {"type": "mass"} == review.findings["F2"].descriptors
    s.do(SetDescriptor("F1", "type", None))  # cleared
    assert review.findings["F1"].descriptors == {}
    back = Review.from_dict(review.to_dict())
    assert back.findings["F2"].descriptors == {} and back.findings["F1"].link == "F2"


def test_bpe_per_breast_is_validated_saved_and_merged_by_field(review):
    s = ReviewSession(review)
    base = review.to_dict()
    s.do(SetAssessment("L", "bpe", "Moderate"))
    assert review.assessments["L"].bpe == "moderate" and review.assessments["R"].bpe is None
    with pytest.raises(ReviewError, match="minimal, mild, moderate, marked"):
        SetAssessment("R", "bpe", "strong")
    assert Review.from_dict(review.to_dict()).assessments["L"].bpe == "moderate"
    # another viewer set the right breast's BPE meanwhile: both kept
    theirs = dict(base, assessments={**base["assessments"], "R": {**base["assessments"]["R"], "bpe": "mild"}})
    merged = merge(base, review.to_dict(), theirs).data
    assert merged["assessments"]["L"]["bpe"] == "moderate" and merged["assessments"]["R"]["bpe"] == "mild"
