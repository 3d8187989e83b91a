"""The pectoral line on real MLO views, and the MLO depth measured along the posterior nipple line to it."""

from __future__ import annotations

import math

import numpy as np
import pytest
from PIL import Image

from core_model.imaging.location import canonical_view, place, study_landmarks, view_landmarks
from core_model.imaging.orientation import reading_flips
from core_model.imaging.pectoral import find_pectoral
from core_model.io.detect import load_study


@pytest.fixture(scope="module")
def demo(demo_dir):
    return study_landmarks(load_study(demo_dir))


@pytest.fixture(scope="module")
def ffdm(ffdm_dir):
    return study_landmarks(load_study(ffdm_dir))


def _ends(lm):
    (x0, y0), (x1, y1) = lm.to_dict()["pectoral_line"]
    return x0, y0, x1, y1


def test_demo_left_mlo_line_sits_on_the_narrow_muscle_strip(demo):
    lm = demo["L_MLO"]
    assert lm.chest_wall == "pectoral line"
    x0, y0, x1, y1 = _ends(lm)
    # the bright strip runs almost straight down from x ~ 185 (the breast starts at x ~ 157) and fades out by y ~ 200
    assert 178 <= x0 <= 198 and y0 < 5
    assert 170 <= x1 <= 190 and 150 <= y1 <= 230 and x1 < x0
    # the posterior nipple line ends on the muscle edge, not at the black margin of the image
    assert 165 <= lm.to_dict()["nipple_to_chest_wall_px"] <= 185


def test_demo_right_mlo_without_a_visible_muscle_edge_keeps_the_image_edge(demo):
    lm = demo["R_MLO"]
    assert lm.chest_wall == "image edge" and "pectoral_line" not in lm.to_dict()
    assert lm.to_dict()["nipple_to_chest_wall_px"] == pytest.approx(lm.nipple_c[0] + 0.5)


@pytest.mark.parametrize("key, top_x, low_y", [("R_MLO", (62, 88), (165, 210)), ("L_MLO", (48, 72), (220, 260))])
def test_ffdm_muscle_triangles_give_a_line_from_the_top_to_the_chest_wall(ffdm, key, top_x, low_y):
    lm = ffdm[key]
    assert lm.chest_wall == "pectoral line"
    x0, y0, x1, y1 = _ends(lm)
    assert top_x[0] <= x0 <= top_x[1] and y0 < 5
    assert x1 < 8 and low_y[0] <= y1 <= low_y[1]  # meets the chest-wall edge


def test_cc_views_never_get_a_pectoral_line(demo, ffdm, cdd_test_dir, demo_dir):
    for lms in (demo, ffdm):
        for key in ("L_CC", "R_CC"):
            assert lms[key].chest_wall == "image edge" and lms[key].pectoral_c is None
    # nor does the detector itself find one on a CC image, were it asked
    paths = sorted((cdd_test_dir / "images").glob("*_CC.jpg")) + sorted(demo_dir.glob("*_CC.jpg"))
    assert len(paths) >= 6
    for path in paths:
        px = np.asarray(Image.open(path).convert("L"))
        side = path.stem.split("_")[1]
        assert find_pectoral(canonical_view(f"{side}_CC", px, reading_flips(side, "CC", px))) is None, path.name


def test_posterior_nipple_line_meets_the_muscle_at_a_right_angle(ffdm):
    lm = ffdm["R_MLO"]
    (x0, y0), (x1, y1) = lm.pectoral_c
    (nx, ny), (fx, fy) = lm.nipple_c, lm.chest_wall_c
    # the foot lies on the line, and the nipple line is perpendicular to it
    assert abs((fx - x0) * (y1 - y0) - (fy - y0) * (x1 - x0)) / math.hypot(x1 - x0, y1 - y0) < 0.5
    assert abs((fx - nx) * (x1 - x0) + (fy - ny) * (y1 - y0)) / (math.hypot(x1 - x0, y1 - y0) * math.hypot(fx - nx, fy - ny)) < 1e-6
    assert lm.nipple_to_chest_wall() == pytest.approx(math.hypot(nx - fx, ny - fy))
    assert lm.nipple_to_chest_wall() < nx + 0.5  # shorter than straight back to the image edge


def _disc_at(lm, t: float, r: float = 3.0) -> np.ndarray:
    """A small contour (stored pixels) on the posterior nipple line, a share ``t`` of the way to the chest wall."""
    (nx, ny), (fx, fy) = lm.nipple_c, lm.chest_wall_c
    cx, cy = nx + t * (fx - nx), ny + t * (fy - ny)
    a = np.linspace(0, 2 * np.pi, 24, endpoint=False)
    return lm.from_canonical(np.stack([cx + r * np.cos(a), cy + r * np.sin(a)], 1))


@pytest.mark.parametrize("key", ["R_MLO", "L_MLO"])
def test_mlo_depth_is_measured_to_the_pectoral_line(ffdm, key):
    lm = ffdm[key]
    just_in_front = place(lm, _disc_at(lm, 0.95))
    assert just_in_front.depth == "posterior" and just_in_front.depth_fraction == pytest.approx(0.95, abs=0.02)
    assert place(lm, _disc_at(lm, 0.5)).depth == "middle"
    assert place(lm, _disc_at(lm, 0.1)).depth == "anterior"
    # measured straight back to the image edge, behind the muscle, the same point would lie less deep
    (nx, _), (fx, _) = lm.nipple_c, lm.chest_wall_c
    assert 0.95 * (nx - fx) / (nx + 0.5) < just_in_front.depth_fraction - 0.1
    fractions = [place(lm, _disc_at(lm, t)).depth_fraction for t in (0.2, 0.4, 0.6, 0.8)]
    assert fractions == sorted(fractions)


def test_a_reduced_resolution_level_gives_the_same_line_in_full_size_pixels(demo_dir):
    px = np.asarray(Image.open(demo_dir / "P66_L_DM_MLO.jpg").convert("L"))
    flips = reading_flips("L", "MLO", px)
    full = view_landmarks("L_MLO", px, flips, None).to_dict()
    half = view_landmarks("L_MLO", px[::2, ::2], flips, None, full_shape=px.shape).to_dict()
    assert half["chest_wall"] == full["chest_wall"] == "pectoral line"
    np.testing.assert_allclose(half["pectoral_line"], full["pectoral_line"], atol=2.0)


def test_a_short_muscle_line_never_carries_the_nipple_line_past_the_image_edge(ffdm):
    from dataclasses import replace

    lm = ffdm["R_MLO"]
    nx, ny = lm.nipple_c
    # a muscle edge ending high up and sloping so that the perpendicular from the nipple meets it
    # well behind the image's chest-wall edge: the image edge comes first
    (x0, y0), (x1, y1) = (10.0, 0.0), (0.0, 40.0)
    d = np.array([x1 - x0, y1 - y0]) / math.hypot(x1 - x0, y1 - y0)
    t = float(np.dot([nx - x0, ny - y0], d))
    foot = (x0 + t * d[0], y0 + t * d[1])
    assert foot[0] < -0.5  # the unclipped foot lies outside the image
    short = replace(lm, pectoral_c=((x0, y0), (x1, y1)))
    fx, fy = short.chest_wall_c
    assert fx == -0.5
    # the end lies on the way from the nipple to that foot, where it leaves the image
    k = (nx + 0.5) / (nx - foot[0])
    assert fy == pytest.approx(ny + k * (foot[1] - ny))
    assert short.nipple_to_chest_wall() == pytest.approx(math.hypot(nx + 0.5, fy - ny))


def test_a_drawn_muscle_edge_is_found_within_a_few_pixels():
    from core_model.imaging.pectoral import detect_pectoral

    rows, cols = 2400, 1800  # larger than the working grid: the line comes back from mask cells to pixels
    y, x = np.mgrid[0:rows, 0:cols].astype(np.float32)
    rng = np.random.default_rng(0)
    breast = ((x / 1400.0) ** 2 + ((y - 1300) / 1250.0) ** 2) < 1.0  # canonical: chest wall on the left
    img = np.where(breast, 90 + 10 * rng.standard_normal((rows, cols)), 0).astype(np.float32)
    muscle = breast & (x < 700 - 0.7 * y)  # its front edge meets the chest wall at y = 1000
    img[muscle] = 200 + 10 * rng.standard_normal(int(muscle.sum()))
    line, why = detect_pectoral(np.clip(img, 0, 255).astype(np.uint8))
    assert line is not None, why
    for yy in (0, 400, 800):
        assert line.x_top + line.slope * yy == pytest.approx(700 - 0.7 * yy, abs=6), yy
