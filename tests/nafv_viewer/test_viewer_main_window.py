"""The real reading window driven like a reader would: open, switch, zoom, window, analyse, cancel, errors."""

import threading

import numpy as np
import pytest
from PySide6.QtCore import QPoint, QPointF, Qt
from PySide6.QtWidgets import QApplication

from core_model.domain.study import VIEW_KEYS
from nafv_viewer.state import PRESETS

from viewer_helpers import FakeAnalyzer, send_drag


def _key(qtbot, w, key, modifier=Qt.KeyboardModifier.NoModifier):
    qtbot.keyClick(w, key, modifier)
    QApplication.processEvents()


def test_demo_opens_in_hanging_order(demo_window):
    w = demo_window
    assert w.study is not None and len(w.study) == 8
    assert w.load_timings["first_image_s"] <= w.load_timings["all_images_s"]
    for key in VIEW_KEYS:
        p = w.grid.panels4[key]
        assert p.has_image and p.shown_energy == "le"
        # Chest walls meet in the middle: the breast's chest-wall edge is on the panel's inner edge.
        bx0, by0, bx1, by1 = p.current.tissue_box
        img = p.current.levels[0]
        cols = (img > 20).mean(axis=0)
        r = p.vb.viewRect()
        if p.side == "R":
            assert cols[int(bx1) - 3] > 0.5 > cols[int(bx0) + 3]  # tall tissue at the chest wall, tip at the nipple
            assert 0 < r.right() - bx1 < 0.05 * r.width() and r.left() < bx0
        else:
            assert cols[int(bx0) + 3] > 0.5 > cols[int(bx1) - 3]
            assert 0 < bx0 - r.left() < 0.05 * r.width() and r.right() > bx1
    # The grid lays the panels out R | L, CC over MLO.
    pos = {k: w.grid.panels4[k].mapTo(w, QPoint(0, 0)) for k in VIEW_KEYS}
    assert pos["R_CC"].x() < pos["L_CC"].x() and pos["R_MLO"].x() < pos["L_MLO"].x()
    assert pos["R_CC"].y() < pos["R_MLO"].y()


def test_energy_key_switches_images_keeping_geometry(demo_window, qtbot):
    w = demo_window
    p = w.grid.panels4["L_CC"]
    p.zoom_by(0.5)
    QApplication.processEvents()
    before = p.vb.viewRect()
    le_shown = np.array(p.image_item.image, copy=True)
    assert p.drawn.image is p.images["le"]
    _key(qtbot, w, Qt.Key.Key_E)
    assert w.state.energy == "rc" and p.shown_energy == "rc"
    assert p.current is w.grid.panels8[("L_CC", "rc")].current
    # Same place, same zoom. A relayout of the window may resize the view by a pixel or
    # two, and the locked aspect ratio then grows the range by as much: allow that.
    after = p.vb.viewRect()
    assert abs(after.center().x() - before.center().x()) < 1.5 and abs(after.center().y() - before.center().y()) < 1.5
    assert after.width() == pytest.approx(before.width(), abs=3) and after.height() == pytest.approx(before.height(), abs=3)
    assert p.title.text().endswith("RC")
    assert p.drawn.image is p.images["rc"]
    rc_shown = p.image_item.image
    assert rc_shown.shape == le_shown.shape and not np.array_equal(rc_shown, le_shown)


def test_layout_keys_switch_between_4up_8up_1up(demo_window, qtbot):
    w = demo_window
    _key(qtbot, w, Qt.Key.Key_8)
    assert w.state.layout == "8up" and w.grid.currentWidget() is w.grid.page8
    assert all(p.isVisible() and p.has_image for p in w.grid.panels8.values())
    assert {p.shown_energy for p in w.grid.panels8.values()} == {"le", "rc"}
    w.state.active_view = "L_MLO"
    _key(qtbot, w, Qt.Key.Key_1)
    assert [p.key for p in w.grid.visible_panels()] == ["L_MLO"]
    assert not w.grid.panels4["R_CC"].isVisible() and w.grid.panels4["L_MLO"].isVisible()
    _key(qtbot, w, Qt.Key.Key_L)  # cycles back to 4-up
    assert w.state.layout == "4up" and all(p.isVisible() for p in w.grid.panels4.values())


def test_synced_zoom_is_mirrored_between_breasts_and_can_be_switched_off(demo_window, qtbot):
    w = demo_window
    g = w.grid
    src = g.panels4["R_CC"]
    src.set_manual_range((0.5, 0.2, 1.0, 0.6))  # zoom onto the right half: near the R chest wall
    box = src.normalized_range()
    other = g.panels4["L_CC"].normalized_range()
    # Mirrored: the L panel shows its left half, near its own chest wall.
    assert other[0] == pytest.approx(1 - box[2], abs=0.02) and other[2] == pytest.approx(1 - box[0], abs=0.02)
    same = g.panels4["R_MLO"].normalized_range()
    assert same[0] == pytest.approx(box[0], abs=0.05)
    # The RC panel of the same view (8-up, hidden now, so its aspect differs) centres on the same place.
    rc = g.panels8[("R_CC", "rc")].normalized_range()
    assert (rc[0] + rc[2]) / 2 == pytest.approx((box[0] + box[2]) / 2, abs=0.02)
    assert (rc[1] + rc[3]) / 2 == pytest.approx((box[1] + box[3]) / 2, abs=0.02)

    _key(qtbot, w, Qt.Key.Key_Y)
    assert w.state.sync is False
    before = g.panels4["L_CC"].normalized_range()
    src.zoom_by(0.5)
    assert g.panels4["L_CC"].normalized_range() == pytest.approx(before)
    le, now = g.panels8[("R_CC", "le")].normalized_range(), src.normalized_range()
    assert (le[0] + le[2]) / 2 == pytest.approx((now[0] + now[2]) / 2, abs=0.02)  # same view stays linked

    _key(qtbot, w, Qt.Key.Key_Home)  # reset fits every panel again
    r = src.vb.viewRect()
    assert r.right() == pytest.approx(src.current.tissue_box[2], abs=0.05 * r.width())
    assert src.fitted and g.panels4["L_CC"].fitted


def _right_drag(panel, dx, dy):
    view = panel.graphics.viewport()
    start = QPointF(view.width() / 2, view.height() / 2)
    send_drag(view, start, start + QPointF(dx, dy), Qt.MouseButton.RightButton)


def test_window_level_by_drag_presets_and_invert(demo_window, qtbot):
    w = demo_window
    p = w.grid.panels4["R_CC"]
    lo0, hi0 = p.image_item.levels
    _right_drag(p, 120, 0)  # to the right: wider window
    win = w.state.windows["le"]
    assert win.width > 1.0 and win.center == pytest.approx(0.5)
    lo1, hi1 = p.image_item.levels
    assert hi1 - lo1 > hi0 - lo0
    assert w.state.windows["rc"].width == pytest.approx(1.0)  # per energy
    assert w.side.window_label.text().startswith("LE: level 0.50")
    _key(qtbot, w, Qt.Key.Key_F6)  # second LE preset
    assert (w.state.windows["le"].center, w.state.windows["le"].width) == PRESETS["le"]["Dense breast"]
    assert w.side.preset_combo.currentText() == "Dense breast"
    _key(qtbot, w, Qt.Key.Key_I)
    lo2, hi2 = p.image_item.levels
    assert w.state.invert and lo2 > hi2  # inverted grey scale
    _key(qtbot, w, Qt.Key.Key_Home)
    assert not w.state.invert and w.state.windows["le"].width == 1.0
    _key(qtbot, w, Qt.Key.Key_Up)  # keyboard window/level
    _key(qtbot, w, Qt.Key.Key_Left)
    assert w.state.windows["le"].center == pytest.approx(0.45) and w.state.windows["le"].width < 1.0
    before = p.vb.viewRect()
    _key(qtbot, w, Qt.Key.Key_Right, Qt.KeyboardModifier.ShiftModifier)  # keyboard pan, active view R-CC
    assert p.vb.viewRect().left() == pytest.approx(before.left() + 0.1 * before.width(), rel=1e-3)


def test_cursor_readout_and_magnifier(demo_window, qtbot):
    w = demo_window
    p = w.grid.panels4["R_CC"]
    w.state.magnifier = True
    img = p.current
    # Scene position of original pixel (200, 300) (R image, not flipped: same place).
    scene = p.vb.mapViewToScene(QPointF(200.5, 300.5))
    p._on_mouse_moved(scene)
    expected = img.raw[300, 200]
    assert w.cursor_label.text() == f"R-CC  LE  x=200 y=300  value={expected:g}"
    assert p.magnifier.isVisible() and p.magnifier.pixmap().width() == 180


def test_analysis_overlays_and_side_panel(demo_window, qtbot):
    w = demo_window
    with qtbot.waitSignal(w.analysis_finished, timeout=10000):
        qtbot.mouseClick(w.side.run_button, Qt.MouseButton.LeftButton)
    assert not w.analysis_running and w.side.progress.value() == 1000
    for key in VIEW_KEYS:
        assert w.grid.panels4[key].contour_count == 1
        assert w.grid.panels4[key].heatmap_visible  # LE shown
        assert w.grid.panels8[(key, "rc")].contour_count == 1
        assert not w.grid.panels8[(key, "rc")].heatmap_visible  # heatmap only on LE
    # The contour sits on the lesion: polygon x 0.3..0.4 of the width; an L image is not flipped here.
    curve = next(i for i in w.grid.panels4["L_CC"].contour_items if hasattr(i, "xData"))
    wd = w.grid.panels4["L_CC"].current.shape[1]
    assert curve.xData.min() == pytest.approx(0.3 * wd + 0.5, abs=1)
    text = w.side.result_label.text()
    assert "Model score:</b> 0.73 on a 0–1 scale (uncalibrated model score, not a probability of cancer;" in text
    assert "left breast" in text and "not a diagnosis" in text and "Malignancy probability" not in text and "%" not in text
    assert w.side.notice_label.isVisible() and "not for clinical use" in w.side.notice_label.text()
    assert "nafv_seg_test" in w.side.model_label.text() and "abababababab" in w.side.model_label.text()
    # Toggles and opacity.
    _key(qtbot, w, Qt.Key.Key_C)
    assert w.grid.panels4["R_CC"].contour_count == 0
    _key(qtbot, w, Qt.Key.Key_H)
    assert not w.grid.panels4["R_CC"].heatmap_visible
    _key(qtbot, w, Qt.Key.Key_H)
    w.side.opacity_slider.setValue(80)
    assert w.state.heatmap_opacity == pytest.approx(0.8)
    assert w.grid.panels4["R_CC"].heat_item.opacity() == pytest.approx(0.8)
    _key(qtbot, w, Qt.Key.Key_E)  # RC: contours stay, heatmap goes
    assert not w.grid.panels4["R_CC"].heatmap_visible


def _demo_analysed(make_window, qtbot, demo_dir):
    """A window on the demo study after one analysis by a FakeAnalyzer (returned too, to see what it was asked)."""
    fake = FakeAnalyzer(steps=1)
    w = make_window(analyzer=fake)
    with qtbot.waitSignal(w.study_ready, timeout=10000):
        w.open_study(demo_dir)
    with qtbot.waitSignal(w.analysis_finished, timeout=10000):
        w.run_analysis()
    return w, fake


def test_reader_chooses_the_affected_breast_for_the_next_run(make_window, qtbot, demo_dir, cdd_test_dir):
    w, fake = _demo_analysed(make_window, qtbot, demo_dir)
    assert fake.sides_asked == [None]  # by default the analysis decides
    assert "left breast (decided from the segmentation)" in w.side.result_label.text()
    w.side.side_combo.setCurrentIndex(w.side.side_combo.findData("R"))
    with qtbot.waitSignal(w.analysis_finished, timeout=10000):
        qtbot.mouseClick(w.side.run_button, Qt.MouseButton.LeftButton)
    assert fake.sides_asked == [None, "R"]
    text = w.side.result_label.text()
    assert "right breast (chosen by the reader)" in text and "; for the right breast" in text
    # the review (what the report is made from) follows the latest run; the reader's findings are not duplicated
    review = w.review_flow.controller.review
    assert review.ai["affected_side"] == "R" and review.ai["affected_side_source"] == "caller"
    assert len(review.findings) == len(VIEW_KEYS)  # one proposal per view from the first run, none added
    saved = w.review_flow.path.read_text()
    assert '"affected_side": "R"' in saved and '"affected_side_source": "caller"' in saved
    # changing the choice after a run says the results on screen are not yet for it
    w.side.side_combo.setCurrentIndex(w.side.side_combo.findData("L"))
    assert "run the analysis again" in w.side.stage()
    w.side.side_combo.setCurrentIndex(w.side.side_combo.findData("R"))
    # reopening the study, with auto-analyse on, keeps the reader's choice: on screen, in the run, on disk
    w.state.auto_analyze = True
    with qtbot.waitSignal(w.analysis_finished, timeout=10000):
        w.open_study(demo_dir)
    assert w.side.affected_side_choice() == "R" and fake.sides_asked[-1] == "R"
    assert w.review_flow.controller.review.ai["affected_side_source"] == "caller"
    w.state.auto_analyze = False
    # a choice made for one patient does not carry over to the next study; a breast without views cannot be chosen
    with qtbot.waitSignal(w.study_ready, timeout=10000):
        w.open_study(cdd_test_dir, patient="P12")
    assert w.side.affected_side_choice() is None
    items = w.side.side_combo.model()
    assert items.item(w.side.side_combo.findData("L")).isEnabled()
    assert not items.item(w.side.side_combo.findData("R")).isEnabled()  # P12: left breast only


def test_a_run_by_another_segmentation_keeps_the_reviews_ai_summary(make_window, qtbot, demo_dir):
    w, fake = _demo_analysed(make_window, qtbot, demo_dir)
    review = w.review_flow.controller.review
    review.ai["models"]["segmentation"]["weights_sha256"] = "cd" * 32  # the findings came from other weights
    revision = review.revision
    w.side.side_combo.setCurrentIndex(w.side.side_combo.findData("R"))
    with qtbot.waitSignal(w.analysis_finished, timeout=10000):
        w.run_analysis()
    assert review.ai["affected_side"] == "L" and review.revision == revision  # not mixed with this run's summary
    assert "another segmentation run" in w.statusBar().currentMessage()


def test_analysis_cancel_keeps_the_window_usable(make_window, qtbot, demo_dir):
    hold = threading.Event()  # never set: the analysis cannot finish before the cancel, however slow the machine
    fake = FakeAnalyzer(steps=5, hold=hold)
    w = make_window(analyzer=fake)
    with qtbot.waitSignal(w.study_ready, timeout=10000):
        w.open_study(demo_dir)
    w.run_analysis()
    assert w.side.cancel_button.isEnabled() and not w.side.run_button.isEnabled()
    assert not w.side.side_combo.isEnabled()  # a change now would not apply to this run
    qtbot.waitUntil(lambda: w.side.progress.value() > 0, timeout=5000)
    _key(qtbot, w, Qt.Key.Key_E)  # the UI answers while the analysis runs
    assert w.state.energy == "rc"
    with qtbot.waitSignal(w.analysis_cancelled, timeout=5000):
        qtbot.mouseClick(w.side.cancel_button, Qt.MouseButton.LeftButton)
    assert w.analysis is None and w.side.run_button.isEnabled() and w.side.side_combo.isEnabled()
    assert all(p.contour_count == 0 for p in w.grid.all_panels())
    assert w.side.stage() == "cancelled"


def test_analysis_error_is_shown(make_window, qtbot, demo_dir):
    w = make_window(analyzer=FakeAnalyzer(fail="weights file not found"))
    with qtbot.waitSignal(w.study_ready, timeout=10000):
        w.open_study(demo_dir)
    with qtbot.waitSignal(w.analysis_failed, timeout=5000):
        w.run_analysis()
    assert w.last_error == "weights file not found" and w.error_box.isVisible()


def test_bad_folder_shows_error_and_keeps_the_study(demo_window, qtbot, tmp_path):
    w = demo_window
    (tmp_path / "scan.jpg").write_bytes(b"\xff\xd8 truncated")
    with qtbot.waitSignal(w.study_failed, timeout=10000) as blocker:
        w.open_study(tmp_path)
    msg = blocker.args[0]
    assert msg and "Traceback" not in msg
    assert w.error_box.isVisible() and w.error_box.text() == msg
    assert w.isVisible() and w.study.patient_id == "P66"
    assert all(p.has_image for p in w.grid.panels4.values())
    w.error_box.accept()
    w.activateWindow()
    qtbot.waitUntil(w.isActiveWindow, timeout=2000)
    _key(qtbot, w, Qt.Key.Key_E)
    assert w.grid.panels4["R_CC"].shown_energy == "rc"


def test_missing_views_show_the_reason(make_window, qtbot, demo_dir, tmp_path):
    import shutil

    for f in demo_dir.glob("P66_L_*"):
        shutil.copy(f, tmp_path / f.name)
    shutil.copy(demo_dir / "P66_R_DM_CC.jpg", tmp_path)
    w = make_window()
    with qtbot.waitSignal(w.study_ready, timeout=10000):
        w.open_study(tmp_path)
    r_mlo = w.grid.panels4["R_MLO"]
    assert not r_mlo.has_image and r_mlo.empty_label.isVisible()
    assert "Not in this study" in r_mlo.empty_label.text() and "R-MLO" in r_mlo.empty_label.text()
    _key(qtbot, w, Qt.Key.Key_E)
    r_cc = w.grid.panels4["R_CC"]
    assert not r_cc.has_image and "recombined (RC) image of the R-CC view" in r_cc.empty_label.text()
    assert w.grid.panels4["L_CC"].has_image


def test_recent_studies_and_shortcut_help(demo_window, qtbot, demo_dir):
    w = demo_window
    assert w.recent_studies()[0] == str(demo_dir.resolve())
    assert [a.text() for a in w.recent_menu.actions()] == [str(demo_dir.resolve())]
    dlg = w.show_shortcuts()
    keys = [k for k, _ in dlg.rows()]
    for needed in ["E", "L", "8", "Y", "I", "R", "M", "B", "W", "A", "Home", "Ctrl+Return", "N", "P", "Esc", "C", "H", "F1", "Ctrl+O"]:
        assert needed in keys
    assert len(keys) == len(set(keys))
    dlg.close()


def test_blink_and_swipe_compare_le_with_rc(demo_window, qtbot):
    w = demo_window
    p = w.grid.panels4["R_CC"]
    _key(qtbot, w, Qt.Key.Key_B)
    assert w.state.compare == "blink" and w.grid.blink_timer.isActive()
    le_pixels = np.array(p.image_item.image, copy=True)
    # The timer alternates the energies: RC comes, said in the title, then LE again.
    qtbot.waitUntil(lambda: p.shown_energy == "rc", timeout=5000)
    assert p.title.text().endswith("(blink)") and not np.array_equal(p.image_item.image, le_pixels)
    qtbot.waitUntil(lambda: p.shown_energy == "le", timeout=5000)
    assert not p.title.text().endswith("(blink)")
    _key(qtbot, w, Qt.Key.Key_W)
    assert w.state.compare == "swipe" and not w.grid.blink_timer.isActive()
    assert p.shown_energy == "le" and p.swipe_item.isVisible()
    x, _, width, _ = p.swipe_item.mapRectToParent(p.swipe_item.boundingRect()).getRect()
    assert x == pytest.approx(0.5 * p.current.shape[1], abs=2)
    w.state.swipe_position = 0.25
    x, _, _, _ = p.swipe_item.mapRectToParent(p.swipe_item.boundingRect()).getRect()
    assert x == pytest.approx(0.25 * p.current.shape[1], abs=2)
    _key(qtbot, w, Qt.Key.Key_W)
    assert not p.swipe_item.isVisible()


def test_drop_a_folder_and_analyse_automatically(make_window, qtbot, demo_dir, tmp_path):
    from PySide6.QtCore import QMimeData, QUrl
    from PySide6.QtGui import QDropEvent

    w = make_window()
    w.side.auto_check.setChecked(True)  # the setting, as a reader sets it
    assert w.state.auto_analyze and w.settings.value("auto_analyze", type=bool)
    mime = QMimeData()
    mime.setUrls([QUrl.fromLocalFile(str(demo_dir / "P66_L_DM_CC.jpg"))])  # a file: its folder opens
    ev = QDropEvent(QPointF(50, 50), Qt.DropAction.CopyAction, mime, Qt.MouseButton.LeftButton, Qt.KeyboardModifier.NoModifier)
    with qtbot.waitSignal(w.analysis_finished, timeout=15000):
        w.dropEvent(ev)
    assert w.study.patient_id == "P66" and w.study_path == demo_dir
    assert w.grid.panels4["L_CC"].contour_count == 1


def test_folder_of_several_patients_asks_which(make_window, qtbot, cdd_test_dir):
    w = make_window()
    with qtbot.waitSignal(w.patients_offered, timeout=10000) as blocker:
        w.open_study(cdd_test_dir / "images")
    assert sorted(blocker.args[0]) == ["P102", "P106", "P12"]
    assert w.patient_box.isVisible()
    with qtbot.waitSignal(w.study_ready, timeout=10000):
        w.patient_box.setTextValue("P106")
        w.patient_box.accept()
    assert w.study.patient_id == "P106"
    # P106 has only the left MLO: every other slot says it is missing.
    assert w.grid.panels4["L_MLO"].has_image and not w.grid.panels4["R_CC"].has_image


def test_reader_can_correct_a_badly_hung_view(demo_window, qtbot):
    w = demo_window
    w.state.active_view = "L_MLO"
    p = w.grid.panels4["L_MLO"]
    before = np.array(p.current.levels[0])
    _key(qtbot, w, Qt.Key.Key_H, Qt.KeyboardModifier.ControlModifier)
    img = p.current
    assert img.flips.source == "reader" and img.flips.horizontal and not img.flips.vertical
    np.testing.assert_array_equal(img.levels[0], before[:, ::-1])
    rc = w.grid.panels8[("L_MLO", "rc")].current
    assert rc.flips == img.flips  # LE and RC keep the same geometry
    _key(qtbot, w, Qt.Key.Key_V, Qt.KeyboardModifier.ControlModifier)
    assert p.current.flips.horizontal and p.current.flips.vertical
    np.testing.assert_array_equal(p.current.levels[0], before[::-1, ::-1])
    assert w.grid.panels4["R_MLO"].current.flips.source == "content"  # other views untouched
