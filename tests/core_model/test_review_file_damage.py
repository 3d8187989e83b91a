"""A damaged review file is moved aside (never deleted) and the study stays usable; a read-only one is never replaced."""

from __future__ import annotations

import json
import os
import stat
from pathlib import Path

import numpy as np
import pytest

from core_model.domain.study import Study, StudyImage
from core_model.review.model import Review, ReviewSession, SetReader
from core_model.review.schema import SCHEMA_VERSION
from core_model.review.store import ReviewStore, ReviewStoreError, study_identity


def _study() -> Study:
    s = Study(patient_id="P9", study_id="S9")
    rng = np.random.default_rng(9)
    for key in ("L_CC", "L_MLO"):
        side, view = key.split("_")
        for e in ("le", "rc"):
            s.add(StudyImage(side, view, e, rng.integers(0, 255, (20, 16), dtype=np.uint8), Path(f"{key}_{e}.png")))
    return s


def _valid(identity) -> dict:
    d = Review(identity=dict(identity)).to_dict()
    d["findings"] = [{"id": "F1", "key": "L_CC", "polygon": [[1, 1], [9, 1], [5, 8]], "state": "accepted",
                      "origin": "reader", "ai_score": None, "ai_polygon": None, "link": None}]
    d["next_number"] = 2
    return d


def _text(d) -> str:
    return json.dumps(d)


def _with(ident, **changes) -> str:
    d = _valid(ident)
    d.update(changes)
    return _text(d)


def _finding_with(identity, **changes) -> str:
    d = _valid(identity)
    d["findings"][0].update(changes)
    return _text(d)


MALFORMED = {
    "top-level list": lambda i: "[1, 2, 3]",
    "assessment is a string": lambda i: _with(i, assessments={"L": "4A", "R": {}}),
    "schema_version 1e999": lambda i: _text(_valid(i)).replace(f'"schema_version": {SCHEMA_VERSION}',
                                                               '"schema_version": 1e999'),
    "deep nesting": lambda i: '{"format": "nafv-review", "ai": ' + "[" * 200_000 + "]" * 200_000 + "}",
    "deep nesting json can parse": lambda i: _text(_valid(i))[:-1] + ', "extra": ' + "[" * 600 + "]" * 600 + "}",
    "torn file": lambda i: _text(_valid(i))[:57],
    "empty file": lambda i: "",
    "not UTF-8": lambda i: "\udcff",  # written as a lone 0xFF byte below
    "identity not an object": lambda i: _with(i, identity="P9"),
    "findings not a list": lambda i: _with(i, findings={"F1": {}}),
    "finding not an object": lambda i: _with(i, findings=[3]),
    "polygon point not a number": lambda i: _finding_with(i, polygon=[[1, 1], [9, "x"], [5, 8]]),
    "polygon with NaN": lambda i: _finding_with(i, polygon=[[1, 1], [9, float("nan")], [5, 8]]),
    "polygon point a 400-digit integer": lambda i: _finding_with(i, polygon=[[1, 1], [9, 10**400], [5, 8]]),
    "polygon of two points": lambda i: _finding_with(i, polygon=[[1, 1], [9, 1]]),
    "unknown view key": lambda i: _finding_with(i, key="X_CC"),
    "unknown state": lambda i: _finding_with(i, state="maybe"),
    "ai_score a string": lambda i: _finding_with(i, ai_score="high"),
    "link a number": lambda i: _finding_with(i, link=7),
    "BI-RADS not a category": lambda i: _with(i, assessments={"L": {"birads": "9", "density": None, "text": ""}, "R": {}}),
    "revision a float": lambda i: _with(i, revision=2.5),
    "revision huge": lambda i: _text(_valid(i)).replace('"revision": 0', '"revision": 1e999'),
    "next_number a bool": lambda i: _with(i, next_number=True),
    "reader a list": lambda i: _with(i, reader=["Dr A"]),
    "ai not an object": lambda i: _with(i, ai=[1]),
    "two findings with one id": lambda i: _with(i, findings=_valid(i)["findings"] * 2),
}


def _on_disk(tmp_path, make_text):
    """(store, study, path) with the study's review file already written as ``make_text(identity)``."""
    store = ReviewStore(tmp_path / "reviews")
    study = _study()
    identity = study_identity(study)
    path = store.path_for(identity)
    path.parent.mkdir(parents=True)
    content = make_text(identity)
    path.write_bytes(content if isinstance(content, bytes) else content.encode("utf-8"))
    return store, study, path


@pytest.mark.parametrize("kind", list(MALFORMED))
def test_malformed_review_is_moved_aside_and_the_study_opens_with_a_fresh_review(tmp_path, kind):
    store, study, path = _on_disk(tmp_path,
                                  lambda identity: b"\xff" if kind == "not UTF-8" else MALFORMED[kind](identity))
    data = path.read_bytes()

    review = store.open(study)  # never raises: the study stays usable

    assert review.findings == {} and review.revision == 0
    backups = [p for p in path.parent.iterdir() if p != path]
    assert len(backups) == 1, backups
    backup = backups[0]
    assert backup.read_bytes() == data  # the reader's file is kept, byte for byte
    assert backup.name.startswith(path.name + ".damaged-") and not backup.name.endswith(".review.json")
    assert len(store.warnings) == 1
    msg = store.warnings[0]
    assert "\n" not in msg and "moved aside" in msg and backup.name in msg and "new review" in msg
    # the fresh review is saved where the damaged one was, and reopens quietly
    assert Review.from_dict(json.loads(path.read_text())).revision == 0
    again = ReviewStore(store.root)
    assert again.open(study).to_dict() == review.to_dict() and again.warnings == []


def test_two_damaged_files_in_one_second_keep_two_backups(tmp_path):
    store = ReviewStore(tmp_path / "reviews")
    study = _study()
    path = store.path_for(study_identity(study))
    path.parent.mkdir(parents=True)
    for n in range(2):
        path.write_text(f"broken {n}")
        store.load(study_identity(study))
    kept = sorted(p.read_text() for p in path.parent.iterdir() if p != path)
    assert kept == ["broken 0", "broken 1"]


def test_a_file_damaged_while_the_study_is_open_is_moved_aside_by_the_next_save(tmp_path):
    store = ReviewStore(tmp_path / "reviews")
    review = store.open(_study())
    path = store.path_for(review.identity)
    path.write_text("{ half a review")  # e.g. another program wrote over it
    ReviewSession(review, store).do(SetReader("Dr. A"))
    assert json.loads(path.read_text())["reader"] == "Dr. A"
    kept = [p for p in path.parent.iterdir() if p != path]
    assert len(kept) == 1 and kept[0].read_text() == "{ half a review"
    assert "moved aside" in review.merge_note and kept[0].name in review.merge_note


def test_a_review_of_a_newer_version_is_refused_and_left_untouched(tmp_path):
    store, study, path = _on_disk(tmp_path, lambda identity: _with(identity, schema_version=99))
    with pytest.raises(ReviewStoreError, match="newer version"):
        store.open(study)
    assert [p.name for p in path.parent.iterdir()] == [path.name]


def test_a_read_only_review_file_is_never_replaced(tmp_path):
    store = ReviewStore(tmp_path / "reviews")
    study = _study()
    review = store.open(study)
    path = store.path_for(review.identity)
    session = ReviewSession(review, store)
    session.do(SetReader("Dr. A"))
    before = path.read_bytes()
    os.chmod(path, 0o444)  # the tests run as root: the mode bits, not os.access, must say "read-only"
    try:
        with pytest.raises(ReviewStoreError, match="read-only") as err:
            session.do(SetReader("Dr. B"))
        assert str(path) in str(err.value) and "\n" not in str(err.value)
        assert path.read_bytes() == before and stat.S_IMODE(path.stat().st_mode) == 0o444
        assert review.reader == "Dr. A"  # rolled back: the screen shows what the file holds
        assert [p.name for p in path.parent.iterdir()] == [path.name]
    finally:
        os.chmod(path, 0o644)
    session.do(SetReader("Dr. B"))  # writable again: saving goes on
    assert json.loads(path.read_text())["reader"] == "Dr. B"


def _version_1(identity) -> str:
    old = _valid(identity)
    old["schema_version"] = 1
    for newer in ("signoff", "assignments"):
        old.pop(newer, None)
    return _text(old)


def test_a_version_1_review_opens_and_is_saved_as_the_current_version(tmp_path):
    store, study, path = _on_disk(tmp_path, _version_1)
    review = store.open(study)
    assert [f.id for f in review.findings.values()] == ["F1"] and review.restore_warnings == []
    ReviewSession(review, store).do(SetReader("Dr. A"))
    saved = json.loads(path.read_text())
    assert SCHEMA_VERSION == 2 and saved["schema_version"] == 2 and saved["reader"] == "Dr. A"
    assert saved["findings"][0]["polygon"] == [[1, 1], [9, 1], [5, 8]]
