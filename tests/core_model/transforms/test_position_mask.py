"""Algorithm 1 line 4 / Eq. 8: exact mask values on a small grid."""

import math

import numpy as np
import pytest

from core_model.transforms.position_mask import apply_position_mask, lesion_box, position_mask


def _grid_lesion():
    m = np.zeros((10, 12), dtype=np.uint8)
    # an L-shaped lesion: box rows 3..5, cols 4..6, with (3, 6) and (4, 6) outside R
    m[3:6, 4:6] = 1
    m[5, 6] = 1
    return m


def test_lesion_box():
    assert lesion_box(_grid_lesion()) == (3, 5, 4, 6)
    assert lesion_box(np.zeros((4, 4))) is None


def test_values_inside_lesion_box_and_outside():
    les = _grid_lesion()
    m = position_mask(les, decay=0.5)
    assert m.dtype == np.float32 and m.shape == les.shape
    # 1 inside R
    assert np.all(m[les > 0] == 1.0)
    # 0.9 in the box but not R
    assert m[3, 6] == pytest.approx(0.9) and m[4, 6] == pytest.approx(0.9)
    # outside the box: 0.9 * (1 - d / (decay * diagonal)), d from the lesion's bounding box
    diag = math.hypot(10, 12)
    y0, y1, x0, x1 = 3, 5, 4, 6
    for (y, x) in [(0, 0), (9, 11), (4, 0), (0, 5), (8, 8), (4, 7)]:
        d = math.hypot(max(y0 - y, y - y1, 0), max(x0 - x, x - x1, 0))
        expected = max(0.0, 0.9 * (1 - d / (0.5 * diag)))
        assert m[y, x] == pytest.approx(expected, abs=1e-6), (y, x)
    # decays monotonically away from the box along a row outside it
    row = m[0, :]
    assert row[5] > row[2] > row[0]


def test_decay_starts_at_0_9_at_the_box_edge():
    # Algorithm 1: 0.9 at the box edge, falling to 0; a 4 %-of-image lesion's mask just outside
    # its box must stay near 0.9 (measured from the centroid it had already fallen to ~0.16)
    les = np.zeros((200, 200), np.uint8)
    les[80:120, 80:120] = 1  # 1600 px = 4 % of the image
    m = position_mask(les, decay=0.1)
    assert m[100, 120] == pytest.approx(0.9 * (1 - 1 / (0.1 * math.hypot(200, 200))), abs=1e-6)
    assert m[100, 121] > 0.8
    assert m[100, 119] == 1.0 and m[100, 150] < m[100, 125]


def test_reaches_zero_far_away_and_decay_scale():
    les = np.zeros((50, 50), np.uint8)
    les[0, 0] = 1
    m = position_mask(les, decay=0.5)
    d = math.hypot(49, 49)  # from the one-pixel box at (0, 0)
    assert m[49, 49] == 0.0  # d = diagonal > 0.5 diagonal
    m2 = position_mask(les, decay=2.0)
    assert m2[49, 49] == pytest.approx(0.9 * (1 - d / (2.0 * math.hypot(50, 50))), abs=1e-6)


def test_empty_mask_is_all_ones_and_eq8_product():
    assert np.all(position_mask(np.zeros((5, 7))) == 1.0)
    img = np.arange(120, dtype=np.float32).reshape(10, 12)
    les = _grid_lesion()
    out = apply_position_mask(img, les)
    np.testing.assert_allclose(out, img * position_mask(les))
    assert out[4, 4] == img[4, 4] and out[3, 6] == pytest.approx(0.9 * img[3, 6])


def test_rejects_bad_input():
    with pytest.raises(ValueError):
        position_mask(np.zeros((2, 2, 2)))
    with pytest.raises(ValueError):
        position_mask(np.ones((3, 3)), decay=0)
