"""Side panel: study facts, display controls, the analysis button/progress and its results.

Widgets bind to :class:`ViewerState` both ways with a guard flag (no update
loops). The analysis results are only formatted here, never computed: the
numbers come from :class:`core_model.domain.analysis.Analysis` as they are, with the
model identity and the not-for-clinical-use notice beside them.
"""

from __future__ import annotations

from html import escape
from types import SimpleNamespace
from typing import Any

from PySide6.QtCore import Qt, Signal
from PySide6.QtWidgets import (
    QCheckBox,
    QComboBox,
    QFormLayout,
    QGroupBox,
    QHBoxLayout,
    QLabel,
    QProgressBar,
    QPushButton,
    QScrollArea,
    QSlider,
    QVBoxLayout,
    QWidget,
)

from core_model.domain.analysis import side_source_words
from core_model.domain.notice import NO_LESION_FOUND_SHORT, SYNTHETIC_CLASSIFIER_WARNING, score_words
from core_model.domain.study import SIDE_NAMES, VIEW_KEYS, Study
from nafv_viewer.state import COMPARE_MODES, LAYOUTS, PRESETS, ViewerState
from nafv_viewer.widgets.theme import WARNING, style

LAYOUT_NAMES = {"4up": "4-up (one energy)", "8up": "8-up (LE and RC)", "1up": "1-up (active view)"}


# The classifier's output is a score, never a probability of cancer: the line that shows it says
# so every time, in words chosen by whether its weights carry a calibration (core_model.domain.notice).
SCORE_LABEL = "Model score"


def format_score(p: float | None) -> str:
    if p is None:
        return "no classifier result"
    return f"{p:.2f} on a 0–1 scale"


def breakable(text: str) -> str:
    """Allow line breaks after path separators, so a long file path wraps instead of being cut off."""
    for sep in ("/", "\\", "_"):
        text = text.replace(sep, sep + "\u200b")
    return text


def _metric_value(v: Any) -> str:
    return f"{v:.3f}" if isinstance(v, float) else str(v)


def metrics_summary(metrics: Any) -> str:
    """The card's validation figures a reader needs (AUC, Dice, on what), as one short text."""
    if not isinstance(metrics, dict):
        return ""
    parts = [f"{k} {_metric_value(v)}" for k, v in metrics.items()
             if isinstance(v, (int, float, str)) and not isinstance(v, bool) and ("auc" in k.lower() or "dice" in k.lower())]
    if isinstance(metrics.get("val_patients"), int):
        parts.append(f"on {metrics['val_patients']} validation patients")
    if isinstance(metrics.get("evaluation"), str):
        parts.append(metrics["evaluation"])
    return "; ".join(parts)


def model_lines(analysis: Any) -> list[str]:
    """One plain-text line per model: name, weights, training data, card status, validation metrics."""
    lines = []
    for role, ident in analysis.models.items():
        sha = str(ident.get("weights_sha256", "?"))[:12]
        line = f"{role}: {ident.get('name', '?')} — weights {sha}… — trained on {ident.get('trained_on', 'unknown')}"
        if ident.get("status"):  # e.g. demo or interim weights, near-chance discrimination
            line += f" — status: {ident['status']}"
        figures = metrics_summary(ident.get("metrics"))
        line += f" — validation: {figures}" if figures else " — no validation metrics on the model card"
        lines.append(line)
    return lines


def prominent_warnings(analysis: Any) -> list[str]:
    """Warnings that change how far the score can be trusted, shown above the results.

    The dual-view path (contralateral views missing, or dual-view scoring on
    four-view weights) is one: the paper reports lower accuracy for it. A
    classifier that never saw a patient, scoring a patient, is another.
    """
    return [str(w) for w in analysis.warnings if "dual-view" in str(w).lower() or str(w) == SYNTHETIC_CLASSIFIER_WARNING]


def clinical_notice(analysis: Any) -> str | None:
    if not analysis.not_for_clinical_use:
        return None
    # Imported here: core_model.models.checkpoint pulls in torch, and the window must open
    # before any model is needed (an analysis has loaded torch by now).
    from core_model.models.checkpoint import NOT_FOR_CLINICAL_USE

    notices = {str(m.get("notice") or NOT_FOR_CLINICAL_USE) for m in analysis.models.values() if m.get("not_for_clinical_use", True)}
    return " ".join(sorted(notices)) if notices else NOT_FOR_CLINICAL_USE


class SidePanel(QScrollArea):
    run_requested = Signal()
    cancel_requested = Signal()

    def __init__(self, state: ViewerState, parent: QWidget | None = None):
        super().__init__(parent)
        self.state = state
        self._updating = False
        self._shown_side: str | None = None  # the affected breast of the results on show
        self.setWidgetResizable(True)
        self.setHorizontalScrollBarPolicy(Qt.ScrollBarPolicy.ScrollBarAlwaysOff)
        body = QWidget()
        self.setWidget(body)
        col = QVBoxLayout(body)

        # Study
        box = QGroupBox("Study")
        f = QFormLayout(box)
        self.study_label = QLabel("No study open")
        self.study_label.setWordWrap(True)
        self.warnings_label = QLabel("")
        self.warnings_label.setWordWrap(True)
        style(self.warnings_label, "study_warnings")
        f.addRow(self.study_label)
        f.addRow(self.warnings_label)
        col.addWidget(box)

        # Display
        box = QGroupBox("Display")
        f = QFormLayout(box)
        self.energy_combo = QComboBox()
        self.energy_combo.addItem("LE (low energy)", "le")
        self.energy_combo.addItem("RC (recombined)", "rc")
        self.layout_combo = QComboBox()
        for name in LAYOUTS:
            self.layout_combo.addItem(LAYOUT_NAMES[name], name)
        self.preset_combo = QComboBox()
        self.compare_combo = QComboBox()
        for name in COMPARE_MODES:
            self.compare_combo.addItem(name, name)
        self.sync_check = QCheckBox("Sync zoom/pan")
        self.invert_check = QCheckBox("Invert")
        self.magnifier_check = QCheckBox("Magnifier")
        self.window_label = QLabel()
        f.addRow("Energy", self.energy_combo)
        f.addRow("Layout", self.layout_combo)
        f.addRow("Preset", self.preset_combo)
        f.addRow("Window", self.window_label)
        f.addRow("LE/RC compare", self.compare_combo)
        row = QHBoxLayout()
        for w in (self.sync_check, self.invert_check, self.magnifier_check):
            row.addWidget(w)
        f.addRow(row)
        col.addWidget(box)

        # Overlays
        box = QGroupBox("Overlays")
        f = QFormLayout(box)
        self.contours_check = QCheckBox("Lesion contours (all views)")
        self.heatmap_check = QCheckBox("Heatmap (LE views)")
        self.opacity_slider = QSlider(Qt.Orientation.Horizontal)
        self.opacity_slider.setRange(0, 100)
        f.addRow(self.contours_check)
        f.addRow(self.heatmap_check)
        f.addRow("Heatmap opacity", self.opacity_slider)
        col.addWidget(box)
        # Analysis
        box = QGroupBox("AI analysis")
        v = QVBoxLayout(box)
        # The classifier scores one breast; the reader may know which one matters.
        side_row = QFormLayout()
        self.side_combo = QComboBox()
        self.side_combo.addItem("from the images", None)
        self.side_combo.addItem("right", "R")
        self.side_combo.addItem("left", "L")
        self.side_combo.setToolTip("Which breast the model score and heatmaps are for; used at the next run")
        side_row.addRow("Affected breast", self.side_combo)
        v.addLayout(side_row)
        row = QHBoxLayout()
        self.run_button = QPushButton("Run analysis")
        self.run_button.setToolTip("Run the AI analysis (Ctrl+Return)")
        self.cancel_button = QPushButton("Cancel")
        self.cancel_button.setEnabled(False)
        row.addWidget(self.run_button)
        row.addWidget(self.cancel_button)
        v.addLayout(row)
        self.progress = QProgressBar()
        self.progress.setRange(0, 1000)
        self.progress.setValue(0)
        self.stage_label = QLabel("")
        self.auto_check = QCheckBox("Analyse automatically when a study opens")
        v.addWidget(self.progress)
        v.addWidget(self.stage_label)
        v.addWidget(self.auto_check)
        # The notice sits above the results so it is never scrolled out of sight.
        self.notice_label = QLabel("")
        self.notice_label.setWordWrap(True)
        style(self.notice_label, "clinical_notice")
        self.notice_label.setTextFormat(Qt.TextFormat.PlainText)
        self.notice_label.hide()
        v.addWidget(self.notice_label)
        self.caution_label = QLabel("")
        self.caution_label.setWordWrap(True)
        self.caution_label.setTextFormat(Qt.TextFormat.PlainText)
        style(self.caution_label, "caution")
        self.caution_label.hide()
        v.addWidget(self.caution_label)
        self.result_label = QLabel("Not analysed yet.")
        self.result_label.setWordWrap(True)
        self.result_label.setTextFormat(Qt.TextFormat.RichText)
        v.addWidget(self.result_label)
        self.model_label = QLabel("")
        self.model_label.setWordWrap(True)
        self.model_label.setTextFormat(Qt.TextFormat.RichText)
        style(self.model_label, "model_identity")
        v.addWidget(self.model_label)
        col.addWidget(box)

        col.addStretch(1)
        # Never narrower than its widest row: without a horizontal scroll bar, anything wider is cut off.
        frame = 2 * self.frameWidth()
        self.setMinimumWidth(max(300, body.minimumSizeHint().width() + self.verticalScrollBar().sizeHint().width() + frame))

        # widget -> state
        self.energy_combo.currentIndexChanged.connect(lambda i: self._to_state("energy", self.energy_combo.itemData(i)))
        self.layout_combo.currentIndexChanged.connect(lambda i: self._to_state("layout", self.layout_combo.itemData(i)))
        self.compare_combo.currentIndexChanged.connect(lambda i: self._to_state("compare", self.compare_combo.itemData(i)))
        self.preset_combo.activated.connect(self._on_preset)
        self.sync_check.toggled.connect(lambda v: self._to_state("sync", v))
        self.invert_check.toggled.connect(lambda v: self._to_state("invert", v))
        self.magnifier_check.toggled.connect(lambda v: self._to_state("magnifier", v))
        self.auto_check.toggled.connect(lambda v: self._to_state("auto_analyze", v))
        self.contours_check.toggled.connect(lambda v: self._to_state("show_contours", v))
        self.heatmap_check.toggled.connect(lambda v: self._to_state("show_heatmap", v))
        self.opacity_slider.valueChanged.connect(lambda v: self._to_state("heatmap_opacity", v / 100.0))
        self.run_button.clicked.connect(self.run_requested)
        self.side_combo.currentIndexChanged.connect(self._on_side_choice)
        self.cancel_button.clicked.connect(self.cancel_requested)
        # state -> widget
        state.subscribe(self._from_state)
        self._sync_all()

    def _to_state(self, name: str, value: Any) -> None:
        if not self._updating:
            setattr(self.state, name, value)

    def _on_preset(self, index: int) -> None:
        name = self.preset_combo.itemData(index)
        if name and not self._updating:
            self.state.apply_preset(name)

    def _from_state(self, name: str, value: Any) -> None:
        self._sync_all()

    def _sync_all(self) -> None:
        s = self.state
        self._updating = True
        try:
            self.energy_combo.setCurrentIndex(self.energy_combo.findData(s.energy))
            self.layout_combo.setCurrentIndex(self.layout_combo.findData(s.layout))
            self.compare_combo.setCurrentIndex(self.compare_combo.findData(s.compare))
            self.sync_check.setChecked(s.sync)
            self.invert_check.setChecked(s.invert)
            self.magnifier_check.setChecked(s.magnifier)
            self.auto_check.setChecked(s.auto_analyze)
            self.contours_check.setChecked(s.show_contours)
            self.heatmap_check.setChecked(s.show_heatmap)
            self.opacity_slider.setValue(int(round(s.heatmap_opacity * 100)))
            presets = PRESETS[s.energy]
            names = [self.preset_combo.itemData(i) for i in range(self.preset_combo.count())]
            if names != list(presets):
                self.preset_combo.clear()
                for name in presets:
                    self.preset_combo.addItem(name, name)
            w = s.window
            match = [n for n, cw in presets.items() if abs(cw[0] - w.center) < 1e-6 and abs(cw[1] - w.width) < 1e-6]
            self.preset_combo.setCurrentIndex(self.preset_combo.findData(match[0]) if match else -1)
            self.window_label.setText(f"{s.energy.upper()}: level {w.center:.2f}, width {w.width:.2f}")
        finally:
            self._updating = False

    # -- study and analysis ---------------------------------------------------------
    def affected_side_choice(self) -> str | None:
        """"L", "R", or None to let the analysis decide from the segmentation."""
        return self.side_combo.currentData()

    def set_affected_side_choice(self, side: str | None) -> None:
        """Show a choice made earlier (e.g. kept in the saved review), without marking the results stale."""
        prev, self._updating = self._updating, True
        try:
            self.side_combo.setCurrentIndex(max(self.side_combo.findData(side), 0))
        finally:
            self._updating = prev

    def _on_side_choice(self, index: int) -> None:
        if not self._updating and self._shown_side is not None:
            self.set_stage("affected breast changed: run the analysis again to apply it")

    def show_study(self, study: Study | None) -> None:
        self.set_affected_side_choice(None)  # a choice made for one patient never carries to the next
        if study is None:
            self.study_label.setText("No study open")
            self.warnings_label.setText("")
            return
        present = sum(1 for k in VIEW_KEYS for e in ("le", "rc") if study.has(k, e))
        # Identifiers and file names come from the files: escaped, never read as markup.
        text = f"Patient {escape(str(study.patient_id))}, study {escape(str(study.study_id))}<br>{present} of 8 images"
        if study.synthetic:
            text += "<br><b>Synthetic phantom, not patient data</b>"
        self.study_label.setTextFormat(Qt.TextFormat.RichText)
        self.study_label.setText(text)
        self.warnings_label.setTextFormat(Qt.TextFormat.RichText)
        # Each warning says itself what happened (skipped, ignored, disagrees), so no prefix.
        self.warnings_label.setText("<br>".join(escape(breakable(str(w))) for w in study.warnings))
        self.show_analysis(None)
        model = self.side_combo.model()
        for i in range(1, self.side_combo.count()):  # a breast without views cannot be chosen
            side = self.side_combo.itemData(i)
            model.item(i).setEnabled(any(k.startswith(side + "_") for k in VIEW_KEYS if study.has(k, "le") or study.has(k, "rc")))

    def set_running(self, running: bool) -> None:
        self.run_button.setEnabled(not running)
        self.cancel_button.setEnabled(running)
        self.side_combo.setEnabled(not running)  # a change mid-run would not apply to that run
        if running:
            self.progress.setValue(0)

    def set_stage(self, text: str) -> None:
        """One line under the progress bar: what the analysis does or why it stopped."""
        self.stage_label.setText(text)

    def stage(self) -> str:
        return self.stage_label.text()

    def show_stopped(self, text: str) -> None:
        """The analysis stopped without a result (cancelled, failed, dropped): buttons free, bar empty, ``text`` said."""
        self.set_running(False)
        self.progress.setValue(0)
        self.set_stage(text)

    def set_progress(self, stage: str, fraction: float) -> None:
        self.progress.setValue(int(round(1000 * fraction)))
        self.set_stage(f"{stage} ({100 * fraction:.0f} %)")

    def show_saved_ai(self, review: Any) -> None:
        """The AI result a restored review holds, worded as the saved run's (this session has not run the
        analysis, so there are no heatmaps), so this panel and the Assessment tab say the same."""
        ai = review.ai
        if not ai.get("ran"):
            self.show_analysis(None)
            return
        views: dict[str, Any] = {}
        for f in review.findings.values():
            if f.origin == "ai":
                views.setdefault(f.key, SimpleNamespace(lesions=[])).lesions.append(f)
        saved = SimpleNamespace(
            affected_side=ai.get("affected_side"), affected_side_source=ai.get("affected_side_source", "segmentation"),
            lesion_found=ai.get("lesion_found"), models=ai.get("models") or {},
            malignancy_probability=ai.get("malignancy_probability"), classifier_mode=ai.get("classifier_mode"),
            views=views, warnings=list(ai.get("warnings") or []), device="saved with the review",
            not_for_clinical_use=bool(ai.get("not_for_clinical_use", True)))
        self.show_analysis(saved)
        self.result_label.setText("<i>From the saved review (the analysis has not run in this session; "
                                  "run it for the heatmaps):</i><br>" + self.result_label.text())

    def show_analysis(self, analysis: Any, message: str | None = None) -> None:
        self._shown_side = analysis.affected_side if analysis is not None else None
        if analysis is None:
            self.result_label.setText(escape(message or "Not analysed yet."))
            self.model_label.setText("")
            self.notice_label.hide()
            self.caution_label.hide()
            return
        side = analysis.affected_side
        side_name = escape(str(SIDE_NAMES.get(side, side)))
        source = side_source_words(str(analysis.affected_side_source))
        if analysis.lesion_found is False and not side:
            lines = [f"<b>AI finding:</b> {NO_LESION_FOUND_SHORT} (no contour reached the threshold)",
                     f"<b>{SCORE_LABEL}:</b> not computed: there is no lesion to score"
                     if "classifier" in analysis.models else f"<b>{SCORE_LABEL}:</b> no classifier result"]
        else:
            side_text = f"{side_name} breast ({escape(source)})" if side else "undetermined"
            lines = [f"<b>Affected breast:</b> {side_text}"]
            if analysis.malignancy_probability is not None:
                mode = f", {escape(str(analysis.classifier_mode))} classifier" if analysis.classifier_mode else ""
                lines.append(
                    f"<b>{SCORE_LABEL}:</b> {format_score(analysis.malignancy_probability)} "
                    f"({escape(score_words(analysis.models), quote=False)}; for the {side_name} breast{mode}; not a diagnosis)"
                )
            else:
                lines.append(f"<b>{SCORE_LABEL}:</b> no classifier result")
        counts = ", ".join(f"{k.replace('_', '-')}: {len(v.lesions)}" for k, v in analysis.views.items())
        lines.append(f"<b>Contoured regions:</b> {counts or 'none'}")
        for w in analysis.warnings:
            lines.append(f"<span style='color:{WARNING}'>{escape(str(w))}</span>")
        self.result_label.setText("<br>".join(lines))
        self.model_label.setText("<br>".join(escape(x) for x in model_lines(analysis) + [f"device: {analysis.device}"]))
        notice = clinical_notice(analysis)
        if notice:
            self.notice_label.setText(notice)
            self.notice_label.show()
        else:
            self.notice_label.hide()
        caution = prominent_warnings(analysis)
        self.caution_label.setText("Caution: " + " ".join(caution) if caution else "")
        self.caution_label.setVisible(bool(caution))
