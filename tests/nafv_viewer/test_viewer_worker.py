"""Jobs off the GUI thread: progress, result, cancel and errors arrive as signals."""

import threading

import pytest

from nafv_viewer.worker import AnalysisJob, StudyLoadJob, start_job

from viewer_helpers import FakeAnalyzer


def _run(qtbot, job, final):
    with qtbot.waitSignal(final, timeout=10000) as blocker:
        thread = start_job(job)
    qtbot.waitUntil(lambda: thread.isFinished(), timeout=5000)
    return blocker.args


def test_analysis_job_reports_progress_and_result_from_another_thread(qtbot, demo_study):
    fake = FakeAnalyzer(steps=4)
    threads, progress = [], []
    job = AnalysisJob(demo_study, lambda: (threads.append(threading.current_thread()), fake)[1])

    def record(stage, f):
        progress.append((stage, round(f, 2)))

    job.progress.connect(record)
    (analysis,) = _run(qtbot, job, job.finished)
    assert threads[0] is not threading.main_thread()
    assert progress == [("loading the model", 0.0), ("segmentation", 0.25), ("segmentation", 0.5), ("segmentation", 0.75), ("segmentation", 1.0)]
    assert analysis.malignancy_probability == pytest.approx(0.73)
    assert set(analysis.views) == {"R_CC", "L_CC", "R_MLO", "L_MLO"}


def test_analysis_job_cancel(qtbot, demo_study):
    fake = FakeAnalyzer(steps=200, delay_s=0.02)
    job = AnalysisJob(demo_study, lambda: fake)
    finished = []
    job.finished.connect(finished.append)

    def cancel_soon(stage, f):
        if f > 0.02:
            job.cancel()

    job.progress.connect(cancel_soon)
    _run(qtbot, job, job.cancelled)
    assert finished == []


def test_analysis_job_user_error_is_the_plain_message(qtbot, demo_study):
    job = AnalysisJob(demo_study, lambda: FakeAnalyzer(fail="no view has the LE image the segmentation needs"))
    (msg,) = _run(qtbot, job, job.errored)
    assert msg == "no view has the LE image the segmentation needs"


def test_analysis_job_unexpected_error_is_one_line(qtbot, demo_study):
    def broken():
        raise RuntimeError("boom")

    job = AnalysisJob(demo_study, broken)
    (msg,) = _run(qtbot, job, job.errored)
    assert "boom" in msg and "\n" not in msg


def test_study_load_job_emits_images_le_first(qtbot, demo_dir):
    job = StudyLoadJob(demo_dir)
    images = []
    job.image_ready.connect(images.append)
    (study,) = _run(qtbot, job, job.finished)
    assert len(study) == 8
    assert [(i.key, i.energy) for i in images][:4] == [("R_CC", "le"), ("L_CC", "le"), ("R_MLO", "le"), ("L_MLO", "le")]
    assert len(images) == 8


def test_study_load_job_bad_folder(qtbot, tmp_path):
    (tmp_path / "notes.txt").write_text("not an image")
    job = StudyLoadJob(tmp_path)
    (msg,) = _run(qtbot, job, job.errored)
    assert str(tmp_path) in msg or "no" in msg.lower()
    assert "Traceback" not in msg
