"""Eq. 9: contralateral paste through a soft contour mask, mirrored position, jittered box."""

import numpy as np
import pytest

from core_model.transforms.adversarial import contralateral_sample, soft_contour_mask


def _setup():
    h, w = 32, 40
    rng = np.random.default_rng(0)
    affected = rng.uniform(0.5, 1.0, (h, w)).astype(np.float32)
    contra = rng.uniform(0.0, 0.2, (h, w)).astype(np.float32)
    lesion = np.zeros((h, w), bool)
    lesion[10:16, 5:12] = True
    return affected, lesion, contra


def test_soft_contour_mask_values():
    les = np.zeros((9, 9), bool)
    les[4, 4] = True
    a = soft_contour_mask(les, feather=2.0)
    assert a[4, 4] == 1.0
    assert a[4, 5] == pytest.approx(0.5)  # one pixel out of two
    assert a[4, 6] == 0.0 and a[0, 0] == 0.0


def test_paste_outside_unchanged_inside_blended():
    affected, lesion, contra = _setup()
    fused, moved = contralateral_sample(affected, lesion, contra, np.random.default_rng(1), jitter=0.1, feather=3.0)
    mirrored_lesion = lesion[:, ::-1]
    alpha = soft_contour_mask(mirrored_lesion, 3.0)
    outside = alpha == 0
    np.testing.assert_array_equal(fused[outside], contra[outside])  # untouched
    # lesion pixels (alpha = 1) are the mirrored affected pixels: Eq. 9 with alpha = 1
    np.testing.assert_allclose(fused[mirrored_lesion], affected[:, ::-1][mirrored_lesion])
    # the ramp blends: alpha * O + (1 - alpha) * R exactly
    ramp = (alpha > 0) & (alpha < 1)
    assert ramp.any()
    expected = alpha * affected[:, ::-1] + (1 - alpha) * contra
    np.testing.assert_allclose(fused[ramp], expected[ramp], rtol=1e-6)
    # the lesion lands at the mirrored columns: 40 - 1 - [5, 11] = [28, 34]
    cols = np.nonzero(mirrored_lesion.any(0))[0]
    assert cols.min() == 28 and cols.max() == 34


def test_jitter_moves_the_box_slightly():
    affected, lesion, contra = _setup()
    for seed in range(5):
        _, moved = contralateral_sample(affected, lesion, contra, np.random.default_rng(seed), jitter=0.2)
        assert moved.sum() > 0
        ys, xs = np.nonzero(moved)
        ys0, xs0 = np.nonzero(lesion[:, ::-1])
        dy, dx = ys.min() - ys0.min(), xs.min() - xs0.min()
        assert (dy, dx) != (0, 0)
        assert abs(dy) <= 2 and abs(dx) <= 2  # 0.2 of a 6 x 7 box, rounded
    _, still = contralateral_sample(affected, lesion, contra, np.random.default_rng(0), jitter=0.0)
    np.testing.assert_array_equal(still, lesion[:, ::-1])


def test_reproducible_from_rng_and_empty_mask():
    affected, lesion, contra = _setup()
    a = contralateral_sample(affected, lesion, contra, np.random.default_rng(7))
    b = contralateral_sample(affected, lesion, contra, np.random.default_rng(7))
    np.testing.assert_array_equal(a[0], b[0])
    np.testing.assert_array_equal(a[1], b[1])
    fused, moved = contralateral_sample(affected, np.zeros_like(lesion), contra, np.random.default_rng(0))
    np.testing.assert_array_equal(fused, contra)
    assert not moved.any()
    with pytest.raises(ValueError):
        contralateral_sample(affected, lesion, contra[:, :-1], np.random.default_rng(0))
