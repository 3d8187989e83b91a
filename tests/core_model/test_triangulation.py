"""The band on the other view sits at the finding's nipple distance, in that view's pixels."""

from __future__ import annotations

import numpy as np
import pytest

from core_model.imaging.triangulation import triangulation_band


def _square(cx, cy, half):
    return [(cx - half, cy - half), (cx + half, cy - half), (cx + half, cy + half), (cx - half, cy + half)]


def test_band_in_mm_uses_each_views_spacing():
    cc = {"nipple": [900.0, 500.0], "nipple_to_chest_wall_px": 900.0}
    mlo = {"nipple": [100.0, 700.0], "nipple_to_chest_wall_px": 1000.0}
    # finding centred 300 px left of the CC nipple at 0.1 mm/px: 30 mm; 4 mm across -> half-width 10 mm
    band = triangulation_band(_square(600, 500, 20), cc, (0.1, 0.1), mlo, (0.05, 0.1))
    assert band.unit == "mm" and band.distance == pytest.approx(30.0)
    assert band.center == (100.0, 700.0)
    assert band.inner == pytest.approx((200.0, 400.0))  # 20 mm: 200 px along x (0.1), 400 px along y (0.05)
    assert band.outer == pytest.approx((400.0, 800.0))
    assert band.label() == "30 mm from the nipple"


def test_a_large_finding_widens_the_band():
    cc = {"nipple": [900.0, 500.0], "nipple_to_chest_wall_px": 900.0}
    band = triangulation_band(_square(500, 500, 150), cc, (0.1, 0.1), cc, (0.1, 0.1))
    half = np.hypot(30, 30) / 2  # longest diameter 42.4 mm
    assert band.inner[0] == pytest.approx((40 - half) * 10)
    assert band.outer[0] == pytest.approx((40 + half) * 10)


def test_without_spacing_the_distance_is_a_share_of_the_axis():
    cc = {"nipple": [800.0, 400.0], "nipple_to_chest_wall_px": 800.0}
    mlo = {"nipple": [50.0, 600.0], "nipple_to_chest_wall_px": 1200.0}
    band = triangulation_band(_square(400, 400, 10), cc, None, mlo, (0.1, 0.1))
    assert band.unit == "axis" and band.distance == pytest.approx(0.5)
    assert band.inner == pytest.approx((0.4 * 1200, 0.4 * 1200))
    assert band.outer == pytest.approx((0.6 * 1200, 0.6 * 1200))
    assert band.label() == "50% of the nipple-to-chest-wall distance"


def test_no_landmark_no_band():
    cc = {"nipple": [800.0, 400.0], "nipple_to_chest_wall_px": 800.0}
    assert triangulation_band(_square(400, 400, 10), cc, None, {}, None) is None
    assert triangulation_band(_square(400, 400, 10), None, None, cc, None) is None
    assert triangulation_band(_square(400, 400, 10), cc, None, {"nipple": [1, 1], "nipple_to_chest_wall_px": 0}, None) is None
