"""nafv-viewer --screenshot: renders offscreen, exit 0; a folder it cannot open: exit 2, one line on stderr."""

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from nafv_viewer.app import main
from viewer_helpers import FakeAnalyzer

REPO = Path(__file__).resolve().parents[2]


def _png(path):
    return np.asarray(Image.open(path).convert("RGB")).astype(int)


def test_demo_screenshot_in_process(qapp, tmp_path):
    out = tmp_path / "demo.png"
    assert main(["--demo", "--screenshot", str(out), "--size", "1000x700", "--layout", "8up", "--energy", "rc"]) == 0
    img = _png(out)
    assert img.shape == (700, 1000, 3)
    # The images are drawn: plenty of grey-level pixels left of the side panel, not a blank window.
    grid = img[60:650, :650].mean(axis=2)
    assert (grid > 60).mean() > 0.05


def test_bad_folder_exits_2_with_one_line(qapp, tmp_path, capsys):
    (tmp_path / "notes.txt").write_text("no images here")
    out = tmp_path / "never.png"
    assert main([str(tmp_path), "--screenshot", str(out)]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("nafv-viewer: ") and "\n" not in err and "Traceback" not in err
    assert not out.exists()


def test_missing_folder_exits_2_via_the_entry_point(tmp_path):
    # The real console entry point in a fresh process (what a user runs).
    env = dict(os.environ, QT_QPA_PLATFORM="offscreen")
    exe = Path(sys.executable).with_name("nafv-viewer")
    cmd = [str(exe)] if exe.exists() else [sys.executable, "-m", "nafv_viewer.app"]
    r = subprocess.run(cmd + [str(tmp_path / "nope"), "--screenshot", str(tmp_path / "x.png")], env=env, capture_output=True, text=True, timeout=60)
    assert r.returncode == 2
    lines = [ln for ln in r.stderr.splitlines() if ln.startswith("nafv-viewer:")]
    assert len(lines) == 1 and "Traceback" not in r.stderr


def test_analyze_without_weights_exits_2(qapp, tmp_path, capsys):
    missing = tmp_path / "none.safetensors"
    assert main(["--demo", "--analyze", "--seg-weights", str(missing), "--screenshot", str(tmp_path / "a.png")]) == 2
    err = capsys.readouterr().err
    assert "analysis failed" in err and "none.safetensors" in err and "Traceback" not in err


def test_several_patients_need_patient_option(qapp, tmp_path, capsys, cdd_test_dir):
    out = tmp_path / "p.png"
    assert main([str(cdd_test_dir / "images"), "--screenshot", str(out)]) == 2
    err = capsys.readouterr().err
    assert "3 patients" in err and "--patient" in err
    assert main([str(cdd_test_dir / "images"), "--patient", "P12", "--screenshot", str(out)]) == 0
    assert out.exists()


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="display detection is for Linux sessions")
def test_no_display_is_a_clear_message_not_a_qt_abort():
    env = {k: v for k, v in os.environ.items() if k not in ("DISPLAY", "WAYLAND_DISPLAY", "QT_QPA_PLATFORM")}
    r = subprocess.run([sys.executable, "-m", "nafv_viewer.app", "--demo"], env=env, capture_output=True, text=True, timeout=60)
    assert r.returncode == 2
    assert "no display found" in r.stderr and "--screenshot" in r.stderr and "Traceback" not in r.stderr


def test_screenshot_runs_never_touch_the_readers_reviews(qapp, tmp_path, monkeypatch, demo_dir):
    import nafv_viewer.app as app_module
    from core_model.io import load_study
    from core_model.review.model import ReviewSession, SetReader
    from core_model.review.store import ReviewStore, data_dir

    monkeypatch.setattr(app_module, "_analyzer_factory", lambda args: (lambda: FakeAnalyzer()))
    data = data_dir()  # under tmp_path (see conftest): stands for the reader's review folder
    env = os.environ["NAFV_DATA_DIR"]
    assert main(["--demo", "--analyze", "--screenshot", str(tmp_path / "a.png")]) == 0
    assert not data.exists() or not any(data.rglob("*"))  # no review written where the reader keeps them

    # The reader's own review of the demo study (no AI run yet): never changed, no AI proposals added.
    store = ReviewStore()
    ReviewSession(store.open(load_study(demo_dir)), store).do(SetReader("Dr. Reader"))
    before = {p: p.read_bytes() for p in data.rglob("*") if p.is_file()}
    for extra in ([], ["--review-demo"]):
        assert main(["--demo", "--analyze", "--screenshot", str(tmp_path / "b.png"), *extra]) == 0
        assert {p: p.read_bytes() for p in data.rglob("*") if p.is_file()} == before
    assert os.environ["NAFV_DATA_DIR"] == env  # and the process's own setting is left as it was


def test_an_analysis_screenshot_waits_for_the_heatmaps(qapp, tmp_path, monkeypatch):
    """The contours and score come first and the heatmaps after: the picture is taken with both."""
    import threading

    import nafv_viewer.app as app_module
    from nafv_viewer.widgets.main_window import MainWindow
    from viewer_helpers import TwoStepAnalyzer

    fake = TwoStepAnalyzer()
    threading.Timer(0.5, fake.release.set).start()  # the heatmaps take their time
    monkeypatch.setattr(app_module, "_analyzer_factory", lambda args: (lambda: fake))
    seen = []
    grab = MainWindow.grab
    monkeypatch.setattr(MainWindow, "grab", lambda self, *a: (seen.append(self.analysis.heatmap_method), grab(self, *a))[1])
    assert main(["--demo", "--analyze", "--screenshot", str(tmp_path / "a.png")]) == 0
    assert seen == ["fake Grad-CAM of P66"] and (tmp_path / "a.png").stat().st_size > 0
