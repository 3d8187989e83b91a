"""Assessment panel: per-breast BI-RADS, ACR composition and BPE, free-text findings, reader name, sign-off.

The AI's model score (not a probability of cancer; worded by whether its weights are calibrated) is shown in its own labelled line beside the
reader's BI-RADS choice and never pre-selects or changes it. Every field goes
through the :class:`~nafv_viewer.widgets.findings_panel.ReviewController`, so
it is saved at once and undone with everything else; free text is committed
when the field loses focus (one undo step per edit, not per keystroke).
"""

from __future__ import annotations

from PySide6.QtCore import QEvent, QObject, Signal
from PySide6.QtWidgets import (QComboBox, QFormLayout, QGroupBox, QHBoxLayout, QLabel, QLineEdit, QPlainTextEdit,
                               QPushButton, QVBoxLayout, QWidget)

from core_model.domain.notice import NO_LESION_FOUND_SHORT, score_words
from core_model.review.lexicon import BPE
from core_model.review.model import BIRADS, DENSITIES, SetAssessment, SetReader
from core_model.review.signoff import is_locked, open_addendum, status_text
from nafv_viewer.widgets.findings_panel import ReviewController, keep_keys
from nafv_viewer.widgets.theme import style_as_page

SIDES = (("R", "Right breast"), ("L", "Left breast"))
NOT_GIVEN = "—"


def ai_text(review, side: str) -> str:
    """What the AI said about this breast, worded as the AI's and not as a category."""
    p = review.ai.get("malignancy_probability")
    if p is None and review.ai.get("lesion_found") is False:
        return f"AI: {NO_LESION_FOUND_SHORT}, so no model score"
    if p is None:
        return "AI: no model score (no classifier ran)"
    if review.ai.get("affected_side") != side:
        return "AI: scored the other breast"
    mode = review.ai.get("classifier_mode") or "classifier"
    note = " — not validated, not for clinical use" if review.not_for_clinical_use else ""
    return f"AI model score: {p:.2f} ({mode}; {score_words(review.ai.get('models'))}){note}"


class _FocusOut(QObject):
    def __init__(self, fn, parent):
        super().__init__(parent)
        self._fn = fn

    def eventFilter(self, obj, event):  # noqa: N802 - Qt's name
        if event.type() == QEvent.Type.FocusOut:
            self._fn()
        return False


class AssessmentPanel(QWidget):
    finalise_requested = Signal()  # the window's finalise action does it (and says why when it cannot)
    def __init__(self, controller: ReviewController, parent: QWidget | None = None):
        super().__init__(parent)
        self.controller = controller
        self._updating = False
        self.birads: dict[str, QComboBox] = {}
        self.density: dict[str, QComboBox] = {}
        self.text: dict[str, QPlainTextEdit] = {}
        self.ai: dict[str, QLabel] = {}
        self.bpe: dict[str, QComboBox] = {}

        lay = QVBoxLayout(self)
        self.signoff_label = QLabel(self)  # who signed and when; empty while the review is being read
        self.signoff_label.setWordWrap(True)
        self.signoff_label.setObjectName("signoff")
        lay.addWidget(self.signoff_label)
        for side, title in SIDES:
            box = QGroupBox(title, self)
            form = QFormLayout(box)
            b = QComboBox(box)
            b.addItems([NOT_GIVEN, *BIRADS])
            ai = QLabel(box)
            ai.setWordWrap(True)
            row = QHBoxLayout()
            row.addWidget(b)
            row.addWidget(ai, 1)  # beside the reader's call, never in its place
            d = QComboBox(box)
            d.addItems([NOT_GIVEN, *(x.upper() for x in DENSITIES)])
            bpe = QComboBox(box)
            bpe.addItems([NOT_GIVEN, *BPE])
            t = QPlainTextEdit(box)
            t.setPlaceholderText("Findings in the reader's words")
            t.setMaximumHeight(80)
            form.addRow("BI-RADS", row)
            form.addRow("Composition (ACR)", d)
            form.addRow("BPE", bpe)
            form.addRow("Findings", t)
            lay.addWidget(box)
            self.birads[side], self.density[side], self.text[side], self.ai[side] = b, d, t, ai
            b.currentTextChanged.connect(lambda v, s=side: self._set(s, "birads", None if v == NOT_GIVEN else v))
            d.currentTextChanged.connect(lambda v, s=side: self._set(s, "density", None if v == NOT_GIVEN else v.lower()))
            t.installEventFilter(_FocusOut(lambda s=side: self.commit_text(s), t))
            bpe.currentTextChanged.connect(lambda v, s=side: self._set(s, "bpe", None if v == NOT_GIVEN else v))
            self.bpe[side] = bpe
            for combo in (b, d, bpe):
                keep_keys(combo)
        self.reader = QLineEdit(self)
        self.reader.setPlaceholderText("Reader name")
        reader_form = QFormLayout()
        reader_form.addRow("Reader", self.reader)
        lay.addLayout(reader_form)
        self.finalise_btn = QPushButton("Finalise (Ctrl+Shift+F)", self)
        self.finalise_btn.setToolTip("Sign the review (or the open addendum) with the reader's name: it is then locked")
        self.finalise_btn.clicked.connect(self.finalise_requested)
        lay.addWidget(self.finalise_btn)
        lay.addStretch(1)  # spare height below the fields, not inside the forms
        self.reader.editingFinished.connect(self.commit_reader)
        style_as_page(self)
        controller.changed.connect(lambda _how: self.refresh())
        self.refresh()

    # ---- controller -> widget
    def refresh(self) -> None:
        review = self.controller.review
        self._updating = True
        try:
            for side, _ in SIDES:
                a = review.assessments[side]
                self.birads[side].setCurrentText(a.birads or NOT_GIVEN)
                self.density[side].setCurrentText(a.density.upper() if a.density else NOT_GIVEN)
                self.bpe[side].setCurrentText(a.bpe or NOT_GIVEN)
                if self.text[side].toPlainText() != a.text:
                    self.text[side].setPlainText(a.text)
                self.ai[side].setText(ai_text(review, side))
            if self.reader.text() != review.reader:
                self.reader.setText(review.reader)
            said = status_text(review)
            if is_locked(review):
                said += " — locked (Ctrl+Shift+A opens an addendum)"
            self.signoff_label.setText(said)
            self.signoff_label.setVisible(bool(said))
            self.finalise_btn.setEnabled(not is_locked(review))
            self.finalise_btn.setText("Sign the addendum (Ctrl+Shift+F)" if open_addendum(review) is not None
                                      else "Finalise (Ctrl+Shift+F)")
        finally:
            self._updating = False

    # ---- widget -> controller
    def _set(self, side: str, field: str, value) -> None:
        if self._updating or getattr(self.controller.review.assessments[side], field) == value:
            return
        if not self.controller.push(SetAssessment(side, field, value)):
            self.refresh()

    def commit_text(self, side: str) -> None:
        self._set(side, "text", self.text[side].toPlainText())

    def commit_reader(self) -> None:
        name = self.reader.text().strip()
        if not self._updating and name != self.controller.review.reader:
            self.controller.push(SetReader(name))
