"""Review panels (pytest-qt): accept, reject, vertex edit, new contour, link, undo/redo, assessment, autosave."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from PySide6.QtCore import Qt
from PySide6.QtWidgets import QTableWidgetSelectionRange

from core_model.domain.analysis import Analysis, Lesion, ViewResult
from core_model.domain.study import Study, StudyImage
from core_model.review.model import AddFinding, Link, MoveVertex, ReviewSession, SetAssessment
from core_model.review.store import ReviewStore
from nafv_viewer.widgets.assessment_panel import AssessmentPanel
from nafv_viewer.widgets.findings_panel import FindingsPanel, ReviewController

pytestmark = pytest.mark.qt


def _study() -> Study:
    s = Study(patient_id="P7", study_id="S7")
    rng = np.random.default_rng(7)
    for key in ("L_CC", "L_MLO", "R_CC", "R_MLO"):
        side, view = key.split("_")
        for e in ("le", "rc"):
            s.add(StudyImage(side, view, e, rng.integers(0, 255, (40, 30), dtype=np.uint8), Path(f"{key}_{e}.png")))
    return s


def _analysis() -> Analysis:
    sq = np.array([[5.0, 5.0], [15.0, 5.0], [15.0, 15.0], [5.0, 15.0]])
    les = lambda p, s: Lesion(p, s, 100.0, (*p.min(0), *p.max(0)))  # noqa: E731
    return Analysis(
        models={"segmentation": {"name": "t", "weights_sha256": "0" * 64, "not_for_clinical_use": True}},
        device="cpu", affected_side="L", affected_side_source="segmentation", malignancy_probability=0.71,
        classifier_mode="four-view",
        views={"L_CC": ViewResult("L_CC", np.zeros((40, 30), np.uint8), lesions=[les(sq, 0.9)]),
               "L_MLO": ViewResult("L_MLO", np.zeros((40, 30), np.uint8), lesions=[les(sq + 3, 0.7)])},
    )


@pytest.fixture
def setup(qtbot, tmp_path):
    store = ReviewStore(tmp_path / "reviews")
    study = _study()
    review = store.open(study, _analysis())
    controller = ReviewController(ReviewSession(review, store))
    findings, assessment = FindingsPanel(controller), AssessmentPanel(controller)
    for w in (findings, assessment):
        qtbot.add_widget(w)
        w.show()
    return store, study, controller, findings, assessment


def _saved(store, controller) -> dict:
    return json.loads(store.path_for(controller.review.identity).read_text())


def test_table_shows_findings_and_selection_goes_both_ways(setup):
    store, study, c, panel, _ = setup
    assert panel.table.rowCount() == 2
    assert [panel.table.item(r, 3).text() for r in range(2)] == ["? proposed", "? proposed"]
    assert panel.table.item(0, 4).text() == "0.90"
    panel.table.selectRow(1)
    assert c.selected == "F2"
    c.select("F1")
    assert panel.selected_ids() == ["F1"]


def test_accept_by_button_reject_by_key_undo_redo_and_autosave(setup, qtbot):
    store, study, c, panel, _ = setup
    c.select("F1")
    qtbot.mouseClick(panel.accept_btn, Qt.MouseButton.LeftButton)
    assert c.review.findings["F1"].state == "accepted" and panel.table.item(0, 3).text() == "✓ accepted"
    assert _saved(store, c)["findings"][0]["state"] == "accepted"  # saved at once
    c.select("F2")
    panel.table.setFocus()
    qtbot.keyClick(panel.table, Qt.Key.Key_R)
    assert c.review.findings["F2"].state == "rejected"
    qtbot.mouseClick(panel.undo_btn, Qt.MouseButton.LeftButton)
    assert c.review.findings["F2"].state == "proposed" and _saved(store, c)["findings"][1]["state"] == "proposed"
    qtbot.keyClick(panel.table, Qt.Key.Key_Z, Qt.KeyboardModifier.ControlModifier)
    assert c.review.findings["F1"].state == "proposed" and not c.stack.canUndo()
    qtbot.mouseClick(panel.redo_btn, Qt.MouseButton.LeftButton)
    assert c.review.findings["F1"].state == "accepted"


def test_vertex_edit_new_contour_link_and_delete_through_the_undo_stack(setup, qtbot):
    store, study, c, panel, _ = setup
    assert c.push(MoveVertex("F1", 2, (18.0, 17.5)))  # what the contour editor sends after a drag
    assert panel.table.item(0, 3).text() == "✎ edited"
    assert c.push(AddFinding("R_CC", [(2, 2), (9, 2), (5, 9)]))  # a contour the reader drew
    assert panel.table.rowCount() == 3 and panel.table.item(2, 3).text() == "✓ accepted (reader)"
    panel.table.clearSelection()
    panel.table.setRangeSelected(QTableWidgetSelectionRange(0, 0, 1, 5), True)  # shift-click F1..F2
    assert panel.selected_ids() == ["F1", "F2"]
    assert panel.link_selected()
    assert panel.table.item(0, 5).text() == "F2" and panel.table.item(1, 5).text() == "F1"
    c.select("F3")
    assert c.delete_selected() and panel.table.rowCount() == 2
    assert len(_saved(store, c)["findings"]) == 2
    for _ in range(4):
        c.stack.undo()
    assert c.review.findings["F1"].polygon[2] == (15.0, 15.0) and c.review.findings["F1"].state == "proposed"
    assert "F3" not in c.review.findings and c.review.findings["F1"].link is None
    reopened = ReviewStore(store.root).open(study)
    assert reopened.to_dict() == c.review.to_dict()  # restore after reopening is exact


def test_invalid_edit_shows_message_and_changes_nothing(setup):
    store, study, c, panel, _ = setup
    c.select("F1")
    panel.table.selectRow(0)
    assert not panel.link_selected()
    assert "Select one CC and one MLO" in panel.message.text()
    assert c.push(AddFinding("L_CC", [(1, 1), (5, 1), (3, 4)]))
    rev = c.review.revision
    assert not c.push(Link("F1", "F3"))  # F1 (CC) with the reader's CC contour: refused
    assert "CC contour with an MLO" in panel.message.text() and c.review.revision == rev


def test_assessment_both_directions_ai_beside_reader_and_undo(setup, qtbot):
    store, study, c, _, panel = setup
    assert panel.birads["L"].currentText() == "—"  # the AI never pre-fills the reader's call
    assert panel.ai["L"].text().startswith("AI model score: 0.71 (four-view; uncalibrated model score, not a probability of cancer)")
    assert "not for clinical use" in panel.ai["L"].text()
    assert panel.ai["R"].text() == "AI: scored the other breast"
    panel.birads["L"].setCurrentText("4B")
    panel.density["L"].setCurrentText("C")
    assert (c.review.assessments["L"].birads, c.review.assessments["L"].density) == ("4B", "c")
    panel.text["L"].setPlainText("Irregular mass")
    panel.commit_text("L")
    panel.reader.setText("Dr. Q")
    panel.commit_reader()
    saved = _saved(store, c)
    assert saved["assessments"]["L"] == {"birads": "4B", "density": "c", "text": "Irregular mass", "bpe": None} and saved["reader"] == "Dr. Q"
    c.stack.undo()
    c.stack.undo()
    assert panel.text["L"].toPlainText() == "" and panel.reader.text() == ""
    c.stack.undo()
    assert panel.density["L"].currentText() == "—"
    # state -> widget: a change made elsewhere (e.g. by a script) shows up
    c.push(SetAssessment("R", "birads", "2"))
    assert panel.birads["R"].currentText() == "2" and c.stack.count() == 2  # the redo branch was dropped


def test_failed_save_is_shown_and_the_change_rolled_back(setup, monkeypatch):
    from core_model.review.store import ReviewStoreError

    store, study, c, panel, _ = setup

    def full(review):
        raise ReviewStoreError("the review could not be saved (No space left on device); the last change was undone")

    monkeypatch.setattr(store, "save", full)
    c.select("F1")
    assert not c.accept_selected()
    assert c.review.findings["F1"].state == "proposed" and panel.table.item(0, 3).text() == "? proposed"
    assert "No space left" in panel.message.text() and not c.stack.canUndo()


@pytest.mark.parametrize("step", ["undo", "redo"])
def test_failed_save_during_undo_or_redo_keeps_stack_and_contour_in_step(setup, monkeypatch, step):
    from core_model.review.model import InsertVertex
    from core_model.review.store import ReviewStoreError

    store, study, c, panel, _ = setup
    original = list(c.review.findings["F1"].polygon)
    assert c.push(InsertVertex("F1", 1, (10.0, 2.0)))
    if step == "redo":
        assert c.undo() and c.review.findings["F1"].polygon == original
    real_save = store.save
    index, before = c.stack.index(), list(c.review.findings["F1"].polygon)

    def full(review):
        raise ReviewStoreError("the review could not be saved (No space left on device)")

    monkeypatch.setattr(store, "save", full)
    assert not getattr(c, step)()
    assert c.review.findings["F1"].polygon == before  # rolled back ...
    assert c.stack.index() == index  # ... and the stack agrees with it
    assert f"the {step} was not done" in panel.message.text() and "No space left" in panel.message.text()
    monkeypatch.setattr(store, "save", real_save)
    # The disk is back: the same step now works once, and the contour is never doubled.
    assert getattr(c, step)()
    expected = original if step == "undo" else original[:1] + [(10.0, 2.0)] + original[1:]
    assert c.review.findings["F1"].polygon == expected
    assert not getattr(c, step)()  # nothing left to step over
    while c.undo():
        pass
    assert c.review.findings["F1"].polygon == original and _saved(store, c)["findings"][0]["polygon"] == [list(p) for p in original]


def test_two_windows_on_one_review_merge_and_a_clash_is_refused_in_one_line_and_reloaded(setup, qtbot):
    store, study, a, _, _ = setup
    other = ReviewStore(store.root)  # a second window (or workstation) on the same review file
    b = ReviewController(ReviewSession(other.load(a.review.identity), other))
    b_findings, b_assessment = FindingsPanel(b), AssessmentPanel(b)
    for w in (b_findings, b_assessment):
        qtbot.add_widget(w)
        w.show()
    notices: list[str] = []
    b.notice.connect(notices.append)
    assert a.push(SetAssessment("L", "birads", "4A"))
    # B never saw A's change: B's own change is merged with it, and B shows both
    b_assessment.reader.setText("Dr. B")
    b_assessment.commit_reader()
    assert _saved(store, a)["assessments"]["L"]["birads"] == "4A" and _saved(store, a)["reader"] == "Dr. B"
    assert b_assessment.birads["L"].currentText() == "4A"
    assert len(notices) == 1 and "another viewer" in notices[0].lower() and "\n" not in notices[0]
    assert b_findings.message.text() == notices[0]
    # the same field changed in both windows: B's change is refused, B reloads A's
    assert a.push(SetAssessment("L", "birads", "2"))
    b_assessment.birads["L"].setCurrentText("3")
    msg = b_findings.message.text()
    assert "BI-RADS of the left breast" in msg and "reloaded" in msg and "\n" not in msg
    assert b_assessment.birads["L"].currentText() == "2" and b.review.assessments["L"].birads == "2"
    assert _saved(store, a)["assessments"]["L"]["birads"] == "2"
    assert not b.stack.canUndo()  # the history was of a review that is not on disk any more


def _shown_fields(panel) -> list[str]:
    return [n for n, combo in panel.descriptors.items() if panel._terms.isRowVisible(combo)]


def test_descriptor_fields_follow_the_finding_type_from_the_keyboard_and_undo_restores_the_dropped(setup, qtbot):
    store, study, c, panel, _ = setup
    c.select("F1")
    assert _shown_fields(panel) == ["type"]  # nothing else applies before the type is known
    panel.descriptors["type"].setCurrentText("mass")
    assert _shown_fields(panel) == ["type", "shape", "margin", "mass_density", "internal_enhancement"]
    panel.descriptors["shape"].setCurrentText("oval")
    panel.descriptors["margin"].setCurrentText("spiculated")
    # Tab goes type -> shape -> margin -> density: the visible fields, in the panel's order
    panel.activateWindow()
    qtbot.waitUntil(panel.isActiveWindow)
    panel.descriptors["type"].setFocus()
    qtbot.keyClick(panel.descriptors["type"], Qt.Key.Key_Tab)
    assert panel.descriptors["shape"].hasFocus()
    qtbot.keyClick(panel.descriptors["shape"], Qt.Key.Key_Tab)
    qtbot.keyClick(panel.descriptors["margin"], Qt.Key.Key_Tab)
    assert panel.descriptors["mass_density"].hasFocus()

    panel.descriptors["type"].setCurrentText("calcifications")
    assert _shown_fields(panel) == ["type", "morphology", "distribution", "enhancement"]
    assert c.review.findings["F1"].descriptors == {"type": "calcifications"}
    assert "dropped oval shape, spiculated margin (not used for calcifications)" in panel.message.text()
    assert c.stack.undoText() == panel.message.text()[:-1].replace("Set", "set", 1)
    items = [panel.descriptors["distribution"].itemText(i) for i in range(panel.descriptors["distribution"].count())]
    assert items == ["—", "diffuse", "regional", "grouped", "linear", "segmental"]
    panel.descriptors["morphology"].setFocus()
    qtbot.keyClick(panel.descriptors["morphology"], Qt.Key.Key_F)  # a letter jumps to "fine pleomorphic"
    assert c.review.findings["F1"].descriptors["morphology"] == "fine pleomorphic"
    panel.descriptors["distribution"].setCurrentText("segmental")
    assert _saved(store, c)["findings"][0]["descriptors"] == {"type": "calcifications", "morphology": "fine pleomorphic",
                                                              "distribution": "segmental"}
    for _ in range(3):
        assert c.undo()
    assert c.review.findings["F1"].descriptors == {"type": "mass", "shape": "oval", "margin": "spiculated"}
    assert _shown_fields(panel)[:3] == ["type", "shape", "margin"] and panel.descriptors["shape"].currentText() == "oval"


def test_terms_an_older_review_stored_are_shown_flagged_and_dropped_on_request(setup):
    store, study, c, panel, _ = setup
    c.review.findings["F2"].descriptors = {"type": "non-mass enhancement", "shape": "irregular",
                                           "internal_enhancement": "rim enhancement"}
    c.select("F2")
    panel.refresh()
    assert _shown_fields(panel) == ["type", "distribution", "internal_enhancement"]
    assert panel.descriptors["internal_enhancement"].currentText() == "—"  # not an NME term: not offered
    assert not panel.stray_note.isHidden()
    assert "not used for non-mass enhancement: irregular shape, rim enhancement" in panel.stray_note.text()
    assert panel.drop_stray_terms()
    assert c.review.findings["F2"].descriptors == {"type": "non-mass enhancement"} and panel.stray_note.isHidden()
    assert c.undo() and c.review.findings["F2"].descriptors["shape"] == "irregular"
