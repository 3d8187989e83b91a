"""The controllers work without a window: opening studies and running the analysis, reported as signals."""

from __future__ import annotations

import threading

import pytest
from PySide6.QtCore import QSettings

from nafv_viewer.controllers.analysis_controller import AnalysisController
from nafv_viewer.controllers.study_controller import MAX_RECENT, StudyController
from viewer_helpers import FakeAnalyzer, TwoStepAnalyzer

pytestmark = pytest.mark.qt


@pytest.fixture
def settings(tmp_path):
    return QSettings(str(tmp_path / "settings.ini"), QSettings.Format.IniFormat)


@pytest.fixture
def shut_down():
    """Controllers to cancel and join after the test: a job thread must never outlive its controller."""
    made = []
    yield made.append
    for c in made:
        c.shutdown(10000)


def test_study_controller_opens_a_folder_and_remembers_it(qtbot, settings, demo_dir, shut_down):
    st = StudyController(settings)
    shut_down(st)
    images, recent = [], []
    st.image_ready.connect(images.append)
    st.recent_changed.connect(recent.append)
    with qtbot.waitSignal(st.study_ready, timeout=10000) as blocker:
        st.open(demo_dir, first_energy="rc")
    study = blocker.args[0]
    assert st.study is study and st.path == demo_dir and not st.loading
    assert len(images) == 8 and [i.energy for i in images[:4]] == ["rc"] * 4  # the energy on screen first
    assert recent == [[str(demo_dir.resolve())]] and st.recent_studies() == [str(demo_dir.resolve())]
    assert 0 < st.load_timings["first_image_s"] <= st.load_timings["all_images_s"]


def test_study_controller_failure_is_one_message_and_the_recent_list_is_bounded(qtbot, settings, tmp_path, shut_down):
    st = StudyController(settings)
    shut_down(st)
    with qtbot.waitSignal(st.failed, timeout=10000) as blocker:
        st.open(tmp_path)  # no images at all
    assert blocker.args[0].startswith(str(tmp_path)) and "Traceback" not in blocker.args[0]
    assert st.study is None and st.recent_studies() == []
    for i in range(MAX_RECENT + 2):
        st.remember(tmp_path / f"s{i}")
    assert len(st.recent_studies()) == MAX_RECENT and st.recent_studies()[0].endswith(f"s{MAX_RECENT + 1}")
    st.remember_server(" http://pacs:8042/dicom-web ")
    assert StudyController(settings).server_url() == "http://pacs:8042/dicom-web"


def test_analysis_controller_result_names_its_study(qtbot, demo_study, shut_down):
    an = AnalysisController(lambda: FakeAnalyzer())
    shut_down(an)
    stages = []
    an.progress.connect(lambda stage, fraction: stages.append((stage, fraction)))
    with qtbot.waitSignal(an.finished, timeout=10000) as blocker:
        assert an.run(demo_study, affected_side="R")
        assert an.running and not an.run(demo_study)  # one run at a time
    study, analysis = blocker.args
    assert study is demo_study and analysis.affected_side == "R" and analysis.affected_side_source == "caller"
    assert stages[0] == ("loading the model", 0.0) and stages[-1] == ("segmentation", 1.0)
    assert not an.running and an.analyzer is not None


def test_analysis_controller_cancel_and_drop(qtbot, demo_study, shut_down):
    hold = threading.Event()
    an = AnalysisController(lambda: FakeAnalyzer(hold=hold))
    shut_down(an)
    with qtbot.waitSignal(an.cancelled, timeout=10000):
        an.run(demo_study)
        assert an.cancel()
    assert not an.running and not an.cancel()
    heard = []
    for name in ("finished", "failed", "cancelled", "progress"):
        getattr(an, name).connect(lambda *a, name=name: heard.append(name))

    class Deaf(FakeAnalyzer):  # finishes its work whatever the cancel says, as a model mid-layer does
        def analyze(self, study, progress=None, cancel=None, affected_side=None):
            return super().analyze(study, progress, None, affected_side)

    an.analyzer = None
    an.analyzer_factory = lambda: Deaf(hold=hold)
    an.run(demo_study)
    threads = list(an.threads.running)
    assert an.drop() and not an.running  # forgotten at once: whatever it still sends is ignored
    heard.clear()
    hold.set()
    assert all(t.wait(10000) for t in threads)
    qtbot.wait(100)
    assert heard == []  # its result, progress and end went nowhere


def test_analysis_controller_result_first_then_heatmaps(qtbot, demo_study, shut_down):
    fake = TwoStepAnalyzer()
    an = AnalysisController(lambda: fake)
    shut_down(an)
    heard = []
    an.finished.connect(lambda s, a: heard.append("result"))
    an.heatmaps_ready.connect(lambda s, h: heard.append(h.method))
    an.progress.connect(lambda stage, f: heard.append(stage) if stage == "heatmaps" else None)
    with qtbot.waitSignal(an.finished, timeout=10000) as blocker:
        an.run(demo_study)
    assert blocker.args[0] is demo_study and an.running  # the run goes on with the heatmaps
    assert not an.run(demo_study)
    with qtbot.waitSignal(an.heatmaps_ready, timeout=10000):
        fake.release.set()
    assert heard == ["result", "heatmaps", f"fake Grad-CAM of {demo_study.patient_id}"] and not an.running

    # cancelled while the heatmaps run: the result stands, only the heatmaps are dropped
    fake.release.clear()
    heard.clear()
    an.cancelled.connect(lambda: heard.append("cancelled"))
    with qtbot.waitSignal(an.finished, timeout=10000):
        an.run(demo_study)
    with qtbot.waitSignal(an.heatmaps_dropped, timeout=10000) as blocker:
        assert an.cancel()
    assert blocker.args[0] == "heatmaps cancelled" and heard == ["result"] and not an.running
