"""Two viewers on one review: no committed change is lost, a clash is refused and named, readers never see a torn file."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from core_model.review.model import (
    PROPOSED,
    AddFinding,
    Review,
    ReviewSession,
    SetAssessment,
    SetReader,
    SetState,
    accept,
    reject,
)
from core_model.review.store import ReviewStore, ReviewStoreError

REPO = Path(__file__).resolve().parents[2]
IDENT = {"patient_id": "P1", "study_id": "S1", "digest": "d" * 64, "key": "P1_S1_two"}
SAVES = 150

WRITER = textwrap.dedent(
    """
    import sys
    from core_model.review.model import AddFinding, ReviewSession
    from core_model.review.store import ReviewStore

    root, who, n = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
    ident = {"patient_id": "P1", "study_id": "S1", "digest": "d" * 64, "key": "P1_S1_two"}
    store = ReviewStore(root)
    session = ReviewSession(store.load(ident), store)
    key = ("L_CC", "R_MLO")[who]
    for i in range(n):
        # one new contour per save; its first point says which writer drew it and when
        session.do(AddFinding(key, [(1000.0 * who + i, 1.0), (1000.0 * who + i + 0.5, 1.0), (1000.0 * who + i, 2.0)]))
    print("done", len(session.review.findings), flush=True)
    """
)

READER = textwrap.dedent(
    """
    import json, os, sys, time
    from core_model.review.model import Review

    path, stop = sys.argv[1], sys.argv[2]
    reads = torn = 0
    while not os.path.exists(stop):
        try:
            with open(path, "rb") as fh:
                data = fh.read()
            Review.from_dict(json.loads(data))
        except Exception as exc:  # a torn or invalid file
            torn += 1
            print("torn", repr(exc)[:200], file=sys.stderr, flush=True)
        reads += 1
        time.sleep(0.001)  # leave the CPUs to the writers
    print(reads, torn, flush=True)
    """
)


def _fresh(store: ReviewStore) -> Review:
    review = Review(identity=dict(IDENT))
    store.save(review)
    return store.load(IDENT)


def test_two_writer_processes_keep_every_change_and_a_reader_never_sees_a_torn_file(tmp_path):
    store = ReviewStore(tmp_path / "reviews")
    _fresh(store)
    path = store.path_for(IDENT)
    env = dict(os.environ, PYTHONPATH=str(REPO), PYTHONUNBUFFERED="1")
    stop = tmp_path / "stop"
    reader = subprocess.Popen([sys.executable, "-c", READER, str(path), str(stop)], env=env,
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    t0 = time.perf_counter()
    writers = [subprocess.Popen([sys.executable, "-c", WRITER, str(store.root), str(w), str(SAVES)], env=env,
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True) for w in (0, 1)]
    try:
        outs = [w.communicate(timeout=120) for w in writers]
    finally:
        stop.touch()
        r_out, r_err = reader.communicate(timeout=30)
        for w in writers:
            if w.poll() is None:
                w.kill()
    elapsed = time.perf_counter() - t0
    for w, (out, err) in zip(writers, outs):
        assert w.returncode == 0, err
    reads, torn = (int(v) for v in r_out.split())
    on_disk = store.load(IDENT)
    firsts = sorted(f.polygon[0][0] for f in on_disk.findings.values())
    print(f"two writers x {SAVES} saves in {elapsed:.1f} s: {len(on_disk.findings)} of {2 * SAVES} changes on disk, "
          f"{torn} torn of {reads} reads")
    assert torn == 0, r_err
    assert reads > 0
    assert firsts == sorted([float(i) for i in range(SAVES)] + [1000.0 + i for i in range(SAVES)])
    assert len({f.id for f in on_disk.findings.values()}) == 2 * SAVES
    assert on_disk.revision == 2 * SAVES
    assert [p.name for p in path.parent.iterdir()] == [path.name]  # no lock or temp file left behind


def test_a_window_saving_only_the_reader_name_keeps_the_other_windows_work(tmp_path):
    store_a, store_b = ReviewStore(tmp_path / "r"), ReviewStore(tmp_path / "r")
    _fresh(store_a)
    a = ReviewSession(store_a.load(IDENT), store_a)
    b = ReviewSession(store_b.load(IDENT), store_b)  # opened before A's work
    a.do(SetAssessment("L", "birads", "4A"))
    a.do(SetAssessment("L", "text", "enhancing mass"))
    a.do(AddFinding("L_CC", [(1, 1), (9, 1), (5, 8)]))
    b.do(SetReader("Dr. B"))
    assert "another viewer" in b.review.merge_note and "1 finding added" in b.review.merge_note
    assert b.review.assessments["L"].birads == "4A"  # B's window now shows A's work too
    c = ReviewSession(ReviewStore(tmp_path / "r").load(IDENT), ReviewStore(tmp_path / "r"))
    c.do(AddFinding("R_MLO", [(3, 3), (7, 3), (5, 9)]))  # a third window takes the next number ...
    b.do(AddFinding("R_CC", [(2, 2), (8, 2), (5, 9)]))  # ... so B's finding is renumbered
    assert b.review.renamed_ids and "is now" in b.review.merge_note
    disk = ReviewStore(tmp_path / "r").load(IDENT)
    assert disk.reader == "Dr. B" and disk.assessments["L"].birads == "4A" and disk.assessments["L"].text == "enhancing mass"
    assert sorted(f.key for f in disk.findings.values()) == ["L_CC", "R_CC", "R_MLO"]
    assert len(disk.findings) == 3 and disk.revision == 6
    assert b.review.to_dict() == disk.to_dict()
    # B's undo still removes B's own finding, whatever number it got
    b.undo()
    disk = ReviewStore(tmp_path / "r").load(IDENT)
    assert sorted(f.key for f in disk.findings.values()) == ["L_CC", "R_MLO"] and disk.reader == "Dr. B"


def test_the_same_field_changed_in_two_windows_is_refused_by_name_and_reloaded(tmp_path):
    store_a, store_b = ReviewStore(tmp_path / "r"), ReviewStore(tmp_path / "r")
    review = Review(identity=dict(IDENT))
    AddFinding("L_CC", [(1, 1), (9, 1), (5, 8)]).apply(review)
    store_a.save(review)
    a = ReviewSession(store_a.load(IDENT), store_a)
    b = ReviewSession(store_b.load(IDENT), store_b)
    a.do(SetAssessment("L", "birads", "4A"))
    a.do(accept("F1"))
    with pytest.raises(ReviewStoreError, match="BI-RADS of the left breast") as err:
        b.do(SetAssessment("L", "birads", "2"))
    assert "\n" not in str(err.value) and "reloaded" in str(err.value)
    assert b.review.assessments["L"].birads == "4A"  # reloaded: what B sees is what is on disk
    a.do(reject("F1"))  # B reloaded above; A's next change makes it stale again
    assert b.review.findings["F1"].state == "accepted"
    with pytest.raises(ReviewStoreError, match="finding F1"):
        b.do(SetState("F1", PROPOSED))
    disk = ReviewStore(tmp_path / "r").load(IDENT)
    assert disk.assessments["L"].birads == "4A" and disk.findings["F1"].state == "rejected"
    assert b.review.to_dict() == disk.to_dict() and not b.can_undo


def test_a_stale_lock_of_a_dead_writer_is_broken_and_a_live_one_waited_for(tmp_path, monkeypatch):
    import core_model.review.store as rs
    from core_model.io.file_lock import HOST

    store = ReviewStore(tmp_path / "r")
    review = _fresh(store)
    lock = rs.lock_path(store.path_for(IDENT))
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    lock.write_text(json.dumps({"pid": dead.pid, "host": HOST, "token": "x"}))
    s = ReviewSession(review, store)
    s.do(SetReader("Dr. A"))  # the lock of a process that died is not waited for
    assert not lock.exists()
    # a lock held by a live process on another workstation: wait, then a clear message
    lock.write_text(json.dumps({"pid": 1, "host": "other-workstation", "token": "y"}))
    monkeypatch.setattr(rs, "LOCK_WAIT_S", 0.3)
    with pytest.raises(ReviewStoreError, match="another viewer is saving this review"):
        s.do(SetReader("Dr. B"))
    assert s.review.reader == "Dr. A" and lock.exists()
    # ... unless it is older than any save takes: then it is stale too
    old = time.time() - rs.LOCK_STALE_S - 5
    os.utime(lock, (old, old))
    s.do(SetReader("Dr. B"))
    assert ReviewStore(tmp_path / "r").load(IDENT).reader == "Dr. B" and not lock.exists()
