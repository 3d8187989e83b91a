"""Lexicon terms per lesion and BPE per breast: validated against the finding's type, undoable, shared by a
linked CC/MLO pair, saved; older reviews' terms load and are flagged."""

from __future__ import annotations

import pytest

import json

from core_model.review.lexicon import DESCRIPTORS, FINDING_TERMS, check_term, describe, retype, stray_terms
from core_model.review.merge import merge
from core_model.review.schema import ReviewSchemaError, check_review
from core_model.review.store import ReviewStore
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


def test_the_table_refuses_fields_a_type_does_not_take():
    with pytest.raises(ValueError, match="gives calcifications no margin; calcifications is described by morphology, distribution and enhancement"):
        check_term("margin", "spiculated", type="calcifications")
    with pytest.raises(ValueError, match="gives mass no distribution; mass is described by shape, margin, density and internal enhancement"):
        check_term("distribution", "segmental", type="mass")
    with pytest.raises(ValueError, match="choose the finding's type before its shape"):
        check_term("shape", "oval")
    with pytest.raises(ValueError, match="internal enhancement of non-mass enhancement must be one of homogeneous, "
                                         "heterogeneous, clumped, clustered ring, not 'rim enhancement'"):
        check_term("internal_enhancement", "rim enhancement", type="non-mass enhancement")
    assert check_term("morphology", "Fine Pleomorphic", type="calcifications") == "fine pleomorphic"
    assert check_term("distribution", "multiple regions", type="non-mass enhancement") == "multiple regions"
    assert check_term("asymmetry_kind", "developing asymmetry", type="asymmetry") == "developing asymmetry"
    assert check_term("margin", None, type="calcifications") is None  # clearing is always allowed
    # a finding seen on the low-energy image is described on CEM by whether it enhances, not by a pattern
    assert list(DESCRIPTORS["architectural distortion"]) == ["enhancement"]
    with pytest.raises(ValueError, match="gives architectural distortion no internal enhancement"):
        check_term("internal_enhancement", "heterogeneous", type="architectural distortion")
    assert describe({"type": "asymmetry", "asymmetry_kind": "asymmetry", "enhancement": "absent"}) == [
        "asymmetry", "no enhancement"]
    assert describe({"type": "asymmetry", "asymmetry_kind": "focal asymmetry", "enhancement": "present"}) == [
        "asymmetry", "focal asymmetry", "enhancing on the recombined image"]
    assert FINDING_TERMS["distribution"] == ("focal", "linear", "segmental", "regional", "multiple regions", "diffuse", "grouped")
    assert describe({"type": "calcifications", "morphology": "amorphous", "distribution": "grouped"}) == [
        "calcifications", "amorphous morphology (suspicious)", "grouped distribution"]


def test_a_term_the_type_does_not_take_is_refused_by_the_command_and_nothing_changes(review):
    s = ReviewSession(review)
    s.do(SetDescriptor("F1", "type", "calcifications"))
    rev = review.revision
    with pytest.raises(ReviewError, match="no margin"):
        s.do(SetDescriptor("F1", "margin", "spiculated"))
    assert review.findings["F1"].descriptors == {"type": "calcifications"} and review.revision == rev
    with pytest.raises(ReviewError, match="choose the finding's type"):
        s.do(SetDescriptor("F3", "shape", "oval"))


def test_changing_type_keeps_only_the_terms_that_apply_in_one_undoable_command(review):
    s = ReviewSession(review)
    s.do(Link("F1", "F2"))
    s.do(SetDescriptor("F1", "type", "mass"))
    s.do(SetDescriptor("F1", "shape", "oval"))
    s.do(SetDescriptor("F1", "margin", "spiculated"))
    s.do(SetDescriptor("F1", "internal_enhancement", "heterogeneous"))
    cmd = s.do(SetDescriptor("F1", "type", "calcifications"))
    assert review.findings["F1"].descriptors == review.findings["F2"].descriptors == {"type": "calcifications"}
    assert cmd.text == ("set F1 type to calcifications; dropped oval shape, spiculated margin, "
                        "heterogeneous internal enhancement (not used for calcifications)")
    s.undo()
    mass = {"type": "mass", "shape": "oval", "margin": "spiculated", "internal_enhancement": "heterogeneous"}
    assert review.findings["F1"].descriptors == review.findings["F2"].descriptors == mass
    s.redo()
    assert review.findings["F2"].descriptors == {"type": "calcifications"}
    s.undo()
    # to a non-mass enhancement: a mass's internal enhancement is another concept than an NME's internal
    # pattern (other terms), so "heterogeneous" goes with shape and margin instead of changing meaning
    cmd = s.do(SetDescriptor("F1", "type", "non-mass enhancement"))
    assert review.findings["F1"].descriptors == {"type": "non-mass enhancement"}
    assert "dropped oval shape, spiculated margin, heterogeneous internal enhancement (" in cmd.text
    s.undo()
    # between types whose field is the same concept the term stays: enhancement present/absent on RC
    s.do(SetDescriptor("F1", "type", "calcifications"))
    s.do(SetDescriptor("F1", "enhancement", "present"))
    s.do(SetDescriptor("F1", "type", "architectural distortion"))
    assert review.findings["F2"].descriptors == {"type": "architectural distortion", "enhancement": "present"}
    assert retype({"type": "calcifications", "distribution": "segmental"}, "non-mass enhancement") == (
        {"type": "non-mass enhancement"}, {"distribution": "segmental"})
    assert retype({"shape": "round"}, "mass") == ({"type": "mass", "shape": "round"}, {})


@pytest.mark.parametrize("version", [1, 2])
def test_an_older_review_with_terms_its_type_no_longer_takes_loads_kept_and_flagged(review, tmp_path, version):
    store = ReviewStore(tmp_path)
    path = store.save(review)
    d = json.loads(path.read_text())
    d["schema_version"] = version
    older = {"F1": {"type": "calcifications", "shape": "oval", "margin": "spiculated"},
             "F2": {"shape": "irregular", "internal_enhancement": "rim enhancement"},  # no type: allowed then
             "F3": {"type": "mass", "shape": "round", "internal_enhancement": "no enhancement"}}
    for fd in d["findings"]:
        fd["descriptors"] = older[fd["id"]]
    path.write_text(json.dumps(d))
    back = store.load(review.identity)
    assert {fid: f.descriptors for fid, f in back.findings.items()} == older  # nothing rewritten
    assert stray_terms(back.findings["F1"].descriptors) == {"shape": "oval", "margin": "spiculated"}
    assert stray_terms(back.findings["F2"].descriptors) == {"shape": "irregular", "internal_enhancement": "rim enhancement"}
    assert stray_terms(back.findings["F3"].descriptors) == {}
    # choosing a type for the untyped finding keeps the terms it takes
    s = ReviewSession(back)
    s.do(SetDescriptor("F2", "type", "mass"))
    assert back.findings["F2"].descriptors == {"type": "mass", "shape": "irregular", "internal_enhancement": "rim enhancement"}
    # a word the lexicon does not have at all is damage, named in words
    d["findings"][0]["descriptors"] = {"type": "calcifications", "colour": "red"}
    with pytest.raises(ReviewSchemaError, match=r"findings\[0\]\.descriptors\.colour: unknown finding descriptor"):
        check_review(d)
    d["findings"][0]["descriptors"] = {"type": "calcifications", "morphology": "sparkly"}
    with pytest.raises(ReviewSchemaError, match="morphology must be one of skin"):
        check_review(d)


def test_a_link_makes_one_description_and_refuses_two_different_ones(review):
    from core_model.review.model import Link, ReviewError, ReviewSession, Unlink

    s = ReviewSession(review)
    cc = next(f for f in review.findings.values() if f.view == "CC")
    mlo = next(f for f in review.findings.values() if f.view == "MLO" and f.side == cc.side)
    if cc.link:
        s.do(Unlink(cc.id))
    s.do(SetDescriptor(cc.id, "type", "mass"))
    s.do(SetDescriptor(cc.id, "shape", "oval"))
    s.do(Link(cc.id, mlo.id))  # the MLO contour had no terms: it takes the lesion's
    assert review.findings[mlo.id].descriptors == {"type": "mass", "shape": "oval"}
    s.undo()
    assert review.findings[mlo.id].descriptors == {} and review.findings[cc.id].link is None
    s.do(SetDescriptor(mlo.id, "type", "calcifications"))
    with pytest.raises(ReviewError, match=f"{cc.id} and {mlo.id} are described differently"):
        s.do(Link(cc.id, mlo.id))
    assert review.findings[cc.id].link is None
