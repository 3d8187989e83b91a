"""An analysis belongs to the study it was started for: never shown or saved on another patient's study."""

import threading

from viewer_helpers import make_analysis


class BlockingAnalyzer:
    """Finishes only when ``release`` is set, and ignores cancel: the worst case for a stale result."""

    def __init__(self):
        self.release = threading.Event()
        self.started = threading.Event()
        self.studies = []

    def analyze(self, study, progress=None, cancel=None, affected_side=None):
        self.studies.append(study.patient_id)
        self.started.set()
        assert self.release.wait(20)
        return make_analysis(study)


def _no_ai_on(w, patient):
    assert w.study.patient_id == patient
    assert w.analysis is None
    assert all(p.contour_count == 0 for p in w.grid.all_panels())
    review = w.review_flow.controller.review
    assert review.identity["patient_id"] == patient
    assert not review.findings and not review.ai.get("ran")
    saved = w.review_flow.path
    assert saved is None or not saved.exists() or '"origin": "ai"' not in saved.read_text()


def test_analysis_refused_while_a_study_loads(make_window, qtbot, demo_dir, cdd_test_dir):
    fake = BlockingAnalyzer()
    fake.release.set()
    w = make_window(fake)
    with qtbot.waitSignal(w.study_ready, timeout=10000):
        w.open_study(demo_dir)
    with qtbot.waitSignal(w.study_ready, timeout=10000):
        w.open_study(cdd_test_dir, patient="P12")
        w.run_analysis()  # the reader presses A while P12 is still loading
        assert not w.analysis_running
        assert "still opening" in w.statusBar().currentMessage()
    qtbot.wait(200)
    assert fake.studies == []
    _no_ai_on(w, "P12")


def _analysing_the_demo(make_window, qtbot, demo_dir):
    """A window on the demo study whose analysis has started and holds its result until released."""
    fake = BlockingAnalyzer()
    w = make_window(fake)
    with qtbot.waitSignal(w.study_ready, timeout=10000):
        w.open_study(demo_dir)
    w.run_analysis()
    return w, fake


def test_result_of_previous_study_is_dropped(make_window, qtbot, demo_dir, cdd_test_dir):
    w, fake = _analysing_the_demo(make_window, qtbot, demo_dir)
    threads = w.job_threads()
    assert fake.started.wait(10) and fake.studies == [w.study.patient_id]
    with qtbot.waitSignal(w.study_ready, timeout=10000):
        w.open_study(cdd_test_dir, patient="P12")
    assert not w.analysis_running and w.side.run_button.isEnabled()
    fake.release.set()  # the old analysis now delivers its result
    for t in threads:
        assert t.wait(10000)
    qtbot.wait(100)
    _no_ai_on(w, "P12")


def test_result_for_a_study_replaced_meanwhile_is_dropped(make_window, qtbot, demo_dir, demo_study):
    """The job is tagged with its study: a result is applied only to that study."""
    w, fake = _analysing_the_demo(make_window, qtbot, demo_dir)
    job = w.analyses.job
    assert job.study is w.study
    w.study = demo_study  # another Study object became current without the job being dropped
    fake.release.set()
    with qtbot.waitSignal(job.finished, timeout=10000):
        pass
    qtbot.wait(50)
    assert w.analysis is None and not w.analysis_running
    assert all(p.contour_count == 0 for p in w.grid.all_panels())
