"""A process editing a review is SIGKILLed mid-session: reopening loses at most the change in flight.

The child applies numbered changes in a loop and prints each revision after
``ReviewSession.do`` returned (i.e. after the save). The parent reads the file
while the child writes (it must always parse), kills the child at a different
moment each round, and checks that the saved review is exactly the state after
the last acknowledged change or the one after it, with every field consistent.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
import time

import pytest

from core_model.review.model import Review
from core_model.review.store import ReviewStore

pytestmark = pytest.mark.skipif(not hasattr(signal, "SIGKILL"), reason="needs POSIX SIGKILL")

CHILD = textwrap.dedent(
    """
    from core_model.review.model import Review, ReviewSession, AddFinding, MoveVertex, SetAssessment
    from core_model.review.store import ReviewStore

    ident = {"patient_id": "P1", "study_id": "S1", "digest": "d" * 64, "key": "P1_S1_kill"}
    store = ReviewStore()
    review = store.load(ident) or Review(identity=ident)
    if not review.findings:
        # many long contours so that each save takes long enough to be killed mid-write
        for k in range(60):
            AddFinding("L_CC", [(k + i * 0.25, 2.0 * i) for i in range(80)]).apply(review)
        store.save(review)
    s = ReviewSession(review, store)
    print("ready", review.revision, flush=True)
    while True:
        n = review.revision + 1  # the revision this change is saved as
        if n % 2 == 0:
            s.do(MoveVertex("F1", n % 80, (float(n), float(-n))))
        else:
            s.do(SetAssessment("L", "text", f"change {n}"))
        print(review.revision, flush=True)  # acknowledged: do() returned, so it is on disk
    """
)
SETUP = 0  # the findings are created and saved as revision 0


def _consistent(review: Review) -> None:
    """The saved state is one the child reached: latest contour move and latest text match the revision."""
    r = review.revision
    assert r > SETUP + 1
    m = r if r % 2 == 0 else r - 1
    t = r if r % 2 == 1 else r - 1
    assert review.findings["F1"].polygon[m % 80] == (float(m), float(-m))
    assert review.assessments["L"].text == f"change {t}"


def test_kill_mid_session_loses_at_most_the_change_in_flight(tmp_path):
    env = dict(os.environ, NAFV_DATA_DIR=str(tmp_path), PYTHONUNBUFFERED="1")
    store = ReviewStore(tmp_path / "reviews")
    ident = {"patient_id": "P1", "study_id": "S1", "digest": "d" * 64, "key": "P1_S1_kill"}
    path = store.path_for(ident)
    revisions = []
    for wait_lines, extra_s in ((5, 0.0), (12, 0.004), (20, 0.011)):
        proc = subprocess.Popen([sys.executable, "-c", CHILD], env=env, stdout=subprocess.PIPE, text=True)
        try:
            first = proc.stdout.readline().split()
            assert first[0] == "ready", first
            for _ in range(wait_lines):
                int(proc.stdout.readline())
                # a concurrent reader never sees a torn file
                Review.from_dict(json.loads(path.read_text()))
            time.sleep(extra_s)  # land at different points of a write
            os.kill(proc.pid, signal.SIGKILL)
            rest = proc.stdout.read().split()  # what it acknowledged before dying
            proc.wait(timeout=10)
        finally:
            if proc.poll() is None:
                proc.kill()
            proc.stdout.close()
        assert proc.returncode == -signal.SIGKILL
        acked = int(rest[-1]) if rest else None
        restored = store.load(ident)  # parses: the file is never corrupt
        assert restored is not None and len(restored.findings) == 60
        if acked is not None:
            # every acknowledged change survived; at most the one in flight went further
            assert acked <= restored.revision <= acked + 1
        _consistent(restored)
        revisions.append(restored.revision)
    assert revisions[0] < revisions[1] < revisions[2]  # each round resumed from the restored review
    # stale temp files of a killed writer are cleared when the study is opened again
    assert [p.name for p in path.parent.iterdir()] == [path.name]


WRITER = textwrap.dedent(
    """
    import hashlib, sys
    from pathlib import Path
    from core_model.io.atomic import write_bytes

    target = Path(sys.argv[1])
    n = 0
    while True:
        n += 1
        body = bytes([n % 251]) * (4 << 20)  # 4 MiB: a write long enough to be killed inside it
        write_bytes(target, f"{n} {hashlib.sha256(body).hexdigest()}\\n".encode() + body)
        print(n, flush=True)
    """
)


def test_atomic_write_killed_mid_write_leaves_old_or_new_file_whole(tmp_path):
    import hashlib

    target = tmp_path / "blob.bin"
    mid_write = 0
    for delay in (0.002, 0.006, 0.010, 0.014, 0.018, 0.004):
        proc = subprocess.Popen([sys.executable, "-c", WRITER, str(target)], stdout=subprocess.PIPE, text=True)
        try:
            acked = int(proc.stdout.readline())
            time.sleep(delay)
            os.kill(proc.pid, signal.SIGKILL)
            rest = proc.stdout.read().split()
            proc.wait(timeout=10)
        finally:
            if proc.poll() is None:
                proc.kill()
            proc.stdout.close()
        acked = int(rest[-1]) if rest else acked
        mid_write += any(tmp_path.glob(".blob.bin.*.tmp"))
        data = target.read_bytes()
        header, _, body = data.partition(b"\n")
        n, digest = header.decode().split()
        assert hashlib.sha256(body).hexdigest() == digest and len(body) == 4 << 20
        assert acked <= int(n) <= acked + 1
        for t in tmp_path.glob(".blob.bin.*.tmp"):
            t.unlink()
    print(f"killed inside a write {mid_write} of 6 times")
