"""A study folder holding a 2 GB damaged file opens, loading is cancellable, and closing never aborts."""

from __future__ import annotations

import os
import resource
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from tests.study_files import seven_images_and_a_huge_file

REPO = Path(__file__).resolve().parents[2]


def test_study_with_a_2gb_file_opens_and_the_window_closes_cleanly(make_window, qtbot, tmp_path, demo_dir):
    big = seven_images_and_a_huge_file(tmp_path / "study", demo_dir)
    w = make_window()
    t0 = time.perf_counter()
    with qtbot.waitSignal(w.study_ready, timeout=10000):
        w.open_study(tmp_path / "study")
    assert time.perf_counter() - t0 < 10.0
    assert len(w.study) == 7 and not w.study.has("L_MLO", "rc")
    assert any(msg.startswith(f"{big}: skipped") for msg in w.study.warnings)
    assert "big.dcm" in w.side.warnings_label.text()
    threads = w.job_threads()
    w.close()
    assert not any(t.isRunning() for t in threads)


def test_closing_while_a_study_loads_cancels_and_joins_the_loader(make_window, qtbot, tmp_path, demo_dir, monkeypatch):
    from core_model.io import dicom

    seven_images_and_a_huge_file(tmp_path / "study", demo_dir)
    real = dicom.read_header
    started = []

    def slow_read_header(path):
        started.append(path)
        time.sleep(0.3)  # a slow network drive: eight headers take 2.4 s
        return real(path)

    monkeypatch.setattr(dicom, "read_header", slow_read_header)
    w = make_window()
    w.open_study(tmp_path / "study")
    qtbot.waitUntil(lambda: len(started) >= 1, timeout=5000)
    threads = w.job_threads()
    assert threads and all(t.isRunning() for t in threads)
    t0 = time.perf_counter()
    w.close()
    assert time.perf_counter() - t0 < 1.5  # cancelled between files, not after the whole folder
    assert not any(t.isRunning() for t in threads)
    assert len(started) < 8


def test_a_loader_stuck_past_the_wait_outlives_its_window_without_abort(qtbot, tmp_path, demo_study):
    import threading

    from PySide6.QtCore import QSettings
    from shiboken6 import Shiboken

    from nafv_viewer import worker
    from nafv_viewer.widgets.main_window import MainWindow

    release, entered = threading.Event(), threading.Event()

    def stuck_loader(path):  # blocked in a read that no cancel reaches (a lost network drive)
        entered.set()
        release.wait(30)
        return demo_study

    # Not handed to qtbot: this test deletes the window itself.
    w = MainWindow(study_loader=stuck_loader, settings=QSettings(str(tmp_path / "s.ini"), QSettings.Format.IniFormat))
    w.open_study(tmp_path)
    qtbot.waitUntil(entered.is_set, timeout=5000)
    (thread,) = w.job_threads()
    w.shutdown(timeout_ms=100)
    w.close()
    Shiboken.delete(w)  # the window and its children are gone; the running thread must not be among them
    assert thread.isRunning() and worker.threads_still_running()
    release.set()
    qtbot.waitUntil(lambda: not worker.threads_still_running(), timeout=5000)


def test_open_error_is_one_line_with_the_skipped_files_as_details(make_window, qtbot, tmp_path):
    (tmp_path / "scan.jpg").write_bytes(b"\xff\xd8 truncated")
    Image.fromarray(np.zeros((8, 8), np.uint8)).save(tmp_path / "holiday.png")
    w = make_window()
    with qtbot.waitSignal(w.study_failed, timeout=10000) as blocker:
        w.open_study(tmp_path)
    msg = blocker.args[0]
    assert "\n" not in msg and msg.startswith(f"{tmp_path}: no usable mammogram")
    assert w.error_box.text() == msg and "\n" not in w.statusBar().currentMessage()
    assert "holiday.png" in w.error_box.detailedText()


@pytest.mark.slow
def test_viewer_process_on_a_study_with_a_2gb_file_exits_cleanly(tmp_path, demo_dir):
    seven_images_and_a_huge_file(tmp_path / "study", demo_dir)
    env = dict(os.environ, QT_QPA_PLATFORM="offscreen", NAFV_DATA_DIR=str(tmp_path / "data"))
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    r = subprocess.run([sys.executable, "-m", "nafv_viewer.app", str(tmp_path / "study"), "--screenshot",
                        str(tmp_path / "shot.png")], cwd=REPO, env=env, capture_output=True, text=True, timeout=300)
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    # CPU time of the viewer process, so other jobs on the machine cannot fail the test
    elapsed = (after.ru_utime + after.ru_stime) - (before.ru_utime + before.ru_stime)
    assert r.returncode == 0, r.stderr
    assert "QThread" not in r.stderr and "Traceback" not in r.stderr
    assert (tmp_path / "shot.png").is_file()
    assert elapsed < 30, f"took {elapsed:.1f} CPU-s"
