"""Finalising a review locks it; an addendum unlocks it, lists what changed and is signed in turn."""

from __future__ import annotations

import json

import pytest

from core_model.domain.errors import NafvError
from core_model.review.model import ACCEPTED, REJECTED, Review, ReviewSession, SetAssessment, SetReader, accept, reject, review_from_analysis
from core_model.review.signoff import (Finalise, OpenAddendum, ReviewLockedError, addendum_lines, is_locked, open_addendum,
                                       status_text)
from core_model.review.store import ReviewStore

from test_review import IDENT, make_analysis, make_study


@pytest.fixture
def session(tmp_path):
    study = make_study()
    store = ReviewStore(tmp_path)
    review = store.open(study, make_analysis())
    return ReviewSession(review, store), store, study


def test_finalise_records_reader_and_time_and_locks_every_edit(session):
    s, store, study = session
    s.do(SetReader("Dr A. Reader"))
    s.do(accept("F1"))
    s.do(SetAssessment("L", "birads", "4B"))
    s.do(Finalise(s.review.reader))
    fin = s.review.signoff["finalised"]
    assert fin["reader"] == "Dr A. Reader" and fin["time"][:4].isdigit()
    assert is_locked(s.review) and status_text(s.review).startswith("Finalised by Dr A. Reader on ")
    for cmd in (reject("F1"), SetAssessment("L", "birads", "5"), SetReader("Someone else")):
        with pytest.raises(ReviewLockedError, match="finalised by Dr A. Reader .* locked: open an addendum"):
            s.do(cmd)
    # nothing changed, in memory or on disk, and undo cannot unlock it either
    assert s.review.findings["F1"].state == ACCEPTED and s.review.assessments["L"].birads == "4B"
    with pytest.raises(NafvError):
        s.undo()
    saved = json.loads(store.path_for(s.review.identity).read_text())
    assert saved["signoff"]["finalised"]["reader"] == "Dr A. Reader"
    reopened = ReviewStore(store.root).open(study, None)
    assert is_locked(reopened)
    with pytest.raises(ReviewLockedError):
        ReviewSession(reopened, store).do(accept("F2"))


def test_finalise_needs_a_reader_name(session):
    s, _, _ = session
    with pytest.raises(NafvError, match="reader's name"):
        s.do(Finalise(""))
    assert not s.review.signoff["finalised"]


def test_a_change_after_finalising_becomes_a_signed_addendum(session):
    s, store, study = session
    s.do(SetReader("Dr A"))
    s.do(accept("F1"))
    s.do(Finalise("Dr A"))
    s.do(OpenAddendum("Dr B", reason="second look at the MLO"))
    assert not is_locked(s.review) and open_addendum(s.review)["reader"] == "Dr B"
    s.do(reject("F2"))
    s.do(SetAssessment("L", "birads", "5"))
    s.do(accept("F3"))
    s.undo()  # taken off the addendum's list as well
    add = open_addendum(s.review)
    assert add["changes"] == ["reject F2", "set L birads"]
    assert "addendum by Dr B open since" in status_text(s.review)
    s.do(Finalise("Dr B"))
    assert is_locked(s.review) and s.review.findings["F2"].state == REJECTED
    a = s.review.signoff["addenda"][0]
    assert a["signed"] and a["reader"] == "Dr B"
    # the first signature is kept as it was
    assert s.review.signoff["finalised"]["reader"] == "Dr A"
    lines = addendum_lines(s.review)
    assert len(lines) == 1 and lines[0].startswith("Addendum 1 by Dr B, opened ")
    assert "Reason: second look at the MLO." in lines[0] and "Changes: reject F2; set L birads." in lines[0]
    with pytest.raises(ReviewLockedError):
        s.do(accept("F3"))
    # the whole sign-off survives a save and a reload
    back = ReviewStore(store.root).open(study, None)
    assert back.signoff == s.review.signoff


def test_addendum_only_after_finalising(session):
    s, _, _ = session
    with pytest.raises(NafvError, match="not finalised"):
        s.do(OpenAddendum("Dr B"))


def test_a_damaged_signoff_is_named_by_the_schema_check():
    from core_model.review.schema import ReviewSchemaError

    d = review_from_analysis(make_analysis(), make_study(), IDENT).to_dict()
    d["signoff"] = {"finalised": {"reader": 3}}
    with pytest.raises(ReviewSchemaError, match="signoff.finalised"):
        Review.from_dict(d)
