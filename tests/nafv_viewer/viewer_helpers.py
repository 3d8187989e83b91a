"""Helpers shared by the viewer tests: simulated mouse drags, a hand-made Analysis, a fake analyzer.

A module with its own name (not conftest), so a test imports it unambiguously whichever test
folders run together.
"""

from __future__ import annotations

import threading
import time

import numpy as np

from core_model.domain.analysis import Analysis, Lesion, ViewResult
from core_model.domain.errors import NafvError
from core_model.domain.study import VIEW_KEYS
from tests.model_files import analysis_of


def send_drag(widget, start, end, button) -> None:
    """Press ``button`` at ``start``, move in 5 steps to ``end`` and release (QPointF, widget coordinates)."""
    from PySide6.QtCore import QPointF, Qt
    from PySide6.QtGui import QMouseEvent
    from PySide6.QtWidgets import QApplication

    start, end = QPointF(start), QPointF(end)
    none = Qt.KeyboardModifier.NoModifier
    QApplication.sendEvent(widget, QMouseEvent(QMouseEvent.Type.MouseButtonPress, start, widget.mapToGlobal(start), button, button, none))
    for i in range(1, 6):
        p = start + (end - start) * (i / 5)
        QApplication.sendEvent(widget, QMouseEvent(QMouseEvent.Type.MouseMove, p, widget.mapToGlobal(p), Qt.MouseButton.NoButton, button, none))
    QApplication.sendEvent(widget, QMouseEvent(QMouseEvent.Type.MouseButtonRelease, end, widget.mapToGlobal(end), button, Qt.MouseButton.NoButton, none))
    QApplication.processEvents()


def make_analysis(study, not_for_clinical_use: bool = True) -> Analysis:
    """One square 'lesion' per view of ``study`` at a known place, plus a heatmap peaking there."""
    views = {}
    for key in VIEW_KEYS:
        img = study.get(key, "le") or study.get(key, "rc")
        if img is None:
            continue
        h, w = img.shape
        x0, y0, x1, y1 = w * 0.3, h * 0.4, w * 0.4, h * 0.5
        poly = np.array([[x0, y0], [x1, y0], [x1, y1], [x0, y1]], dtype=float)
        mask = np.zeros((h, w), np.uint8)
        mask[int(y0) : int(y1), int(x0) : int(x1)] = 1
        yy, xx = np.mgrid[0:h, 0:w]
        heat = np.exp(-(((xx - (x0 + x1) / 2) / (w * 0.1)) ** 2 + ((yy - (y0 + y1) / 2) / (h * 0.1)) ** 2)).astype(np.float32)
        views[key] = ViewResult(key=key, mask=mask, heatmap=heat, lesions=[Lesion(poly, 0.8, float(mask.sum()), (x0, y0, x1, y1))])
    ident = {
        "name": "nafv_seg_test",
        "weights_sha256": "ab" * 32,
        "trained_on": "hand-made test analysis",
        "not_for_clinical_use": not_for_clinical_use,
        "notice": "Research software: not for clinical use.",
    }
    return analysis_of(views, {"segmentation": ident, "classifier": dict(ident, name="nafv_cls_test")})


class FakeAnalyzer:
    """Returns :func:`make_analysis` after ``steps`` x ``delay_s``, reporting progress and honouring cancel.

    With ``hold`` (a threading.Event), it stops after the first step until the
    event is set, still honouring cancel: a test can cancel with certainty.
    """

    def __init__(self, steps: int = 5, delay_s: float = 0.0, fail: str | None = None, hold: threading.Event | None = None):
        self.steps, self.delay_s, self.fail, self.hold = steps, delay_s, fail, hold
        self.calls = 0
        self.progress_seen: list[tuple[str, float]] = []
        self.sides_asked: list[str | None] = []

    def analyze(self, study, progress=None, cancel=None, affected_side=None):
        self.calls += 1
        self.sides_asked.append(affected_side)
        for i in range(self.steps):
            if cancel is not None:
                cancel.check()
            time.sleep(self.delay_s)
            if progress is not None:
                progress("segmentation", (i + 1) / self.steps)
            while i == 0 and self.hold is not None and not self.hold.wait(0.01):
                if cancel is not None:
                    cancel.check()
        if self.fail:
            raise NafvError(self.fail)
        a = make_analysis(study)
        if affected_side is not None:  # as the real analyzer: the caller's side, said to be the caller's
            a.affected_side, a.affected_side_source = affected_side, "caller"
        return a


class TwoStepAnalyzer(FakeAnalyzer):
    """Gives the result first and its heatmaps after, as the real analyzer does; the heatmaps wait for
    ``release`` (honouring cancel), so a test can act between the two."""

    def __init__(self):
        super().__init__()
        self.release = threading.Event()

    def analyze_first(self, study, progress=None, cancel=None, affected_side=None):
        analysis = self.analyze(study, progress, cancel, affected_side)
        release = self.release

        class Pending:
            def compute(self, cancel=None, progress=None):
                while not release.wait(0.01):
                    if cancel is not None:
                        cancel.check()
                if progress is not None:
                    progress("explain", 1.0)
                from core_model.inference.heatmaps import Heatmaps

                return Heatmaps(maps={}, target="malignant", method=f"fake Grad-CAM of {study.patient_id}")

        return analysis, Pending()
