"""Measuring and triangulating in the reading window: the caliper (Shift+M, drag, Esc) and the band at
the selected finding's nipple distance on the other view of the breast."""

from __future__ import annotations

import math

import numpy as np
import pyqtgraph as pg
import pytest
from PySide6.QtCore import QPointF, Qt
from PySide6.QtWidgets import QApplication

from core_model.imaging.location import NO_SPACING, study_landmarks
from core_model.imaging.triangulation import triangulation_band
from nafv_viewer.widgets.caliper import caliper_text
from nafv_viewer.widgets.review_editor import to_original

from viewer_helpers import send_drag

pytestmark = pytest.mark.qt


def _screen(panel, xy) -> QPointF:
    return QPointF(panel.graphics.mapFromScene(panel.vb.mapViewToScene(QPointF(float(xy[0]), float(xy[1])))))


def _texts(panel) -> list[str]:
    return [it.toPlainText() for it in panel.contour_items if isinstance(it, pg.TextItem)]


def test_caliper_text_in_mm_and_in_pixels():
    assert caliper_text((0, 0), (30, 40), (0.1, 0.1)) == "5.0 mm"
    assert caliper_text((0, 0), (30, 40), (0.2, 0.1)) == f"{math.hypot(3.0, 8.0):.1f} mm"  # (row, column) spacing
    assert caliper_text((0, 0), (30, 40), None) == f"50 px ({NO_SPACING})"


def test_caliper_measures_a_drag_without_panning_and_esc_puts_it_away(demo_window, qtbot):
    w = demo_window
    panel = w.grid.panels4["R_CC"]
    before = panel.vb.viewRange()
    qtbot.keyClick(w, Qt.Key.Key_M, Qt.KeyboardModifier.ShiftModifier)
    assert w.caliper.enabled
    a, b = (150.0, 200.0), (270.0, 360.0)  # display coordinates: 120 x 160 -> 200 px
    send_drag(panel.graphics.viewport(), _screen(panel, a), _screen(panel, b), Qt.MouseButton.LeftButton)
    ends = np.array(w.caliper.lines["R_CC"])
    img = panel.current
    assert np.allclose(ends, to_original(img.flips, [a, b], img.shape), atol=1.5)
    assert np.hypot(*(ends[1] - ends[0])) == pytest.approx(200, abs=3)
    assert panel.vb.viewRange() == before  # the drag measured; it did not pan
    [label] = [t for t in _texts(panel) if "px" in t]
    assert label.endswith(f"px ({NO_SPACING})") and 197 <= int(label.split()[0]) <= 203
    assert "R-CC: " in w.statusBar().currentMessage()
    assert list(w.caliper.lines) == ["R_CC"]  # one view measured, the others untouched

    qtbot.keyClick(w, Qt.Key.Key_Escape)
    QApplication.processEvents()
    assert not w.caliper.enabled and w.caliper.lines == {}
    assert not [t for t in _texts(panel) if "px" in t]
    # with the caliper off a drag measures nothing
    send_drag(panel.graphics.viewport(), _screen(panel, a), _screen(panel, b), Qt.MouseButton.LeftButton)
    assert w.caliper.lines == {}


def test_selected_finding_shows_the_band_on_the_other_view_of_its_breast(reviewed, qtbot):
    w = reviewed
    landmarks = study_landmarks(w.study)
    for p in w.grid.all_panels():
        if p.view_result is not None:
            p.view_result.landmarks = landmarks[p.key].to_dict()
    controller = w.review_flow.controller
    f = next(f for f in controller.review.findings.values() if f.key == "R_CC")
    controller.select(f.id)
    QApplication.processEvents()

    mlo, cc_left = w.grid.panels4["R_MLO"], w.grid.panels4["L_MLO"]
    labels = [t for t in _texts(mlo) if t.startswith("same distance")]
    expected = triangulation_band(f.polygon, landmarks["R_CC"].to_dict(), None, landmarks["R_MLO"].to_dict(), None)
    assert labels == [f"same distance: {expected.label()}"]
    assert expected.unit == "axis" and 0.1 < expected.distance < 1.0  # the demo's JPEGs carry no spacing
    # the arcs are centred on the MLO nipple, at the band's radii (display coordinates)
    img = mlo.current
    center = img.flips.to_display(np.asarray([expected.center], float), img.shape)[0]
    arcs = [it for it in mlo.contour_items if isinstance(it, pg.PlotCurveItem) and it.zValue() == 4]
    radii = []
    for arc in arcs:
        x, y = arc.getData()
        ok = np.isfinite(x)
        radii.append(np.median(np.hypot(x[ok] - center[0], y[ok] - center[1])))
    assert sorted(radii) == pytest.approx(sorted([expected.inner[0], expected.outer[0]]), rel=0.02)
    # nothing on the other breast, nor on the finding's own view
    assert not [t for t in _texts(cc_left) if t.startswith("same distance")]
    assert not [t for t in _texts(w.grid.panels4["R_CC"]) if t.startswith("same distance")]

    controller.select("")
    QApplication.processEvents()
    assert not [t for t in _texts(mlo) if t.startswith("same distance")]


def test_a_measurement_does_not_follow_the_reader_to_the_next_study(demo_window, qtbot, demo_dir):
    w = demo_window
    panel = w.grid.panels4["R_CC"]
    w.caliper.set_enabled(True)
    send_drag(panel.graphics.viewport(), _screen(panel, (150, 200)), _screen(panel, (270, 360)), Qt.MouseButton.LeftButton)
    assert list(w.caliper.lines) == ["R_CC"]
    with qtbot.waitSignal(w.study_ready, timeout=20000):
        w.open_study(demo_dir)
    QApplication.processEvents()
    assert w.caliper.lines == {} and not w.caliper.enabled
    assert not [t for t in _texts(w.grid.panels4["R_CC"]) if "px" in t]
