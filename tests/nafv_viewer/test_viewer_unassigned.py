"""Studies without view tags in the window: CBIS-DDSM-style exams hang, an image without a view waits in
the unassigned strip, a drop places it (undoable, saved), the next window hangs it; single-energy analysis."""

from __future__ import annotations

import warnings

import pytest
from PySide6.QtCore import QPoint, QPointF, Qt
from PySide6.QtGui import QDragEnterEvent, QDropEvent
from PySide6.QtWidgets import QApplication

from core_model.domain.study import VIEW_KEYS
from core_model.review.model import AssignImage
from nafv_viewer.widgets.unassigned_strip import MIME, dropped_uid
from tests.model_files import tiny_weights
from tests.study_files import cbis_ddsm_study

pytestmark = pytest.mark.qt
THREE_VIEWS = (("R", "CC"), ("L", "CC"), ("R", "MLO"))


def _open(qtbot, w, folder):
    with qtbot.waitSignal(w.study_ready, timeout=20000):
        w.open_study(folder)
    QApplication.processEvents()


def _enter(pos: QPoint, action, mime) -> QDragEnterEvent:
    with warnings.catch_warnings():
        # PySide marks the only QDragEnterEvent constructor Qt 6 has as deprecated.
        warnings.simplefilter("ignore", DeprecationWarning)
        return QDragEnterEvent(pos, action, mime, Qt.MouseButton.LeftButton, Qt.KeyboardModifier.NoModifier)


def _drop(strip, row: int, target) -> bool:
    """What a drag from the strip's ``row`` released over ``target`` delivers: enter, then drop."""
    mime = strip.drag_data(row)
    pos = QPointF(target.width() / 2, target.height() / 2)
    move, none = Qt.DropAction.MoveAction, Qt.KeyboardModifier.NoModifier
    enter = _enter(QPoint(int(pos.x()), int(pos.y())), move, mime)
    QApplication.sendEvent(target, enter)
    drop = QDropEvent(pos, move, mime, Qt.MouseButton.LeftButton, none)
    QApplication.sendEvent(target, drop)
    QApplication.processEvents()
    return enter.isAccepted() and drop.isAccepted()


def test_cbis_ddsm_exam_hangs_all_four_views(make_window, qtbot, tmp_path, demo_dir):
    cbis_ddsm_study(tmp_path / "exam", demo_dir)
    w = make_window()
    _open(qtbot, w, tmp_path / "exam")
    for key in VIEW_KEYS:
        shown = w.grid.panels4[key].images["le"]
        word = {"L": "LEFT", "R": "RIGHT"}[key[0]]
        assert shown.source.parent.name == f"Mass-Test_P_00173_{word}_{key[2:]}"
        assert w.grid.panels4[key].has_image
    assert not w.unassigned_strip.isVisible() and w.unassigned_strip.count() == 0
    assert w.last_error is None


def test_unplaced_image_is_dragged_to_its_view_and_hung_there_on_the_next_open(make_window, qtbot, tmp_path, demo_dir):
    written = cbis_ddsm_study(tmp_path / "exam", demo_dir, views=THREE_VIEWS, unplaced=1)
    w = make_window()
    _open(qtbot, w, tmp_path / "exam")
    strip, panel = w.unassigned_strip, w.grid.panels4["L_MLO"]
    uid = w.study.unassigned[0].uid
    assert uid in written
    assert strip.isVisible() and strip.uids() == [uid]
    assert dropped_uid(strip.drag_data(0)) == uid and strip.list.mimeTypes() == [MIME]
    assert not panel.has_image and "drag one here" in panel.empty_label.text()

    # The widget changes the state: a drop on the empty L-MLO panel places the image.
    assert _drop(strip, 0, panel.empty_label)
    assert panel.has_image and panel.images["le"].source.parent.name == "extra"
    assert w.grid.panels8[("L_MLO", "le")].has_image
    assert w.study.get("L_MLO", "le") is not None and not w.study.unassigned
    assert w.review_flow.controller.review.assignments == {uid: {"key": "L_MLO", "energy": "le"}}
    assert strip.count() == 0 and not strip.isVisible()

    # The state changes the widgets: undo takes the image back to the strip, redo hangs it again.
    w.review_flow.undo()
    QApplication.processEvents()
    assert not panel.has_image and strip.uids() == [uid] and strip.isVisible()
    assert w.review_flow.controller.review.assignments == {}
    w.review_flow.redo()
    QApplication.processEvents()
    assert panel.has_image and strip.count() == 0

    # A drop on a view that already has its image is refused in words; nothing moves.
    w.review_flow.undo()
    QApplication.processEvents()
    assert _drop(strip, 0, w.grid.panels4["R_CC"].graphics.viewport())
    assert "already holds" in w.statusBar().currentMessage()
    assert strip.uids() == [uid] and w.grid.panels4["R_CC"].images["le"].source.parent.name.endswith("RIGHT_CC")
    # ... and a placement made on the model (no drag) shows in the widgets too.
    assert w.review_flow.controller.push(AssignImage(uid, "L_MLO", w.study))
    QApplication.processEvents()
    assert panel.has_image and strip.count() == 0
    # Without dragging: the thumbnail's menu places it the same way.
    w.review_flow.undo()
    QApplication.processEvents()
    menu = strip.place_menu(0)
    assert [a.text() for a in menu.actions()] == ["Place on R-CC", "Place on L-CC", "Place on R-MLO", "Place on L-MLO"]
    menu.actions()[3].trigger()
    QApplication.processEvents()
    assert panel.has_image and strip.count() == 0

    # A new window opening the same study hangs the image where the reader put it.
    w.close()
    w2 = make_window()
    _open(qtbot, w2, tmp_path / "exam")
    assert w2.grid.panels4["L_MLO"].has_image
    assert w2.grid.panels4["L_MLO"].images["le"].source.parent.name == "extra"
    assert w2.unassigned_strip.count() == 0 and not w2.unassigned_strip.isVisible()
    assert w2.study.unassigned == [] and w2.study.get("L_MLO", "le") is not None
    assert w2.last_error is None  # the restored review matches the images: no "images changed" dialog
    assert w2.review_flow.controller.review.assignments == {uid: {"key": "L_MLO", "energy": "le"}}


def test_other_drops_are_the_windows(make_window, qtbot, tmp_path, demo_dir):
    from PySide6.QtCore import QMimeData, QUrl

    cbis_ddsm_study(tmp_path / "exam", demo_dir, views=THREE_VIEWS, unplaced=1)
    w = make_window()
    _open(qtbot, w, tmp_path / "exam")
    text = QMimeData()
    text.setText("L_MLO")
    target = w.grid.panels4["L_MLO"].empty_label
    enter = _enter(QPoint(5, 5), Qt.DropAction.CopyAction, text)
    QApplication.sendEvent(target, enter)
    assert not enter.isAccepted()
    assert len(w.study.unassigned) == 1

    # A folder dropped on a view still opens it, as anywhere else in the window.
    folder = QMimeData()
    folder.setUrls([QUrl.fromLocalFile(str(demo_dir))])
    enter = _enter(QPoint(5, 5), Qt.DropAction.CopyAction, folder)
    QApplication.sendEvent(target, enter)
    assert enter.isAccepted()
    with qtbot.waitSignal(w.study_ready, timeout=20000):
        QApplication.sendEvent(target, QDropEvent(QPointF(5, 5), Qt.DropAction.CopyAction, folder,
                                                  Qt.MouseButton.LeftButton, Qt.KeyboardModifier.NoModifier))
    assert w.study.patient_id == "P66" and not w.unassigned_strip.isVisible()


def test_single_energy_study_opens_and_the_ai_action_says_what_it_lacks(make_window, qtbot, ffdm_dir, tmp_path):
    from core_model.inference.analyzer import Analyzer

    paths = tiny_weights(tmp_path)
    w = make_window(analyzer=Analyzer(paths["seg"], paths["cls"], device="cpu", num_threads=1))
    _open(qtbot, w, ffdm_dir)
    assert all(w.grid.panels4[k].has_image for k in VIEW_KEYS)
    assert not w.grid.panels8[("L_CC", "rc")].has_image
    with qtbot.waitSignal(w.analysis_failed, timeout=60000) as blocker:
        w.run_analysis()
    assert blocker.args[0] == ("the analysis needs the recombined (RC) images of a contrast-enhanced study and found "
                               "none; this is a single-energy study (digital mammography without contrast), so it "
                               "can be read but not analysed.")
    assert "Traceback" not in w.statusBar().currentMessage() and "unexpectedly" not in w.last_error
