"""The caliper: measure a distance on a view by dragging, in mm from the image's pixel spacing.

One :class:`Caliper` per window serves every :class:`ViewPanel`. With the
caliper on (Shift+M), a left-drag on a view draws a line from where the button went
down to where it is, labelled with its length: in mm when the file gives the
pixel spacing, otherwise in pixels and said so. The line stays on its view
(one per view) until the reader measures again there, or presses Esc. Ends are
kept in original-image pixels, so the measurement stays where it was when the
hanging flips or the zoom changes.
"""

from __future__ import annotations

import math

import numpy as np
import pyqtgraph as pg
from PySide6.QtCore import QObject, Qt, Signal

from core_model.imaging.location import NO_SPACING
from nafv_viewer.widgets.review_editor import to_original

CALIPER_PEN = dict(color=(255, 200, 40), width=2)
TICK_PX = 6.0  # half-length of the end ticks, in screen pixels


def caliper_text(p0, p1, spacing: tuple[float, float] | None) -> str:
    """The label of a measurement between original pixels ``p0`` and ``p1``."""
    dx, dy = p1[0] - p0[0], p1[1] - p0[1]
    if spacing:
        return f"{math.hypot(dx * spacing[1], dy * spacing[0]):.1f} mm"
    return f"{math.hypot(dx, dy):.0f} px ({NO_SPACING})"


class Caliper(QObject):
    """Measurements per view key, made and drawn on the panels it is attached to."""

    enabled_changed = Signal(bool)
    measured = Signal(str, str)  # view key, label: what the status bar repeats

    def __init__(self, parent: QObject | None = None):
        super().__init__(parent)
        self.enabled = False
        self.lines: dict[str, tuple[tuple[float, float], tuple[float, float]]] = {}  # key -> ends, original px
        self._panels: list = []

    def attach(self, panel) -> None:
        self._panels.append(panel)
        panel.caliper = self

    def set_enabled(self, on: bool) -> None:
        if on != self.enabled:
            self.enabled = on
            for panel in self._panels:
                panel.graphics.viewport().setCursor(Qt.CursorShape.CrossCursor if on else Qt.CursorShape.ArrowCursor)
            self.enabled_changed.emit(on)

    def toggle(self) -> None:
        self.set_enabled(not self.enabled)

    def clear(self) -> bool:
        """Remove every measurement (Esc); True when there was one."""
        had = bool(self.lines)
        self.lines.clear()
        for panel in self._panels:
            panel.refresh_overlays()
        return had

    def text(self, key: str, spacing: tuple[float, float] | None) -> str | None:
        ends = self.lines.get(key)
        return None if ends is None else caliper_text(ends[0], ends[1], spacing)

    def drag(self, panel, ev) -> bool:
        """A left-drag on ``panel``; True when the caliper takes it (the view must not pan)."""
        img = panel.current
        if not self.enabled or img is None:
            return False
        down = panel.vb.mapSceneToView(ev.buttonDownScenePos())
        now = panel.vb.mapSceneToView(ev.scenePos())
        p0, p1 = to_original(img.flips, [(down.x(), down.y()), (now.x(), now.y())], img.shape)
        self.lines[panel.key] = ((float(p0[0]), float(p0[1])), (float(p1[0]), float(p1[1])))
        panel.refresh_overlays()
        if ev.isFinish():
            self.measured.emit(panel.key, caliper_text(p0, p1, img.spacing_mm))
        return True

    def items_for(self, panel) -> list:
        """The line, its end ticks and its label on ``panel`` (the panel adds and removes them)."""
        img = panel.current
        ends = self.lines.get(panel.key)
        if img is None or ends is None:
            return []
        pts = img.flips.to_display(np.asarray(ends, dtype=float), img.shape)
        pen = pg.mkPen(**CALIPER_PEN)
        (x0, y0), (x1, y1) = pts
        length = math.hypot(x1 - x0, y1 - y0)
        px = panel.vb.viewPixelSize()
        tick = TICK_PX * max(abs(px[0]), abs(px[1]), 1e-6)
        nx, ny = ((-(y1 - y0) / length, (x1 - x0) / length) if length > 0 else (0.0, 1.0))
        xs = [x0, x1, np.nan, x0 - nx * tick, x0 + nx * tick, np.nan, x1 - nx * tick, x1 + nx * tick]
        ys = [y0, y1, np.nan, y0 - ny * tick, y0 + ny * tick, np.nan, y1 - ny * tick, y1 + ny * tick]
        line = pg.PlotCurveItem(np.array(xs), np.array(ys), pen=pen, connect="finite")
        label = pg.TextItem(caliper_text(ends[0], ends[1], img.spacing_mm), color=CALIPER_PEN["color"],
                            anchor=(0.0, 1.0), fill=pg.mkBrush(0, 0, 0, 160))
        label.setPos(float(x1), float(y1))
        for z, it in ((9, line), (10, label)):
            it.setZValue(z)
        return [line, label]
