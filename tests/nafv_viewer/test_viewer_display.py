"""Display pyramid: block means, level choice, crops, window -> raw levels."""

from pathlib import Path

import numpy as np
import pytest

from core_model.domain.study import StudyImage
from nafv_viewer.display import WHOLE_LEVEL_MAX_PIXELS, build_display_image


def _image(pixels, side="R", window=None, orientation=None):
    return StudyImage(side=side, view="CC", energy="le", pixels=pixels, source=Path("x.dcm"), window=window, orientation=orientation)


def test_pyramid_levels_are_block_means_of_the_hung_image():
    rng = np.random.default_rng(0)
    px = rng.integers(0, 4096, size=(2048, 1536), dtype=np.uint16)
    px[:, -200:] += 3000  # bright chest wall on the right: an R image needs no flip
    d = build_display_image(_image(px))
    assert [lv.shape for lv in d.levels] == [(2048, 1536), (1024, 768), (512, 384), (256, 192)]
    assert d.levels[1].dtype == np.uint16
    assert d.levels[1][3, 5] == pytest.approx(px[6:8, 10:12].mean(), abs=0.5)
    assert not d.flips.horizontal
    # The same pixels as an L image must be mirrored (chest wall goes to the left edge).
    dl = build_display_image(_image(px, side="L"))
    assert dl.flips.horizontal
    np.testing.assert_array_equal(dl.levels[0], px[:, ::-1])


def test_level_choice_and_crop():
    px = np.zeros((4096, 3328), np.uint16)
    px[:, -100:] = 1000
    d = build_display_image(_image(px))
    assert d.pick_level(3328, 416) == 3  # whole width in a 416-px panel: 1/8 resolution
    assert d.pick_level(500, 1000) == 0  # zoomed in: full resolution
    arr, rect = d.crop(0, 1000, 1000, 1400, 1300)
    assert arr.size < WHOLE_LEVEL_MAX_PIXELS
    x, y, w, h = rect
    assert x <= 1000 and y <= 1000 and x + w >= 1400 and y + h >= 1300
    arr3, rect3 = d.crop(3, 1000, 1000, 1400, 1300)
    assert arr3.shape == d.levels[3].shape and rect3 == (0.0, 0.0, 3328.0, 4096.0)


def test_window_maps_to_raw_levels_through_the_file_window():
    px = np.arange(100 * 100, dtype=np.uint16).reshape(100, 100)
    d = build_display_image(_image(px, window=(2000.0, 1000.0)))
    assert d.raw_range == (1500.0, 2500.0)
    assert d.levels_for(0.5, 1.0) == (1500.0, 2500.0)
    assert d.levels_for(0.5, 0.5) == (1750.0, 2250.0)
    u8 = d.windowed_uint8(np.array([[1500, 2000, 2600]], np.uint16), 0.5, 1.0, invert=False)
    np.testing.assert_array_equal(u8, [[0, 127, 255]])
    np.testing.assert_array_equal(d.windowed_uint8(np.array([[1500]], np.uint16), 0.5, 1.0, invert=True), [[255]])
