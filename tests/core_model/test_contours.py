"""Probability map -> mask, lesion polygons and scores in original pixels."""

from __future__ import annotations

import numpy as np
import pytest

from core_model.imaging.contours import (
    MIN_LESION_AREA_INPUT_PX,
    lesion_mask,
    lesions_from_probability,
    min_area_for_scale,
)
from core_model.imaging.geometry import max_diameter, polygon_area


def _disc(shape, cx, cy, r, value=0.9):
    yy, xx = np.mgrid[: shape[0], : shape[1]]
    return np.where((xx - cx) ** 2 + (yy - cy) ** 2 <= r * r, value, 0.0).astype(np.float32)


def test_rectangle_polygon_sits_on_the_pixels():
    p = np.zeros((300, 400), np.float32)
    p[50:100, 200:260] = 0.8  # rows 50..99, columns 200..259
    mask, lesions = lesions_from_probability(p)
    assert mask.sum() == 50 * 60
    (les,) = lesions
    assert les.bbox == (200.0, 50.0, 259.0, 99.0)  # (x0, y0, x1, y1): x is the column
    assert les.score == pytest.approx(0.8)
    x, y = les.polygon[:, 0], les.polygon[:, 1]
    # the iso-line passes between the last lesion pixel and the first background pixel
    assert 199.0 < x.min() < 200.0 and 259.0 < x.max() < 260.0
    assert 49.0 < y.min() < 50.0 and 99.0 < y.max() < 100.0
    assert polygon_area(les.polygon) == pytest.approx(50 * 60, rel=0.05)


def test_disc_area_and_score_and_order():
    p = np.maximum(_disc((200, 200), 60, 70, 30, 0.95), _disc((200, 200), 150, 150, 12, 0.6))
    _, lesions = lesions_from_probability(p)
    assert len(lesions) == 2
    big, small = lesions  # largest first
    assert big.area_px > small.area_px
    assert polygon_area(big.polygon) == pytest.approx(np.pi * 30**2, rel=0.05)
    centre = big.polygon.mean(0)
    assert centre == pytest.approx([60, 70], abs=1.0)
    assert big.score == pytest.approx(0.95) and small.score == pytest.approx(0.6)


def test_specks_below_min_area_are_dropped():
    p = _disc((100, 100), 50, 50, 15)
    p[5:8, 5:8] = 0.9  # 9 px speck
    _, kept = lesions_from_probability(p, min_area_px=20)
    assert len(kept) == 1
    _, all_ = lesions_from_probability(p, min_area_px=0)
    assert len(all_) == 2
    mask, labels, n = lesion_mask(p, min_area_px=20)
    assert n == 1 and mask[6, 6] == 0 and mask[50, 50] == 1


def test_min_area_scales_with_the_letterbox():
    assert min_area_for_scale(1.0) == MIN_LESION_AREA_INPUT_PX
    # a 4x larger image (model sees it at 1/4) needs 16x the pixel area
    assert min_area_for_scale(0.25) == pytest.approx(16 * MIN_LESION_AREA_INPUT_PX)


def test_lesion_touching_the_edge_still_closes():
    p = np.zeros((80, 80), np.float32)
    p[0:20, 60:80] = 0.9
    _, (les,) = lesions_from_probability(p)
    assert les.polygon[:, 0].max() <= 79.5 and les.polygon[:, 1].min() >= -0.5
    assert polygon_area(les.polygon) == pytest.approx(400, rel=0.1)


def test_empty_map_gives_no_lesion():
    mask, lesions = lesions_from_probability(np.full((50, 60), 0.3, np.float32))
    assert mask.shape == (50, 60) and mask.sum() == 0 and lesions == []


def test_faint_outlines_below_the_contour_score_are_dropped():
    p = np.zeros((60, 60), np.float32)
    p[5:25, 5:25] = 0.9  # a certain lesion
    p[35:55, 35:55] = 0.55  # a faint outline, as of dense normal tissue
    mask, lesions = lesions_from_probability(p, min_score=0.6)
    assert len(lesions) == 1 and lesions[0].score == pytest.approx(0.9)
    assert mask[10, 10] == 1 and mask[45, 45] == 0
    assert len(lesions_from_probability(p)[1]) == 2  # kept without the cut


def test_polygon_area_and_diameter_in_pixels_and_mm():
    square = [(10, 20), (40, 20), (40, 60), (10, 60)]  # 30 wide (x), 40 high (y)
    assert polygon_area(square) == pytest.approx(1200)
    assert max_diameter(square) == pytest.approx(50)
    # spacing is (row, column): y scales by 0.1, x by 0.2
    assert polygon_area(square, (0.1, 0.2)) == pytest.approx(6 * 4)
    assert max_diameter(np.array(square, float), (0.1, 0.2)) == pytest.approx(np.hypot(6, 4))
    assert polygon_area(square[:2]) == 0.0 and max_diameter(square[:1]) == 0.0
