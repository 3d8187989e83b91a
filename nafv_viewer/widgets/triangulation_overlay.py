"""The triangulation band drawn on the other view of the breast while a finding is selected.

The band itself is computed in :mod:`core_model.imaging.triangulation` from the
nipple landmarks of the two views' analyses; here it becomes two dashed
ellipses around the other view's nipple and a label saying what the band is.
"""

from __future__ import annotations

import numpy as np
import pyqtgraph as pg
from PySide6.QtCore import Qt

from core_model.imaging.triangulation import triangulation_band

BAND_PEN = dict(color=(120, 200, 255, 200), width=1.5, style=Qt.PenStyle.DashLine)
STEPS = 180


def other_view(key: str) -> str:
    """The view of the same breast in the other projection: L_CC <-> L_MLO."""
    side, view = key.split("_")
    return f"{side}_{'MLO' if view == 'CC' else 'CC'}"


def _ellipse(center_display, radii, img) -> np.ndarray:
    t = np.linspace(0.0, 2 * np.pi, STEPS)
    xy = np.stack([center_display[0] + radii[0] * np.cos(t), center_display[1] + radii[1] * np.sin(t)], axis=1)
    h, w = img.shape
    # the band only means something on the image: clip the arcs to it
    outside = (xy[:, 0] < 0) | (xy[:, 0] > w) | (xy[:, 1] < 0) | (xy[:, 1] > h)
    xy[outside] = np.nan
    return xy


def band_items(panel, polygon, src_landmarks, src_spacing) -> list:
    """Items for ``panel`` (the other view) for a finding ``polygon`` (original px) of the source view."""
    img, vr = panel.current, panel.view_result
    if img is None or vr is None or not getattr(vr, "landmarks", None):
        return []
    band = triangulation_band(polygon, src_landmarks, src_spacing, vr.landmarks, img.spacing_mm)
    if band is None:
        return []
    center = img.flips.to_display(np.asarray([band.center], float), img.shape)[0]
    pen = pg.mkPen(**BAND_PEN)
    items = []
    for radii in (band.inner, band.outer):
        if radii[0] <= 0 or radii[1] <= 0:
            continue
        xy = _ellipse(center, radii, img)
        items.append(pg.PlotCurveItem(xy[:, 0], xy[:, 1], pen=pen, connect="finite"))
    label = pg.TextItem(f"same distance: {band.label()}", color=BAND_PEN["color"][:3], anchor=(0.5, 1.0),
                        fill=pg.mkBrush(0, 0, 0, 140))
    outer = _ellipse(center, band.outer, img)
    finite = outer[np.isfinite(outer[:, 0])]
    if len(finite):
        pick = finite[np.argmin(finite[:, 1])]  # the top of the outer arc on the image: clear of the status bar
        label.setPos(float(pick[0]), float(pick[1]))
        items.append(label)
    for it in items:
        it.setZValue(4)  # under the contours
    return items
