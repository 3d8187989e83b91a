"""Autosave: study identity, atomic writes, exact restore, refusal of foreign or damaged files."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from core_model.domain.study import Study, StudyImage
from core_model.io.naming import parse_cdd_cesm_name
from core_model.review.model import (
    EDITED,
    AddFinding,
    Link,
    MoveVertex,
    ReviewSession,
    SetAssessment,
    SetReader,
    accept,
    reject,
)
from core_model.review.store import ReviewStore, ReviewStoreError, data_dir, study_identity


def load_jpeg_study(folder: Path, patient_id: str | None = None) -> Study:
    """Minimal CDD-CESM folder reader for these tests (the app has its own loaders)."""
    study = None
    for p in sorted(folder.glob("*.jpg")):
        info = parse_cdd_cesm_name(p)
        pid = patient_id or info.patient_id
        study = study or Study(patient_id=pid, study_id=pid, source=folder)
        study.add(StudyImage(info.side, info.view, info.energy, np.array(Image.open(p).convert("L")), p))
    return study


@pytest.fixture
def store(tmp_path, monkeypatch) -> ReviewStore:
    monkeypatch.setenv("NAFV_DATA_DIR", str(tmp_path / "data"))
    return ReviewStore()


def test_data_dir_follows_env(tmp_path, monkeypatch):
    monkeypatch.setenv("NAFV_DATA_DIR", str(tmp_path))
    assert data_dir() == tmp_path and ReviewStore().root == tmp_path / "reviews"
    monkeypatch.delenv("NAFV_DATA_DIR")
    assert data_dir().name == "nafv-viewer"


def test_same_file_names_different_patients_never_share_a_review(store, tmp_path, demo_dir, cdd_test_dir):
    # Folder b holds patient P12's images under P66's file names; the study says patient P12.
    a, b = tmp_path / "a", tmp_path / "b"
    shutil.copytree(demo_dir, a, ignore=shutil.ignore_patterns("*.md"))
    b.mkdir()
    for p12 in sorted((cdd_test_dir / "images").glob("P12_*.jpg")):
        shutil.copy(p12, b / p12.name.replace("P12_", "P66_"))
    sa, sb = load_jpeg_study(a), load_jpeg_study(b, patient_id="P12")
    assert sorted(p.name for p in a.glob("P66_L_*")) == sorted(p.name for p in b.iterdir())
    ia, ib = study_identity(sa), study_identity(sb)
    assert ia["digest"] != ib["digest"] and ia["key"] != ib["key"]
    assert ia["key"].startswith("P66_P66_") and len(ia["digest"]) == 64
    # same files read again: same identity (reopening finds the review)
    assert study_identity(load_jpeg_study(a)) == ia
    # one pixel differs: another digest, but the same study (same key)
    sa.images[("L_CC", "le")].pixels[0, 0] ^= 1
    assert study_identity(sa)["digest"] != ia["digest"] and study_identity(sa)["key"] == ia["key"]
    # same pixels, different patient id: another study
    assert study_identity(load_jpeg_study(a, patient_id="P67"))["key"] != ia["key"]
    # ids that sanitise alike still get their own file
    assert study_identity(load_jpeg_study(a, patient_id="P 66"))["key"] != \
        study_identity(load_jpeg_study(a, patient_id="P/66"))["key"]
    # The two patients' reviews stay apart on disk.
    ra = store.open(load_jpeg_study(a))
    ReviewSession(ra, store).do(AddFinding("L_CC", [(1, 1), (9, 1), (5, 8)]))
    rb = store.open(sb)
    assert rb.findings == {} and rb.restore_warnings == []
    assert store.path_for(ra.identity) != store.path_for(rb.identity)


def test_review_survives_an_added_view_and_a_reexport_with_a_warning(store, demo_dir):
    study = load_jpeg_study(demo_dir)
    missing = study.images.pop(("R_MLO", "rc"))
    review = store.open(study)
    ReviewSession(review, store).do(AddFinding("L_CC", [(300, 200), (340, 210), (320, 250)]))
    # Reopened with the missing view added and one image re-exported (pixels differ).
    full = load_jpeg_study(demo_dir)
    assert ("R_MLO", "rc") in full.images
    full.images[("L_CC", "rc")].pixels[10, 10] ^= 1
    fresh_store = ReviewStore(store.root)
    again = fresh_store.open(full)
    assert list(again.findings) == ["F1"] and again.findings["F1"].polygon[0] == (300, 200)
    assert len(again.restore_warnings) == 1 and fresh_store.warnings == again.restore_warnings
    msg = again.restore_warnings[0]
    assert "added: R_MLO rc" in msg and "pixels changed: L_CC rc" in msg and "restored" in msg
    # The next save records the images now reviewed; reopening then is quiet.
    ReviewSession(again, fresh_store).do(SetReader("Dr. A"))
    assert ReviewStore(store.root).open(full).restore_warnings == []
    assert missing is not None


def test_every_change_is_saved_and_restored_exactly(store, demo_dir):
    study = load_jpeg_study(demo_dir)
    review = store.open(study)  # no analysis: the reader draws alone
    path = store.path_for(review.identity)
    assert path.is_file() and path.parent == store.root
    s = ReviewSession(review, store)
    s.do(AddFinding("L_CC", [(300.5, 200.25), (340, 210), (320, 250)]))
    s.do(AddFinding("L_MLO", [(280, 190), (330, 200), (300, 240), (270, 230)]))
    s.do(Link("F1", "F2"))
    s.do(MoveVertex("F2", 3, (271.125, 231.0)))
    s.do(SetAssessment("L", "birads", "4A"))
    s.do(SetAssessment("L", "density", "b"))
    s.do(SetAssessment("L", "text", "Enhancing mass — 12 o'clock, ∅ 8 mm"))
    s.do(SetReader("Dr. Ünal"))
    s.undo()
    on_disk = json.loads(path.read_text(encoding="utf-8"))
    assert on_disk["revision"] == review.revision == 9 and on_disk["reader"] == ""
    restored = ReviewStore().open(load_jpeg_study(demo_dir))
    assert restored.to_dict() == review.to_dict()
    assert restored.findings["F2"].polygon[3] == (271.125, 231.0) and restored.findings["F1"].link == "F2"
    assert [p.name for p in path.parent.iterdir()] == [path.name]  # no temp files left behind


def test_reopening_keeps_the_reader_review_even_if_the_analysis_changed(store, demo_dir):
    from test_review import make_analysis

    study = load_jpeg_study(demo_dir)
    review = store.open(study, make_analysis())
    assert [f.state for f in review.findings.values()] == ["proposed"] * 3
    ReviewSession(review, store).do(MoveVertex("F3", 0, (5.0, 6.0)))
    other = make_analysis()
    other.views.clear()  # a re-run that found nothing must not wipe the reader's work
    again = ReviewStore().open(load_jpeg_study(demo_dir), other)
    assert again.findings["F3"].state == EDITED and again.findings["F3"].polygon[0] == (5.0, 6.0)
    assert again.ai["malignancy_probability"] == pytest.approx(0.73)


def test_foreign_review_file_is_refused_and_left_untouched_a_damaged_one_kept_aside(store, demo_dir, tmp_path):
    study = load_jpeg_study(demo_dir)
    review = store.open(study)
    path = store.path_for(review.identity)
    data = json.loads(path.read_text())
    data["identity"]["patient_id"] = "P67"  # another patient's review under this study's name
    path.write_text(json.dumps(data))
    with pytest.raises(ReviewStoreError, match="different study"):
        store.open(study)
    assert json.loads(path.read_text()) == data
    path.write_text('{"format": "nafv-review", "identity": {')  # torn file (never written by the store)
    assert store.open(study).findings == {}  # the study stays usable with a new review ...
    kept = list(path.parent.glob(path.name + ".damaged-*"))  # ... and the damaged file is kept, not deleted
    assert len(kept) == 1 and kept[0].read_text() == '{"format": "nafv-review", "identity": {'
    assert kept[0].name in store.warnings[0]


def test_save_failure_is_a_user_error_and_rolls_back(store, demo_dir, monkeypatch):
    review = store.open(load_jpeg_study(demo_dir))
    s = ReviewSession(review, store)
    s.do(AddFinding("R_CC", [(1, 1), (9, 1), (5, 8)]))
    import os

    def full(*a, **k):  # a full disk can surface when the bytes are flushed (NFS, thin volumes)
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(os, "fsync", full)
    with pytest.raises(ReviewStoreError, match="could not be saved.*No space left"):
        s.do(reject("F1"))
    assert review.findings["F1"].state == "accepted"
    path = store.path_for(review.identity)
    assert not list(path.parent.glob(".*.tmp"))  # the half-written temporary went with the failure
    monkeypatch.undo()
    assert ReviewStore(store.root).load(review.identity).to_dict() == review.to_dict()


def test_stale_temp_files_are_cleared_but_a_live_writers_is_not(store, demo_dir):
    import subprocess
    import sys

    review = store.open(load_jpeg_study(demo_dir))
    path = store.path_for(review.identity)
    live = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(30)"])
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    try:
        for pid in (live.pid, dead.pid):
            (path.parent / f".{path.name}.{pid}.tmp").write_text("{partial")
        assert store.load(review.identity).to_dict() == review.to_dict()
        assert [p.name for p in path.parent.glob(".*.tmp")] == [f".{path.name}.{live.pid}.tmp"]
    finally:
        live.kill()
        live.wait()


def test_identity_records_whether_the_study_is_synthetic(demo_dir):
    from core_model.io import load_study
    from core_model.synth.phantom import generate_case

    assert study_identity(generate_case(3, size=(96, 80)).study)["synthetic"] is True
    assert study_identity(load_study(demo_dir))["synthetic"] is False
