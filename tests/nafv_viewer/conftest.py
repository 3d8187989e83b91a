"""Fixtures for the viewer tests: the demo study, a hand-made Analysis and a fake analyzer."""

from __future__ import annotations

import pytest
from PySide6.QtWidgets import QApplication

from viewer_helpers import FakeAnalyzer


@pytest.fixture(scope="session")
def demo_study(demo_dir):
    from core_model.io import load_study

    return load_study(demo_dir)


@pytest.fixture
def make_window(qtbot, tmp_path):
    """Build a MainWindow with settings in tmp_path and an injectable analyzer; closed after the test."""
    from PySide6.QtCore import QSettings

    from nafv_viewer.widgets.main_window import MainWindow

    made = []

    def make(analyzer=None, **kw):
        settings = QSettings(str(tmp_path / f"settings{len(made)}.ini"), QSettings.Format.IniFormat)
        factory = (lambda: analyzer) if analyzer is not None else (lambda: FakeAnalyzer())
        w = MainWindow(analyzer_factory=factory, settings=settings, **kw)
        qtbot.addWidget(w)
        w.resize(1200, 800)
        w.show()
        made.append(w)
        return w

    yield make
    for w in made:
        w.shutdown()


@pytest.fixture
def demo_window(make_window, qtbot, demo_dir):
    w = make_window()
    with qtbot.waitSignal(w.study_ready, timeout=10000):
        w.open_study(demo_dir)
    return w


@pytest.fixture(autouse=True)
def _review_data_dir(tmp_path, monkeypatch):
    """Reviews autosave under tmp_path, never in the user's data folder."""
    monkeypatch.setenv("NAFV_DATA_DIR", str(tmp_path / "nafv-data"))


@pytest.fixture
def reviewed(demo_window, qtbot):
    """The demo study analysed by the fake analyzer: one proposed square finding per view."""
    w = demo_window
    with qtbot.waitSignal(w.analysis_finished, timeout=10000):
        w.run_analysis()
    QApplication.processEvents()
    return w
