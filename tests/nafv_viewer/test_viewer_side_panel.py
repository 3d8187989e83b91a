"""Side panel wording: a score is never shown as a probability, the card's status and figures are,
the dual-view caution stands out, and text from the files is never read as markup."""

from pathlib import Path

import numpy as np
import pytest

from core_model.domain.study import Study, StudyImage
from nafv_viewer.state import ViewerState
from nafv_viewer.widgets.side_panel import SidePanel

from viewer_helpers import make_analysis

from core_model.inference.analyzer import DUAL_VIEW_ON_FOUR_VIEW_WARNING as DUAL  # the analyzer's own words


@pytest.fixture
def panel(qtbot):
    p = SidePanel(ViewerState())
    qtbot.addWidget(p)
    p.resize(320, 900)
    p.show()
    return p


def _study(patient="P1", warnings=()):
    s = Study(patient_id=patient, study_id="S1")
    for key in ("L_CC", "L_MLO", "R_CC", "R_MLO"):
        side, view = key.split("_")
        s.add(StudyImage(side, view, "le", np.full((40, 30), 100, np.uint8), Path(f"{key}.png")))
    s.warnings.extend(warnings)
    return s


def test_score_is_labelled_uncalibrated_with_card_status_and_metrics(panel):
    a = make_analysis(_study())
    a.models["classifier"]["status"] = "demo weights: near-chance discrimination (AUC about 0.6)"
    a.models["classifier"]["metrics"] = {"auc": "0.599 ± 0.061", "pooled_auc": 0.614, "precision": "0.527",
                                         "evaluation": "5-fold patient-level cross-validation"}
    a.models["segmentation"]["metrics"] = {"val_dice": 0.5371586, "val_patients": 28, "best_epoch": 24}
    panel.show_analysis(a)
    text = panel.result_label.text()
    assert "Model score:</b> 0.73 on a 0–1 scale (uncalibrated model score, not a probability of cancer;" in text
    assert "probability:" not in text and "73 %" not in text
    seg_line, cls_line, device = panel.model_label.text().split("<br>")
    assert "validation: val_dice 0.537; on 28 validation patients" in seg_line and "best_epoch" not in seg_line
    assert "status: demo weights: near-chance discrimination (AUC about 0.6)" in cls_line
    assert "auc 0.599 ± 0.061; pooled_auc 0.614; 5-fold patient-level cross-validation" in cls_line
    assert "precision" not in cls_line and device == "device: cpu"
    assert not panel.caution_label.isVisible()


def test_a_calibrated_score_says_what_it_was_calibrated_on(panel):
    a = make_analysis(_study())
    a.models["classifier"]["calibration"] = {"method": "temperature scaling", "temperature": 1.7}
    panel.show_analysis(a)
    text = panel.result_label.text()
    assert "temperature-scaled on its training data's validation studies only, not a probability of cancer" in text
    assert "uncalibrated" not in text


def test_no_lesion_found_is_said_and_no_score_shown(panel):
    a = make_analysis(_study())
    a.affected_side, a.lesion_found, a.malignancy_probability, a.classifier_mode = None, False, None, None
    panel.show_analysis(a)
    text = panel.result_label.text()
    assert "<b>AI finding:</b> no lesion found (no contour reached the threshold)" in text
    assert "not computed: there is no lesion to score" in text and "Affected breast" not in text


def test_card_without_metrics_says_so(panel):
    panel.show_analysis(make_analysis(_study()))
    assert panel.model_label.text().count("no validation metrics on the model card") == 2


def test_dual_view_warning_is_shown_prominently(panel):
    a = make_analysis(_study())
    a.classifier_mode = "dual-view"
    a.warnings.append(DUAL)
    a.warnings.append("R_MLO: not segmented")
    panel.show_analysis(a)
    assert panel.caution_label.isVisible() and not panel.caution_label.visibleRegion().isEmpty()
    assert panel.caution_label.text() == "Caution: " + DUAL
    assert "R_MLO: not segmented" in panel.result_label.text()
    panel.show_analysis(None)
    assert not panel.caution_label.isVisible()


def test_patient_id_and_file_warnings_are_not_markup(panel):
    study = _study(patient="<b>P9</b>", warnings=["x<i>.dcm: not an image"])
    panel.show_study(study)
    label = panel.study_label.text()
    assert "Patient &lt;b&gt;P9&lt;/b&gt;" in label and "<b>P9" not in label
    assert "x&lt;i&gt;.dcm" in panel.warnings_label.text() and "<i>" not in panel.warnings_label.text()
    a = make_analysis(study)
    a.warnings.append("<img src=x>")
    a.models["segmentation"]["trained_on"] = "<script>"
    panel.show_analysis(a)
    assert "&lt;img src=x&gt;" in panel.result_label.text() and "<img" not in panel.result_label.text()
    assert "&lt;script&gt;" in panel.model_label.text()


def test_nothing_is_cut_off_at_the_narrowest_width(qtbot):
    """The panel has no horizontal scroll bar, so at its minimum width every row must still fit."""
    from PySide6.QtWidgets import QApplication

    p = SidePanel(ViewerState())
    qtbot.addWidget(p)
    long_path = "C:\\PACS\\export\\" + "_".join(["PATIENT_STUDY_SERIES_0123456789"] * 3) + "_IM000123.dcm"
    p.show_study(_study(warnings=[f"{long_path}: not a DICOM file"]))
    p.show_analysis(make_analysis(_study()))
    p.resize(p.minimumWidth(), 900)
    p.show()
    QApplication.processEvents()
    body = p.widget()
    assert body.minimumSizeHint().width() <= p.viewport().width()
    assert body.width() <= p.viewport().width()
    assert p.side_combo.geometry().right() <= p.viewport().width()
