"""The reading keys: one meaning per key, N/P through the findings, arrows in the list, one highlight."""

from __future__ import annotations

import numpy as np
import pytest
from PySide6.QtCore import Qt
from PySide6.QtWidgets import QApplication

from core_model.review.model import ACCEPTED, PROPOSED, REJECTED

pytestmark = pytest.mark.qt
NONE = Qt.KeyboardModifier.NoModifier
CTRL = Qt.KeyboardModifier.ControlModifier


def _key(qtbot, widget, key, modifier=NONE):
    qtbot.keyClick(widget, key, modifier)
    QApplication.processEvents()


def _findings(w):
    """The review's controller and its finding ids, in the list's order."""
    ctl = w.review_flow.controller
    return ctl, list(ctl.review.findings)


def _key_on(qtbot, w, finding_id, key):
    """Select a finding, then press a window key on it."""
    w.review_flow.controller.select(finding_id)
    _key(qtbot, w, key)


def _rows(panel) -> list[int]:
    return sorted({i.row() for i in panel.table.selectedIndexes()})


def test_no_key_of_the_map_has_two_meanings(reviewed):
    keys = [k for k, _ in reviewed.shortcut_rows]
    mapped = [k for k in keys if k in reviewed.actions_by_key]
    assert len(mapped) == len(set(mapped))
    rows = dict(reviewed.shortcut_rows)
    assert rows["R"] == "Reject the selected finding" and rows["A"] == "Accept the selected finding"
    assert "Reset" in rows["Home"] and rows["Ctrl+Return"] == "Run the AI analysis"


def test_r_with_a_finding_selected_rejects_it_and_resets_nothing(reviewed, qtbot):
    w = reviewed
    ctl = w.review_flow.controller
    fid = next(iter(ctl.review.findings))
    w.state.invert = True
    w.zoom(0.5)
    p = w.grid.panel(w.state.active_view)
    before = p.vb.viewRect()
    ctl.select(fid)
    _key(qtbot, w, Qt.Key.Key_R)
    assert ctl.review.findings[fid].state == REJECTED
    assert w.state.invert  # not reset
    assert p.vb.viewRect() == before
    # Home resets the view and touches no finding.
    _key(qtbot, w, Qt.Key.Key_Home)
    assert not w.state.invert and ctl.review.findings[fid].state == REJECTED
    # A accepts only; with nothing selected it neither accepts nor runs the analysis.
    ctl.select("")
    _key(qtbot, w, Qt.Key.Key_A)
    assert not w.analysis_running and [f.state for f in ctl.review.findings.values()].count(PROPOSED) == 3
    ctl.select(fid)
    _key(qtbot, w, Qt.Key.Key_A)
    assert ctl.review.findings[fid].state == ACCEPTED


def test_n_and_p_step_through_the_findings_and_zoom_to_each(reviewed, qtbot):
    w = reviewed
    ctl, ids = _findings(w)
    seen = []
    for _ in range(len(ids) + 1):
        _key(qtbot, w, Qt.Key.Key_N)
        seen.append(ctl.selected)
    assert seen == ids + ids[:1]  # wraps round
    f = ctl.review.findings[ids[0]]
    assert w.state.active_view == f.key
    p = w.grid.panels4[f.key]
    r = p.vb.viewRect()
    h, wd = p.current.shape
    assert r.width() < 0.6 * wd  # zoomed in on the finding
    pts = p.current.flips.to_display(__import__("numpy").asarray(f.polygon, dtype=float), p.current.shape)
    assert r.contains(float(pts[:, 0].mean()), float(pts[:, 1].mean()))
    _key(qtbot, w, Qt.Key.Key_P)
    assert ctl.selected == ids[-1]
    assert w.review_flow.findings_panel.selected_ids() == [ids[-1]]


def test_arrows_move_the_list_selection_when_the_list_has_focus(reviewed, qtbot):
    w = reviewed
    ctl, ids = _findings(w)
    panel = w.review_flow.findings_panel
    ctl.select(ids[0])
    panel.table.setFocus()
    window_before = (w.state.windows[w.state.energy].center, w.state.windows[w.state.energy].width)
    _key(qtbot, panel.table, Qt.Key.Key_Down)
    assert ctl.selected == ids[1] and _rows(panel) == [1]
    _key(qtbot, panel.table, Qt.Key.Key_Down)
    _key(qtbot, panel.table, Qt.Key.Key_Up)
    assert ctl.selected == ids[1]
    assert (w.state.windows[w.state.energy].center, w.state.windows[w.state.energy].width) == window_before
    # Focus on the window, not the list: the arrows are window/level again.
    w.grid.setFocus()
    _key(qtbot, w, Qt.Key.Key_Up)
    assert w.state.windows[w.state.energy].center != window_before[0]


def test_list_highlight_equals_the_selection_after_undo_and_redo(reviewed, qtbot):
    w = reviewed
    ctl, ids = _findings(w)
    panel = w.review_flow.findings_panel
    _key_on(qtbot, w, ids[0], Qt.Key.Key_A)
    _key_on(qtbot, w, ids[2], Qt.Key.Key_R)
    _key(qtbot, w, Qt.Key.Key_Z, CTRL)
    _key(qtbot, w, Qt.Key.Key_Z, CTRL | Qt.KeyboardModifier.ShiftModifier)
    assert _rows(panel) == [ids.index(ctl.selected)] == [2]
    ctl.select(ids[1])
    _key(qtbot, w, Qt.Key.Key_Z, CTRL)
    assert _rows(panel) == [1] and ctl.selected == ids[1]
    # the view's contours agree: only the selected one is drawn thick
    for p in w.grid.all_panels():
        for item in p.contour_items:
            fid = getattr(item, "finding_id", None)
            if fid is not None:
                assert (item.opts["pen"].width() == 4) == (fid == ctl.selected)


def test_finalise_locks_the_review_in_the_viewer_and_an_addendum_reopens_it(reviewed, qtbot):
    w = reviewed
    ctl, ids = _findings(w)
    ap = w.review_flow.assessment_panel
    _key_on(qtbot, w, ids[0], Qt.Key.Key_A)
    # no reader name yet: refused, said why
    _key(qtbot, w, Qt.Key.Key_F, CTRL | Qt.KeyboardModifier.ShiftModifier)
    assert not ctl.review.signoff["finalised"] and "reader's name" in w.last_error
    w.error_box.done(0)
    w.activateWindow()  # the closed message box leaves no window active for the shortcuts
    QApplication.processEvents()
    ap.reader.setText("Dr Q")
    ap.commit_reader()
    _key(qtbot, w, Qt.Key.Key_F, CTRL | Qt.KeyboardModifier.ShiftModifier)
    assert ctl.review.signoff["finalised"]["reader"] == "Dr Q"
    assert ap.signoff_label.text().startswith("Finalised by Dr Q") and "locked" in ap.signoff_label.text()
    # every edit is refused with the reason, and the widgets show the unchanged review
    ctl.select(ids[1])
    _key(qtbot, w, Qt.Key.Key_R)
    assert ctl.review.findings[ids[1]].state == PROPOSED
    assert "finalised by Dr Q" in w.statusBar().currentMessage() and "addendum" in w.statusBar().currentMessage()
    ap.birads["L"].setCurrentText("5")
    assert ctl.review.assessments["L"].birads is None and ap.birads["L"].currentText() == "—"
    _key(qtbot, w, Qt.Key.Key_Z, CTRL)  # the signed edits cannot be undone
    assert ctl.review.findings[ids[0]].state == ACCEPTED
    # an addendum: the change is allowed, listed, and signed
    assert not ap.finalise_btn.isEnabled()
    assert w.review_flow.start_addendum("enhancement seen on second look")
    assert ap.finalise_btn.isEnabled() and ap.finalise_btn.text().startswith("Sign the addendum")
    _key(qtbot, w, Qt.Key.Key_R)
    assert ctl.review.findings[ids[1]].state == REJECTED
    ap.finalise_btn.click()  # the panel's button does what the key does
    add = ctl.review.signoff["addenda"][0]
    assert add["signed"] and add["changes"] == [f"reject {ids[1]}"] and add["reason"] == "enhancement seen on second look"
    assert "1 addendum" in ap.signoff_label.text() and not ap.finalise_btn.isEnabled()


def test_export_names_carry_patient_and_study_and_never_overwrite_unasked(reviewed, qtbot, tmp_path, monkeypatch):
    from PySide6.QtWidgets import QMessageBox

    w = reviewed
    flow = w.review_flow
    # the demo lives inside the program's folder: the dialog must not open there
    assert w.study_path is not None and not str(flow.export_start_dir()).startswith(str(w.study_path.parent))
    out = tmp_path / "exports"
    with qtbot.waitSignal(flow.export_finished, timeout=30000):
        flow.export("pdf", out)
    pdf = out / "P66_CDD-CESM-P66_report.pdf"
    assert pdf.is_file()
    pdf.write_bytes(b"another report")
    asked = []

    def no(*args, **kw):
        asked.append(args[2])
        return QMessageBox.StandardButton.No

    monkeypatch.setattr("nafv_viewer.widgets.review_workflow.QMessageBox.question", no)
    assert flow.export("pdf", out) is None
    assert pdf.read_bytes() == b"another report" and "already exist" in asked[0] and pdf.name in asked[0]
    assert "Export cancelled" in w.statusBar().currentMessage()
    monkeypatch.setattr("nafv_viewer.widgets.review_workflow.QMessageBox.question",
                        lambda *a, **k: QMessageBox.StandardButton.Yes)
    with qtbot.waitSignal(flow.export_finished, timeout=30000):
        flow.export("pdf", out)
    assert pdf.read_bytes()[:5] == b"%PDF-"


def test_report_contours_use_the_viewers_colours():
    from core_model.export.pdf import STYLE
    from core_model.review.model import EDITED
    from nafv_viewer.widgets.review_editor import STATE_PENS

    for state in (ACCEPTED, EDITED, PROPOSED):
        rgb = tuple(round(v * 255) for v in STYLE[state][0])
        assert rgb == tuple(STATE_PENS[state]["color"][:3]), state


def _draw(qtbot, w, panel, corners):
    from test_review_gui import _click

    _key(qtbot, w, Qt.Key.Key_D)
    for c in corners:
        _click(qtbot, panel, c)
    _key(qtbot, w, Qt.Key.Key_Return)


def test_a_contour_drawn_outside_the_breast_is_kept_only_when_confirmed(reviewed, qtbot, monkeypatch):
    from PySide6.QtWidgets import QMessageBox

    from nafv_viewer.widgets.review_editor import on_tissue_fraction

    w = reviewed
    p = w.grid.panels4["L_CC"]
    img = p.current
    h, wd = img.shape
    # the display's background column: the side away from the chest wall, far out
    x0, y0, x1, y1 = img.tissue_box
    bg_x = x1 + 0.5 * (wd - x1) if wd - x1 > x0 else 0.5 * x0
    outside = [(bg_x - 5, 0.1 * h), (bg_x + 5, 0.1 * h), (bg_x + 5, 0.1 * h + 10), (bg_x - 5, 0.1 * h + 10)]
    cx, cy = (x0 + x1) / 2, (y0 + y1) / 2
    inside = [(cx - 20, cy - 20), (cx + 20, cy - 20), (cx + 20, cy + 20), (cx - 20, cy + 20)]
    n0 = len(w.review_flow.controller.review.findings)
    asked = []
    monkeypatch.setattr("nafv_viewer.widgets.review_editor.QMessageBox.question",
                        lambda *a, **k: asked.append(a[2]) or QMessageBox.StandardButton.No)
    _draw(qtbot, w, p, outside)
    assert asked and "outside the breast" in asked[0]
    assert len(w.review_flow.controller.review.findings) == n0 and w.editor.mode == "select"
    assert "discarded" in w.statusBar().currentMessage()
    _draw(qtbot, w, p, inside)  # on the breast: no question
    assert len(asked) == 1 and len(w.review_flow.controller.review.findings) == n0 + 1
    monkeypatch.setattr("nafv_viewer.widgets.review_editor.QMessageBox.question",
                        lambda *a, **k: QMessageBox.StandardButton.Yes)
    _draw(qtbot, w, p, outside)
    assert len(w.review_flow.controller.review.findings) == n0 + 2
    # the measure itself, on original coordinates
    from nafv_viewer.widgets.review_editor import to_original

    orig_in = to_original(img.flips, np.array(inside), img.shape)
    orig_out = to_original(img.flips, np.array(outside), img.shape)
    assert on_tissue_fraction(img, orig_in) == 1.0 and on_tissue_fraction(img, orig_out) == 0.0


def test_a_reopened_review_shows_its_saved_ai_result_in_the_side_panel_too(reviewed, make_window, qtbot, demo_dir):
    w = reviewed
    ctl = w.review_flow.controller
    ctl.select(next(iter(ctl.review.findings)))
    _key(qtbot, w, Qt.Key.Key_A)
    w2 = make_window()
    with qtbot.waitSignal(w2.study_ready, timeout=20000):
        w2.open_study(demo_dir)
    QApplication.processEvents()
    assert w2.analysis is None  # not run in this window
    side = w2.side.result_label.text()
    assessment = w2.review_flow.assessment_panel.ai["L"].text()
    assert "Not analysed yet" not in side and "saved review" in side
    assert "0.73" in side and "0.73" in assessment  # the same score in both places
    assert w2.side.notice_label.isVisibleTo(w2.side)


def test_assessment_tab_and_message_boxes_are_dark_with_light_text(reviewed, qtbot):
    w = reviewed
    w.show_error("Export failed", "the disk is full")
    box = w.error_box
    qtbot.waitExposed(box)
    img = box.grab().toImage()
    bg = img.pixelColor(3, 3)
    assert bg.lightness() < 80  # a dark box...
    label = next(lb for lb in box.findChildren(__import__("PySide6.QtWidgets", fromlist=["QLabel"]).QLabel)
                 if "disk is full" in lb.text())
    assert label.palette().color(label.foregroundRole()).lightness() > 180  # ...with light text
    box.done(0)
    ap = w.review_flow.assessment_panel
    w.review_tabs.setCurrentWidget(ap)
    QApplication.processEvents()
    shot = w.grab().toImage()  # as the window paints it, not the page on its own
    for x, y in ((ap.width() - 4, ap.height() - 4), (4, ap.height() // 2)):
        corner = ap.mapTo(w, __import__("PySide6.QtCore", fromlist=["QPoint"]).QPoint(x, y))
        assert shot.pixelColor(corner).lightness() < 80
    combo = ap.birads["L"]
    assert combo.palette().color(combo.foregroundRole()).lightness() > 180


def test_findings_columns_fit_the_panel(reviewed):
    panel = reviewed.review_flow.findings_panel
    table = panel.table
    header = table.horizontalHeader()
    last = table.columnCount() - 1
    assert table.horizontalHeaderItem(last).text() == "Linked"
    assert header.sectionViewportPosition(last) + header.sectionSize(last) <= table.viewport().width()


def test_lexicon_terms_and_bpe_are_set_from_the_panels_and_follow_the_selection(reviewed, qtbot):
    w = reviewed
    ctl, ids = _findings(w)
    panel = w.review_flow.findings_panel
    assert not panel.descriptors["margin"].isEnabled()  # nothing selected
    ctl.select(ids[0])
    panel.descriptors["type"].setCurrentText("mass")
    panel.descriptors["margin"].setCurrentText("spiculated")
    assert ctl.review.findings[ids[0]].descriptors == {"type": "mass", "margin": "spiculated"}
    ctl.select(ids[1])
    assert panel.descriptors["margin"].currentText() == "—"  # the other finding's (none)
    ctl.select(ids[0])
    assert panel.descriptors["margin"].currentText() == "spiculated"
    _key(qtbot, w, Qt.Key.Key_Z, CTRL)
    assert ctl.review.findings[ids[0]].descriptors == {"type": "mass"} and panel.descriptors["margin"].currentText() == "—"
    ap = w.review_flow.assessment_panel
    ap.bpe["L"].setCurrentText("marked")
    assert ctl.review.assessments["L"].bpe == "marked"
    _key(qtbot, w, Qt.Key.Key_Z, CTRL)
    assert ctl.review.assessments["L"].bpe is None and ap.bpe["L"].currentText() == "—"


def test_fields_are_filled_from_the_keyboard_without_the_window_shortcuts_taking_the_keys(reviewed, qtbot):
    w = reviewed
    ctl = w.review_flow.controller
    fid = next(iter(ctl.review.findings))
    ctl.select(fid)
    panel = w.review_flow.findings_panel
    panel.descriptors["type"].setCurrentText("mass")  # shape is a mass descriptor: offered once the type says so
    combo = panel.descriptors["shape"]
    combo.setFocus()
    window_before = w.state.windows[w.state.energy].center
    _key(qtbot, combo, Qt.Key.Key_Down)
    _key(qtbot, combo, Qt.Key.Key_Down)
    assert ctl.review.findings[fid].descriptors == {"type": "mass", "shape": "round"}
    assert w.state.windows[w.state.energy].center == window_before  # not window/level
    _key(qtbot, combo, Qt.Key.Key_I)  # a letter jumps to the term, and does not invert the image
    assert ctl.review.findings[fid].descriptors["shape"] == "irregular" and not w.state.invert
    ap = w.review_flow.assessment_panel
    ap.bpe["R"].setFocus()
    _key(qtbot, ap.bpe["R"], Qt.Key.Key_M)
    assert ctl.review.assessments["R"].bpe in ("minimal", "mild", "moderate", "marked")
    assert ctl.review.findings[fid].state == PROPOSED  # no accept/reject either


def test_a_new_analysis_leaves_a_finalised_review_as_signed(reviewed, qtbot, monkeypatch):
    w = reviewed
    first = w.analyses.analyzer.analyze

    def another_score(*a, **k):  # the next run says something else
        result = first(*a, **k)
        result.malignancy_probability = 0.2
        return result

    monkeypatch.setattr(w.analyses.analyzer, "analyze", another_score)
    ctl = w.review_flow.controller
    ap = w.review_flow.assessment_panel
    ap.reader.setText("Dr Q")
    ap.commit_reader()
    assert w.review_flow.finalise()
    before = ctl.review.to_dict()
    with qtbot.waitSignal(w.analysis_finished, timeout=10000):
        w.run_analysis()
    QApplication.processEvents()
    assert ctl.review.to_dict() == before
    assert "finalised" in w.statusBar().currentMessage()
