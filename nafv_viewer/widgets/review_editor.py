"""Review findings on the hung views: drawn by state, selected by click, edited with the mouse.

One :class:`ReviewEditor` per window serves every :class:`ViewPanel`. It
draws the findings of the panel's view (proposed: yellow dotted; accepted:
green solid; edited: cyan dashed; rejected: faint grey, or hidden), and turns
mouse gestures into :mod:`core_model.review.model` commands pushed through the
:class:`~nafv_viewer.widgets.findings_panel.ReviewController` (saved at once,
undoable):

- click a contour: select it (the findings list follows);
- drag a vertex of the selected contour: move it (its handles are small hollow rings, so the margin shows);
- Shift+click near the selected contour: add a vertex on the nearest segment;
- Ctrl+click or right-click a vertex: remove it;
- Draw mode: each click adds a point; Enter or a double-click closes the
  contour (a reader finding), Esc cancels; a contour mostly off the breast
  is kept only when the reader confirms it.

Contours are stored in original-image pixels; the panels show images flipped
for the hanging, so every point goes through :func:`to_original` /
``Flips.to_display``.
"""

from __future__ import annotations

import math

import numpy as np
import pyqtgraph as pg
from PySide6.QtCore import QObject, Qt, Signal
from PySide6.QtWidgets import QMessageBox, QWidget

from core_model.imaging.tissue import on_tissue
from core_model.review.model import (ACCEPTED, EDITED, PROPOSED, REJECTED, AddFinding, InsertVertex, Link, MoveVertex,
                               RemoveVertex)
from nafv_viewer.widgets.triangulation_overlay import band_items, other_view

# Colour and line style per state; the style differs too so the states read in grey.
STATE_PENS = {
    PROPOSED: dict(color=(255, 210, 0), width=2, style=Qt.PenStyle.DotLine),
    ACCEPTED: dict(color=(60, 220, 90), width=2, style=Qt.PenStyle.SolidLine),
    EDITED: dict(color=(0, 210, 255), width=2, style=Qt.PenStyle.DashLine),
    REJECTED: dict(color=(150, 150, 150, 110), width=1, style=Qt.PenStyle.DotLine),
}
SELECTED_WIDTH = 4
DRAFT_PEN = dict(color=(255, 80, 200), width=2, style=Qt.PenStyle.DashLine)
HANDLE_PX = 9  # a vertex is "hit" within this many screen pixels
HANDLE_SIZE = 5  # drawn smaller than the hit area: AI contours have many vertices
HANDLE_ALPHA = 150


def to_original(flips, xy, shape) -> np.ndarray:
    """Scene (display) coordinates -> original (x, y) pixel coordinates; inverse of ``Flips.to_display``."""
    h, w = shape
    out = np.array(xy, dtype=np.float64, copy=True).reshape(-1, 2)
    if flips.horizontal:
        out[:, 0] = w - out[:, 0]
    if flips.vertical:
        out[:, 1] = h - out[:, 1]
    return out - 0.5


def on_tissue_fraction(img, points) -> float:
    """Share of a contour's vertices, centroid and inner points (original pixels) that lie on the breast."""
    pts = np.asarray(points, dtype=float).reshape(-1, 2)
    centre = pts.mean(axis=0)
    samples = np.vstack([pts, centre[None], (pts + centre) / 2])  # the outline, its centre and half-way in
    disp = img.flips.to_display(samples, img.shape)
    coarse = img.levels[-1]  # always present, and the breast mask is coarse anyway
    scale = np.array([coarse.shape[1] / img.shape[1], coarse.shape[0] / img.shape[0]])
    return float(np.mean(on_tissue(coarse, disp * scale)))


def _point_in_polygon(x: float, y: float, poly: np.ndarray) -> bool:
    inside = False
    n = len(poly)
    for i in range(n):
        x0, y0 = poly[i]
        x1, y1 = poly[(i + 1) % n]
        if (y0 > y) != (y1 > y) and x < (x1 - x0) * (y - y0) / (y1 - y0) + x0:
            inside = not inside
    return inside


def _segment_distance(p: np.ndarray, a: np.ndarray, b: np.ndarray) -> float:
    d = b - a
    t = 0.0 if not d.any() else float(np.clip(np.dot(p - a, d) / np.dot(d, d), 0.0, 1.0))
    return float(np.linalg.norm(p - (a + t * d)))


class ReviewEditor(QObject):
    """Draws review findings on view panels and edits them with the mouse (see module doc)."""

    mode_changed = Signal(str)  # "select" or "draw"
    message = Signal(str)  # a hint for the status bar

    def __init__(self, parent: QObject | None = None):
        super().__init__(parent)
        self.controller = None
        self.panels: list = []
        self.mode = "select"
        self.show_rejected = True
        self.draft: list[tuple[float, float]] = []  # original pixels of the contour being drawn
        self.draft_key: str | None = None
        self._drag: dict | None = None  # finding id, vertex index, panel, display points

    # -- wiring --------------------------------------------------------------
    def attach(self, panel) -> None:
        self.panels.append(panel)
        panel.editor = self

    def set_controller(self, controller) -> None:
        self.controller = controller
        self.cancel_draw()
        if controller is not None:
            controller.changed.connect(lambda _how: self.redraw())
            controller.selection_changed.connect(lambda _fid: self.redraw())
        self.redraw()

    @property
    def active(self) -> bool:
        return self.controller is not None

    def redraw(self, key: str | None = None) -> None:
        for p in self.panels:
            if key is None or p.key == key:
                p.refresh_overlays()

    def set_show_rejected(self, show: bool) -> None:
        self.show_rejected = bool(show)
        self.redraw()

    # -- draw mode ----------------------------------------------------------------
    def start_draw(self) -> None:
        if not self.active:
            self.message.emit("Open a study first: new contours belong to its review.")
            return
        self.mode, self.draft, self.draft_key = "draw", [], None
        self.mode_changed.emit("draw")
        self.message.emit("Draw: click the contour's points on a view; Enter or double-click closes it, Esc cancels.")

    def cancel_draw(self) -> bool:
        was = self.mode == "draw"
        key = self.draft_key
        self.mode, self.draft, self.draft_key = "select", [], None
        if was:
            self.mode_changed.emit("select")
            self.redraw(key)
        return was

    def finish_draw(self) -> bool:
        if self.mode != "draw":
            return False
        pts, key = list(self.draft), self.draft_key
        if len(pts) < 3 or key is None:
            self.message.emit(f"A contour needs at least 3 points ({len(pts)} so far): keep clicking, or Esc to cancel.")
            return False
        panel = next((p for p in self.panels if p.key == key and p.current is not None), None)
        if panel is not None and on_tissue_fraction(panel.current, pts) < 0.5 and not self.confirm_outside():
            self.cancel_draw()
            self.message.emit("Contour discarded: it lay outside the breast.")
            return False
        self.cancel_draw()
        cmd = AddFinding(key, pts)
        if self.controller.push(cmd):
            self.controller.select(cmd.fid)
            return True
        return False

    def confirm_outside(self) -> bool:
        """Ask whether to keep a contour drawn mostly off the breast (a slip of the mouse, or a label)."""
        answer = QMessageBox.question(
            self.parent() if isinstance(self.parent(), QWidget) else None, "Contour outside the breast",
            "Most of this contour lies outside the breast, on the background. Keep it as a finding?",
            QMessageBox.StandardButton.Yes | QMessageBox.StandardButton.No, QMessageBox.StandardButton.No)
        return answer == QMessageBox.StandardButton.Yes

    # -- drawing -------------------------------------------------------------------
    def items_for(self, panel) -> list:
        """Graphics items for ``panel``'s findings (the panel adds and removes them)."""
        img = panel.current
        if not self.active or img is None:
            return []
        items = []
        selected = self.controller.selected
        for f in self.controller.review.on_view(panel.key):
            if f.state == REJECTED and not self.show_rejected:
                continue
            pts = img.flips.to_display(np.asarray(f.polygon, dtype=float), img.shape)
            if self._drag and self._drag["fid"] == f.id and self._drag["panel"] is panel:
                pts = self._drag["pts"]
            closed = np.vstack([pts, pts[:1]])
            spec = dict(STATE_PENS[f.state])
            if f.id == selected:
                spec["width"] = SELECTED_WIDTH
            curve = pg.PlotCurveItem(closed[:, 0], closed[:, 1], pen=pg.mkPen(**spec))
            curve.setZValue(5)
            curve.finding_id = f.id
            items.append(curve)
            label = pg.TextItem(f.id + (" ⇄" if f.link else ""), color=spec["color"], anchor=(0.5, 1.0))
            label.setPos(float(pts[:, 0].mean()), float(pts[:, 1].min()))
            label.setZValue(6)
            items.append(label)
            if f.id == selected:
                # hollow, thin and half transparent: the margin the reader is judging stays visible between
                # and through them (AI contours have 40-70 vertices); the hit area stays HANDLE_PX
                handles = pg.ScatterPlotItem(pts[:, 0], pts[:, 1], size=HANDLE_SIZE, symbol="o",
                                             pen=pg.mkPen((255, 255, 255, HANDLE_ALPHA), width=1), brush=None, pxMode=True)
                handles.setZValue(7)
                items.append(handles)
        items += self._band_items(panel, selected)
        if self.mode == "draw" and self.draft and self.draft_key == panel.key:
            pts = img.flips.to_display(np.asarray(self.draft, dtype=float), img.shape)
            items.append(pg.PlotDataItem(pts[:, 0], pts[:, 1], pen=pg.mkPen(**DRAFT_PEN), symbol="o", symbolSize=7,
                                         symbolBrush=DRAFT_PEN["color"]))
            items[-1].setZValue(8)
        return items

    def _band_items(self, panel, selected: str | None) -> list:
        """The triangulation band on ``panel`` when the selected finding is on the other view of its breast."""
        f = self.controller.review.findings.get(selected) if selected else None
        if f is None or other_view(f.key) != panel.key or len(f.polygon) < 3:
            return []
        src = next((p for p in self.panels if p.key == f.key and p.current is not None and p.view_result is not None), None)
        if src is None or not getattr(src.view_result, "landmarks", None):
            return []
        return band_items(panel, f.polygon, src.view_result.landmarks, src.current.spacing_mm)

    # -- hit tests (scene coordinates of the panel) ---------------------------------------
    def _display_polys(self, panel) -> list[tuple[str, np.ndarray]]:
        img = panel.current
        out = []
        for f in self.controller.review.on_view(panel.key):
            if f.state == REJECTED and not self.show_rejected:
                continue
            out.append((f.id, img.flips.to_display(np.asarray(f.polygon, dtype=float), img.shape)))
        return out

    @staticmethod
    def _tolerance(panel) -> float:
        px = panel.vb.viewPixelSize()
        return HANDLE_PX * max(abs(px[0]), abs(px[1]), 1e-6)

    def _vertex_at(self, panel, p: np.ndarray, fid: str) -> int | None:
        for pid, pts in self._display_polys(panel):
            if pid == fid:
                d = np.linalg.norm(pts - p, axis=1)
                i = int(np.argmin(d))
                return i if d[i] <= self._tolerance(panel) else None
        return None

    def _finding_at(self, panel, p: np.ndarray) -> str:
        tol = self._tolerance(panel)
        best, best_d = "", math.inf
        for fid, pts in self._display_polys(panel):
            d = min(_segment_distance(p, pts[i], pts[(i + 1) % len(pts)]) for i in range(len(pts)))
            if d <= tol and d < best_d:
                best, best_d = fid, d
        if best:
            return best
        for fid, pts in self._display_polys(panel):  # inside a contour selects it too
            if _point_in_polygon(float(p[0]), float(p[1]), pts):
                return fid
        return ""

    # -- mouse (called by the panel) -----------------------------------------------------
    def click(self, panel, ev) -> bool:
        """A click on ``panel``; True when the editor used it."""
        img = panel.current
        if not self.active or img is None or not panel.state.show_contours and self.mode != "draw":
            return False
        sp = panel.vb.mapSceneToView(ev.scenePos())
        p = np.array([sp.x(), sp.y()])
        mods = ev.modifiers()
        if self.mode == "draw":
            if ev.button() != Qt.MouseButton.LeftButton:
                return False
            if self.draft_key not in (None, panel.key):
                self.message.emit("Finish (Enter) or cancel (Esc) the contour on the other view first.")
                return True
            if ev.double():
                self.finish_draw()
                return True
            self.draft_key = panel.key
            self.draft.append(tuple(to_original(img.flips, p, img.shape)[0]))
            self.redraw(panel.key)
            return True
        fid = self.controller.selected
        on_selected = fid and self.controller.review.findings.get(fid) is not None and \
            self.controller.review.findings[fid].key == panel.key
        if on_selected and (ev.button() == Qt.MouseButton.RightButton or mods & Qt.KeyboardModifier.ControlModifier):
            i = self._vertex_at(panel, p, fid)
            if i is not None:
                self.controller.push(RemoveVertex(fid, i))
                return True
            return ev.button() == Qt.MouseButton.RightButton
        if ev.button() != Qt.MouseButton.LeftButton:
            return False
        if on_selected and mods & Qt.KeyboardModifier.ShiftModifier:
            return self.insert_vertex(panel, p)
        target = self._finding_at(panel, p)
        if fid and not on_selected and target and mods & Qt.KeyboardModifier.ShiftModifier:
            # Shift+click on the other view's contour: the reader says these are one lesion.
            findings = self.controller.review.findings
            if findings[fid].link == target:
                self.message.emit("These two contours are already linked.")
                return True
            earlier = [f for f in (findings[fid].link, findings[target].link) if f]
            if self.controller.push(Link(fid, target)):
                self.message.emit("Linked: the CC and MLO contours are marked as one lesion"
                                  + (" (their earlier links were removed)." if earlier else "."))
            return True
        self.controller.select(target)
        return True

    def insert_vertex(self, panel, p: np.ndarray) -> bool:
        """Add a vertex at scene point ``p`` on the selected contour's nearest segment."""
        fid = self.controller.selected
        img = panel.current
        f = self.controller.review.findings.get(fid)
        if f is None or f.key != panel.key or img is None:
            return False
        pts = img.flips.to_display(np.asarray(f.polygon, dtype=float), img.shape)
        d = [_segment_distance(p, pts[i], pts[(i + 1) % len(pts)]) for i in range(len(pts))]
        i = int(np.argmin(d))
        xy = to_original(img.flips, p, img.shape)[0]
        return self.controller.push(InsertVertex(fid, i + 1, (float(xy[0]), float(xy[1]))))

    def drag(self, panel, ev) -> bool:
        """A left-drag on ``panel``; True when it moves a vertex (the view must not pan)."""
        if not self.active or panel.current is None or self.mode == "draw" and self._drag is None:
            return self.mode == "draw" and self.active  # no panning while drawing
        img = panel.current
        if ev.isStart():
            fid = self.controller.selected
            f = self.controller.review.findings.get(fid)
            if f is None or f.key != panel.key or not panel.state.show_contours:
                return False
            down = panel.vb.mapSceneToView(ev.buttonDownScenePos())
            i = self._vertex_at(panel, np.array([down.x(), down.y()]), fid)
            if i is None:
                return False
            pts = img.flips.to_display(np.asarray(f.polygon, dtype=float), img.shape)
            self._drag = {"fid": fid, "index": i, "panel": panel, "pts": pts}
        if self._drag is None or self._drag["panel"] is not panel:
            return False
        sp = panel.vb.mapSceneToView(ev.scenePos())
        self._drag["pts"][self._drag["index"]] = (sp.x(), sp.y())
        if ev.isFinish():
            d, self._drag = self._drag, None
            xy = to_original(img.flips, d["pts"][d["index"]], img.shape)[0]
            if not self.controller.push(MoveVertex(d["fid"], d["index"], (float(xy[0]), float(xy[1])))):
                panel.refresh_overlays()
        else:
            panel.refresh_overlays()
        return True
