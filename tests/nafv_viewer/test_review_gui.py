"""The review in the reading window, driven with mouse and keys: select, accept, reject, vertex edits,
drawing, undo/redo, autosave and restore on reopen, exports from the File menu."""

from __future__ import annotations

import json
import shutil

import numpy as np
import pytest
from PySide6.QtCore import QPoint, QPointF, Qt
from PySide6.QtWidgets import QApplication, QTableWidgetSelectionRange

from core_model.domain.study import VIEW_KEYS
from core_model.export.common import export_stem
from core_model.review.model import ACCEPTED, EDITED, PROPOSED, REJECTED
from nafv_viewer.widgets.review_editor import to_original

from viewer_helpers import send_drag

pytestmark = pytest.mark.qt
NONE = Qt.KeyboardModifier.NoModifier


def _key(qtbot, w, key, modifier=NONE):
    qtbot.keyClick(w, key, modifier)
    QApplication.processEvents()


def _screen(panel, xy) -> QPoint:
    """Scene (display) coordinates of ``panel`` -> a point of its viewport widget."""
    scene = panel.vb.mapViewToScene(QPointF(float(xy[0]), float(xy[1])))
    return panel.graphics.mapFromScene(scene)


def _click(qtbot, panel, xy, modifier=NONE, button=Qt.MouseButton.LeftButton, double=False):
    vp = panel.graphics.viewport()
    if double:
        qtbot.mouseDClick(vp, button, modifier, _screen(panel, xy))
    else:
        qtbot.mouseClick(vp, button, modifier, _screen(panel, xy))
    QApplication.processEvents()


def _drag(panel, start_xy, end: QPoint):
    send_drag(panel.graphics.viewport(), QPointF(_screen(panel, start_xy)), QPointF(end), Qt.MouseButton.LeftButton)


def _finding(w, key):
    return next(f for f in w.review_flow.controller.review.findings.values() if f.key == key)


def _display(panel, f):
    img = panel.current
    return img.flips.to_display(np.asarray(f.polygon, dtype=float), img.shape)


def _saved(w) -> dict:
    data = json.loads(w.review_flow.path.read_text())
    return {f["id"]: f for f in data["findings"]}


def test_analysis_opens_review_panels_with_proposals_drawn_by_state(reviewed):
    w = reviewed
    review = w.review_flow.controller.review
    assert sorted(f.key for f in review.findings.values()) == sorted(VIEW_KEYS)
    assert all(f.state == PROPOSED and f.origin == "ai" and f.ai_score == pytest.approx(0.8) for f in review.findings.values())
    assert w.review_flow.findings_panel.table.rowCount() == 4
    assert [w.review_tabs.tabText(i) for i in range(2)] == ["Findings", "Assessment"]
    # The reader's BI-RADS is empty; the AI probability is a separate line beside it.
    ap = w.review_flow.assessment_panel
    assert ap.birads["L"].currentText() == "—" and "0.73" in ap.ai["L"].text()
    # The clinical-use notice stays in sight above the review panels.
    assert w.side.notice_label.isVisible() and w.review_tabs.isVisible()
    assert not w.side.notice_label.visibleRegion().isEmpty()
    curve = next(i for i in w.grid.panels4["L_CC"].contour_items if hasattr(i, "xData"))
    assert curve.opts["pen"].style() == Qt.PenStyle.DotLine  # proposed: dotted
    assert w.review_flow.path.is_file()


def test_shift_click_on_the_other_view_links_cc_and_mlo(reviewed, qtbot):
    w = reviewed
    ctl = w.review_flow.controller
    cc, mlo, right = _finding(w, "L_CC"), _finding(w, "L_MLO"), _finding(w, "R_CC")
    p_cc, p_mlo, p_r = (w.grid.panels4[k] for k in ("L_CC", "L_MLO", "R_CC"))
    _click(qtbot, p_cc, _display(p_cc, cc).mean(0))
    assert ctl.selected == cc.id and cc.link is None
    _click(qtbot, p_mlo, _display(p_mlo, mlo).mean(0), Qt.KeyboardModifier.ShiftModifier)
    assert cc.link == mlo.id and mlo.link == cc.id
    assert ctl.selected == cc.id  # linking keeps the selection
    assert _saved(w)[cc.id]["link"] == mlo.id
    _click(qtbot, p_mlo, _display(p_mlo, mlo).mean(0), Qt.KeyboardModifier.ShiftModifier)  # again: nothing new to undo
    # the other breast cannot be linked: said in the status bar, nothing changes
    _click(qtbot, p_r, _display(p_r, right).mean(0), Qt.KeyboardModifier.ShiftModifier)
    assert right.link is None and cc.link == mlo.id
    assert "same breast" in w.statusBar().currentMessage()
    _key(qtbot, w, Qt.Key.Key_Z, Qt.KeyboardModifier.ControlModifier)
    assert cc.link is None and mlo.link is None


def test_click_selects_then_accept_reject_keys_undo_redo(reviewed, qtbot):
    w = reviewed
    p = w.grid.panels4["L_CC"]
    f = _finding(w, "L_CC")
    pts = _display(p, f)
    _click(qtbot, p, (pts[0] + pts[1]) / 2)  # on the contour's top edge
    ctl = w.review_flow.controller
    assert ctl.selected == f.id
    assert w.review_flow.findings_panel.selected_ids() == [f.id]  # the list follows
    _key(qtbot, w, Qt.Key.Key_A)
    assert f.state == ACCEPTED and _saved(w)[f.id]["state"] == ACCEPTED
    curve = next(i for i in p.contour_items if getattr(i, "finding_id", None) == f.id)
    assert curve.opts["pen"].style() == Qt.PenStyle.SolidLine
    _key(qtbot, w, Qt.Key.Key_R)
    assert f.state == REJECTED and _saved(w)[f.id]["state"] == REJECTED
    _key(qtbot, w, Qt.Key.Key_Z, Qt.KeyboardModifier.ControlModifier)
    assert f.state == ACCEPTED and _saved(w)[f.id]["state"] == ACCEPTED
    _key(qtbot, w, Qt.Key.Key_Z, Qt.KeyboardModifier.ControlModifier)
    assert f.state == PROPOSED and _saved(w)[f.id]["state"] == PROPOSED
    _key(qtbot, w, Qt.Key.Key_Z, Qt.KeyboardModifier.ControlModifier | Qt.KeyboardModifier.ShiftModifier)
    assert f.state == ACCEPTED and _saved(w)[f.id]["state"] == ACCEPTED
    # A click on empty image clears the selection; then R does nothing but say how to select.
    _click(qtbot, p, pts.mean(axis=0) + np.array([0.0, 0.3 * p.current.shape[0]]))
    assert ctl.selected == ""
    _key(qtbot, w, Qt.Key.Key_R)
    assert f.state == ACCEPTED and "Select a finding first" in w.statusBar().currentMessage()
    # Rejected contours can be hidden.
    ctl.select(f.id)
    _key(qtbot, w, Qt.Key.Key_R)
    assert p.contour_count == 1
    _key(qtbot, w, Qt.Key.Key_C, Qt.KeyboardModifier.ShiftModifier)
    assert p.contour_count == 0 and w.grid.panels4["R_CC"].contour_count == 1


def test_vertex_drag_on_flipped_right_view_stores_original_coordinates(reviewed, qtbot):
    w = reviewed
    p = w.grid.panels4["R_CC"]
    # The demo's files are already hung; the reader mirrors this view (Ctrl+H) so it is shown flipped.
    w.state.active_view = "R_CC"
    _key(qtbot, w, Qt.Key.Key_H, Qt.KeyboardModifier.ControlModifier)
    img = p.current
    assert img.flips.horizontal
    f = _finding(w, "R_CC")
    w.review_flow.controller.select(f.id)
    x0, y0 = f.polygon[0]
    start = _display(p, f)[0]
    target = _screen(p, start) + QPoint(40, 25)  # right and down on screen
    _drag(p, start, target)
    assert f.state == EDITED and len(f.polygon) == 4
    scene = p.vb.mapSceneToView(p.graphics.mapToScene(target))
    h, wd = img.shape
    expect = (wd - scene.x() - 0.5, scene.y() - 0.5)  # mirrored left-right; pixel centres at +0.5 (Flips.to_display)
    nx, ny = f.polygon[0]
    assert (nx, ny) == pytest.approx(tuple(expect), abs=0.01)
    assert nx < x0 - 5 and ny > y0 + 5  # mirrored: right on screen is left in the original image
    assert f.ai_polygon[0] == pytest.approx((x0, y0))  # the AI's contour is kept for audit
    assert _saved(w)[f.id]["polygon"][0] == pytest.approx([nx, ny])
    # The view did not pan while the vertex moved; undo puts the vertex back.
    _key(qtbot, w, Qt.Key.Key_Z, Qt.KeyboardModifier.ControlModifier)
    assert f.polygon[0] == pytest.approx((x0, y0)) and f.state == PROPOSED


def test_shift_click_adds_and_ctrl_click_removes_a_vertex(reviewed, qtbot):
    w = reviewed
    p = w.grid.panels4["L_MLO"]
    f = _finding(w, "L_MLO")
    w.review_flow.controller.select(f.id)
    pts = _display(p, f)
    mid = (pts[1] + pts[2]) / 2 + np.array([3.0, 0.0])  # a little outside the right side
    _click(qtbot, p, mid, Qt.KeyboardModifier.ShiftModifier)
    assert len(f.polygon) == 5 and f.state == EDITED
    img = p.current
    assert f.polygon[2] == pytest.approx(tuple(to_original(img.flips, mid, img.shape)[0]), abs=1.0)
    _click(qtbot, p, _display(p, f)[2], Qt.KeyboardModifier.ControlModifier)
    assert len(f.polygon) == 4
    _click(qtbot, p, _display(p, f)[0], button=Qt.MouseButton.RightButton)
    assert len(f.polygon) == 3
    _click(qtbot, p, _display(p, f)[0], button=Qt.MouseButton.RightButton)
    assert len(f.polygon) == 3  # never fewer than 3: the message says to delete instead
    assert len(_saved(w)[f.id]["polygon"]) == 3


def test_draw_a_missed_finding_with_clicks_and_cancel(reviewed, qtbot):
    w = reviewed
    p = w.grid.panels4["R_MLO"]
    w.state.active_view = "R_MLO"
    _key(qtbot, w, Qt.Key.Key_H, Qt.KeyboardModifier.ControlModifier)  # shown mirrored
    img = p.current
    assert img.flips.horizontal
    h, wd = img.shape
    corners = [(0.6 * wd, 0.6 * h), (0.7 * wd, 0.6 * h), (0.7 * wd, 0.7 * h), (0.6 * wd, 0.7 * h)]
    n0 = len(w.review_flow.controller.review.findings)
    _key(qtbot, w, Qt.Key.Key_D)
    _click(qtbot, p, corners[0])
    _click(qtbot, p, corners[1])
    _key(qtbot, w, Qt.Key.Key_Escape)  # cancels the drawing, not the (finished) analysis
    assert w.editor.mode == "select" and len(w.review_flow.controller.review.findings) == n0
    _key(qtbot, w, Qt.Key.Key_D)
    for c in corners:
        _click(qtbot, p, c)
    _key(qtbot, w, Qt.Key.Key_Return)
    review = w.review_flow.controller.review
    assert len(review.findings) == n0 + 1
    new = review.findings[w.review_flow.controller.selected]
    assert new.key == "R_MLO" and new.origin == "reader" and new.state == ACCEPTED
    expect = np.array([(wd - x - 0.5, y - 0.5) for x, y in corners])  # mirrored view
    assert np.allclose(np.array(new.polygon), expect, atol=1.0)
    assert new.polygon[0][0] > new.polygon[1][0]  # mirrored view: screen left-to-right is right-to-left
    assert _saved(w)[new.id]["origin"] == "reader"
    # Undo removes it, redo brings it back with the same id.
    _key(qtbot, w, Qt.Key.Key_Z, Qt.KeyboardModifier.ControlModifier)
    assert new.id not in review.findings and new.id not in _saved(w)
    _key(qtbot, w, Qt.Key.Key_Z, Qt.KeyboardModifier.ControlModifier | Qt.KeyboardModifier.ShiftModifier)
    assert review.findings[new.id].polygon == new.polygon


def test_reopening_after_the_images_changed_warns_and_keeps_the_findings(make_window, qtbot, demo_dir, tmp_path):
    study_dir = tmp_path / "P66"
    shutil.copytree(demo_dir, study_dir)
    w = make_window()
    with qtbot.waitSignal(w.study_ready, timeout=10000):
        w.open_study(study_dir)
    with qtbot.waitSignal(w.analysis_finished, timeout=10000):
        w.run_analysis()
    QApplication.processEvents()
    saved = w.review_flow.controller.review.to_dict()["findings"]
    assert saved and w.error_box is None
    w.close()
    (study_dir / "P66_R_DM_MLO.jpg").unlink()  # the study now lacks one image

    w2 = make_window()
    with qtbot.waitSignal(w2.study_ready, timeout=10000):
        w2.open_study(study_dir)
    assert w2.error_box is not None and w2.error_box.isVisible()
    assert "changed since the review was saved" in w2.error_box.text()
    assert w2.review_flow.controller.review.to_dict()["findings"] == saved


def test_a_damaged_review_file_is_moved_aside_and_the_study_still_opens(make_window, qtbot, demo_dir):
    from core_model.io import load_study
    from core_model.review.store import ReviewStore, study_identity

    path = ReviewStore().path_for(study_identity(load_study(demo_dir)))
    path.parent.mkdir(parents=True)
    path.write_text('{"format": "nafv-review", "schema_version": 1e999}')
    w = make_window()
    with qtbot.waitSignal(w.study_ready, timeout=10000):
        w.open_study(demo_dir)
    msg = w.statusBar().currentMessage()
    assert "moved aside" in msg and "\n" not in msg
    assert w.review_flow.controller is not None and w.review_flow.controller.review.findings == {}
    backups = list(path.parent.glob(path.name + ".damaged-*"))
    assert len(backups) == 1 and backups[0].read_text().endswith("1e999}")
    with qtbot.waitSignal(w.analysis_finished, timeout=10000):
        w.run_analysis()
    assert len(_saved(w)) == 4  # the fresh review takes the AI's proposals as usual


def test_review_restores_exactly_on_reopen_without_analysis(reviewed, make_window, qtbot, demo_dir):
    w = reviewed
    ctl = w.review_flow.controller
    fl = _finding(w, "L_CC")
    fr = _finding(w, "R_CC")
    ctl.select(fl.id)
    _key(qtbot, w, Qt.Key.Key_A)
    ctl.select(fr.id)
    _key(qtbot, w, Qt.Key.Key_R)
    ap = w.review_flow.assessment_panel
    ap.birads["L"].setCurrentText("4B")
    ap.reader.setText("Dr Test")
    ap.commit_reader()
    panel = w.review_flow.findings_panel
    mlo = _finding(w, "L_MLO")
    ids = list(ctl.review.findings)
    panel.table.selectRow(ids.index(fl.id))  # two rows selected in the list: the L CC and L MLO findings
    panel.table.setRangeSelected(QTableWidgetSelectionRange(ids.index(mlo.id), 0, ids.index(mlo.id), 5), True)
    assert panel.link_selected()
    before = ctl.review.to_dict()
    w.close()

    w2 = make_window()
    with qtbot.waitSignal(w2.study_ready, timeout=10000):
        w2.open_study(demo_dir)
    assert w2.analysis is None  # no analysis ran in this window
    after = w2.review_flow.controller.review.to_dict()
    assert after["findings"] == before["findings"] and after["assessments"] == before["assessments"]
    assert after["reader"] == "Dr Test" and after["revision"] == before["revision"]
    r2 = w2.review_flow.controller.review
    assert r2.findings[fl.id].state == ACCEPTED and r2.findings[fr.id].state == REJECTED and r2.findings[fl.id].link == mlo.id
    assert w2.review_flow.assessment_panel.birads["L"].currentText() == "4B"
    assert w2.grid.panels4["L_CC"].contour_count == 1  # drawn from the review, no analysis needed
    # Running the analysis again keeps the reader's work.
    with qtbot.waitSignal(w2.analysis_finished, timeout=10000):
        w2.run_analysis()
    assert w2.review_flow.controller.review.to_dict()["findings"] == before["findings"]


def test_reader_drawing_before_analysis_is_kept_when_ai_findings_arrive(demo_window, qtbot):
    w = demo_window
    from core_model.review.model import AddFinding

    assert w.review_flow.controller is not None and not w.review_flow.controller.review.findings
    assert w.review_flow.controller.push(AddFinding("L_CC", [(10, 10), (50, 10), (50, 50)]))
    with qtbot.waitSignal(w.analysis_finished, timeout=10000):
        w.run_analysis()
    review = w.review_flow.controller.review
    assert len(review.findings) == 5 and review.ai["ran"] and review.ai["malignancy_probability"] == pytest.approx(0.73)
    assert sorted(f.origin for f in review.findings.values()) == ["ai"] * 4 + ["reader"]
    assert len(set(review.findings)) == 5
    assert len(_saved(w)) == 5


def test_pdf_and_json_export_from_the_file_menu(reviewed, qtbot, tmp_path, monkeypatch):
    w = reviewed
    f = _finding(w, "L_CC")
    w.review_flow.controller.select(f.id)
    _key(qtbot, w, Qt.Key.Key_A)
    out = tmp_path / "out"
    monkeypatch.setattr("nafv_viewer.widgets.review_workflow.QFileDialog.getExistingDirectory", lambda *a, **k: str(out))
    w.review_flow.deidentify_action.setChecked(True)
    with qtbot.waitSignal(w.review_flow.export_finished, timeout=30000) as blocker:
        w.actions_by_key["Ctrl+P"].trigger()
    stem = export_stem(w.review_flow.controller.review, True)
    assert stem.startswith("ANON-")
    pdf = out / f"{stem}_report.pdf"
    assert pdf.read_bytes()[:5] == b"%PDF-" and pdf.stat().st_size > 10000
    assert f"wrote {pdf}" in blocker.args[0]
    assert str(out) in w.statusBar().currentMessage()
    with qtbot.waitSignal(w.review_flow.export_finished, timeout=30000):
        w.actions_by_key["Ctrl+J"].trigger()
    data = json.loads((out / f"{stem}_review.json").read_text())
    text = json.dumps(data)
    assert "P66" not in text  # de-identified
    states = {x["id"]: x["state"] for x in data["findings"]}
    assert states[f.id] == ACCEPTED and sorted(states.values()).count(PROPOSED) == 3
    # SEG of a study that is not DICOM: says what is missing, and "all" still writes the PDF and JSON.
    out2 = tmp_path / "all"
    with qtbot.waitSignal(w.review_flow.export_finished, timeout=30000) as blocker:
        w.review_flow.export("all", out2)
    lines = blocker.args[0]
    assert (out2 / f"{stem}_report.pdf").is_file() and (out2 / f"{stem}_review.json").is_file()
    seg_lines = [x for x in lines if x.startswith("DICOM SEG:")]
    assert seg_lines and "DICOM" in seg_lines[0] and not list(out2.glob("*_seg/*.dcm"))
    assert seg_lines[0] in w.review_flow.export_box.informativeText()


def test_dicom_seg_export_from_the_gui_matches_the_contour(make_window, qtbot, tmp_path, demo_dir):
    from PIL import Image

    from core_model.export.dicom_seg import polygon_mask, read_seg_masks
    from core_model.io import write_mg_dicom
    from core_model.io.naming import parse_cdd_cesm_name

    src = tmp_path / "dicom"
    for f in sorted(demo_dir.glob("*_CC.jpg")):
        info = parse_cdd_cesm_name(f)
        px = np.asarray(Image.open(f).convert("L")).astype(np.uint16) * 257
        write_mg_dicom(src / f"{f.stem}.dcm", px, side=info.side, view=info.view, energy=info.energy, patient_id="P66", pixel_spacing_mm=0.5)
    w = make_window()
    with qtbot.waitSignal(w.study_ready, timeout=20000):
        w.open_study(src)
    with qtbot.waitSignal(w.analysis_finished, timeout=10000):
        w.run_analysis()
    f = _finding(w, "L_CC")
    w.review_flow.controller.select(f.id)
    _key(qtbot, w, Qt.Key.Key_A)
    out = tmp_path / "seg_out"
    with qtbot.waitSignal(w.review_flow.export_finished, timeout=30000) as blocker:
        w.review_flow.export("seg", out)
    files = sorted(out.glob("*_seg/*.dcm"))
    assert len(files) == 1 and any(str(files[0]) in line for line in blocker.args[0])
    # the structured report beside it: the accepted finding, its size in mm, the reader's decision
    from core_model.export.dicom_sr import read_sr_findings

    srs = sorted(out.glob("*_sr.dcm"))
    assert len(srs) == 1 and any(str(srs[0]) in line for line in blocker.args[0])
    found = read_sr_findings(srs[0])
    assert len(found) == 1 and found[0]["evaluations"]["Reader decision"] != "Not reviewed"
    assert found[0]["measurements"]["Diameter"][0] > 0
    read = read_seg_masks(files[0])
    masks = list(read["masks"].values())
    assert len(masks) == 1
    import pydicom

    source = w.study.get("L_CC", "rc").source
    assert read["source_sop_instance_uid"] == str(pydicom.dcmread(source, stop_before_pixels=True).SOPInstanceUID)
    expect = polygon_mask(f.polygon, w.study.get("L_CC", "rc").shape)
    inter = np.logical_and(masks[0], expect).sum()
    assert inter / np.logical_or(masks[0], expect).sum() > 0.98


def test_shortcuts_help_lists_review_keys(demo_window, qtbot):
    w = demo_window
    _key(qtbot, w, Qt.Key.Key_F1)
    rows = dict(w.shortcut_rows)
    for key in ("A", "R", "D", "Return", "Delete", "Ctrl+Z", "Ctrl+Shift+Z", "Ctrl+P", "Ctrl+Shift+S", "Ctrl+J"):
        assert key in rows
    assert "Accept" in rows["A"] and "Reject" in rows["R"] and "Draw" in rows["D"]
    assert any("vertex" in text for text in rows.values())
    assert w.shortcuts_dialog.isVisible()


def test_review_demo_option_needs_a_headless_analysed_screenshot(capsys):
    from nafv_viewer.app import main

    assert main(["--demo", "--review-demo"]) == 2
    assert "--review-demo needs --screenshot and --analyze" in capsys.readouterr().err
