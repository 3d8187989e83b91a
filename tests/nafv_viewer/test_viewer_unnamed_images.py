"""A folder of JPEGs where one name gives no view: the image waits in the strip, the reader places it,
and the next window hangs it there (the choice is keyed by the image's content)."""

from __future__ import annotations

import pytest
from PySide6.QtWidgets import QApplication

pytestmark = pytest.mark.qt


def _open(qtbot, w, folder):
    with qtbot.waitSignal(w.study_ready, timeout=20000):
        w.open_study(folder)
    QApplication.processEvents()


def _folder(tmp_path, demo_dir):
    folder = tmp_path / "exam"
    folder.mkdir()
    for p in sorted(demo_dir.glob("*.jpg")):
        if "_L_DM_MLO" in p.name:
            (folder / "export 7.jpg").write_bytes(p.read_bytes())  # the name says nothing
        else:
            (folder / p.name).write_bytes(p.read_bytes())
    return folder


def test_unnamed_jpeg_is_placed_and_hung_on_reopen(make_window, qtbot, tmp_path, demo_dir):
    folder = _folder(tmp_path, demo_dir)
    w = make_window()
    _open(qtbot, w, folder)
    strip, panel = w.unassigned_strip, w.grid.panels4["L_MLO"]
    assert strip.isVisible() and strip.count() == 1
    [waiting] = w.study.unassigned
    assert waiting.source.name == "export 7.jpg" and waiting.uid.startswith("sha1:")
    assert not panel.has_image and w.grid.panels8[("L_MLO", "rc")].has_image

    strip.place_menu(0).actions()[3].trigger()  # "Place on L-MLO"
    QApplication.processEvents()
    assert panel.has_image and panel.images["le"].source.name == "export 7.jpg"
    assert w.review_flow.controller.review.assignments == {waiting.uid: {"key": "L_MLO", "energy": "le"}}
    w.close()

    w2 = make_window()
    _open(qtbot, w2, folder)
    assert w2.grid.panels4["L_MLO"].has_image and w2.unassigned_strip.count() == 0
    assert w2.grid.panels4["L_MLO"].images["le"].source.name == "export 7.jpg"
    assert w2.last_error is None
