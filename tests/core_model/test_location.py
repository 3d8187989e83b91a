"""Where a finding lies: nipple and chest wall per view, distance, depth, CC/MLO pairing, clock face, quadrant."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest

from core_model.domain.analysis import Analysis, Lesion, ViewResult
from core_model.domain.study import Study, StudyImage
from core_model.imaging.location import (NO_SPACING, Place, clock_hour, coronal_position, locate, locate_analysis, place,
                                 propose_pairs, quadrant, size_of, study_landmarks, view_landmarks)
from core_model.io.analysis_json import read_analysis, write_analysis
from core_model.synth.phantom import ORIENTATION

H, W = 300, 240
DEPTH, HALF, NIP_Y = 180.0, 120.0, 150.0  # canonical frame: chest wall at x = 0, nipple at (DEPTH, NIP_Y)
SPACING = (0.25, 0.25)


def canonical_breast() -> np.ndarray:
    """A half-ellipse breast cut by the chest wall at column 0, its tip (the nipple) at (DEPTH, NIP_Y)."""
    y, x = np.mgrid[0:H, 0:W].astype(float)
    inside = (x / DEPTH) ** 2 + ((y - NIP_Y) / HALF) ** 2 <= 1.0
    return np.where(inside, 2000, 40).astype(np.uint16)


def stored(key: str, canon: np.ndarray, mirrored: bool = False) -> tuple[np.ndarray, tuple[str, str]]:
    """The image as a file would store it: reading orientation (right breast mirrored), with its tags;
    ``mirrored`` stores it the other way round, tags saying so."""
    px = canon[:, ::-1] if key.startswith("R_") else canon
    row, col = ORIENTATION[key]
    if mirrored:
        px, row = px[:, ::-1], {"A": "P", "P": "A"}[row]
    return np.ascontiguousarray(px), (row, col)


def to_stored(key: str, pts, mirrored: bool = False) -> np.ndarray:
    """Canonical (x, y) points -> the stored image's coordinates."""
    p = np.array(pts, float).reshape(-1, 2)
    if key.startswith("R_") != mirrored:
        p[:, 0] = (W - 1) - p[:, 0]
    return p


def study_of(spacing=SPACING, mirrored: bool = False) -> Study:
    canon = canonical_breast()
    images = {}
    for key in ("R_CC", "L_CC", "R_MLO", "L_MLO"):
        side, view = key.split("_")
        px, orient = stored(key, canon, mirrored)
        images[(key, "le")] = StudyImage(side=side, view=view, energy="le", pixels=px, source=Path(f"{key}.dcm"),
                                         pixel_spacing_mm=spacing, orientation=orient)
    return Study(patient_id="T", study_id="T1", images=images)


def circle(cx: float, cy: float, r: float, n: int = 32) -> np.ndarray:
    t = np.linspace(0, 2 * np.pi, n, endpoint=False)
    return np.stack([cx + r * np.cos(t), cy + r * np.sin(t)], 1)


@pytest.mark.parametrize("mirrored", [False, True])
def test_nipple_is_the_tip_of_the_breast_on_every_view_however_it_is_stored(mirrored):
    lms = study_landmarks(study_of(mirrored=mirrored))
    assert sorted(lms) == ["L_CC", "L_MLO", "R_CC", "R_MLO"]
    for key, lm in lms.items():
        x, y = to_stored(key, [[DEPTH, NIP_Y]], mirrored)[0]
        assert lm.nipple_xy[0] == pytest.approx(x, abs=2.0) and lm.nipple_xy[1] == pytest.approx(y, abs=3.0)
        # chest wall: the image edge (no muscle drawn, so no pectoral line on MLO); the nipple axis is the breast's depth
        assert lm.chest_wall == "image edge" and lm.pectoral_c is None
        assert lm.to_dict()["nipple_to_chest_wall_mm"] == pytest.approx(DEPTH * SPACING[1], abs=0.6)


def test_distance_and_depth_of_a_finding_in_mm():
    lms = study_landmarks(study_of())
    cx, cy = DEPTH - 50, NIP_Y - 40  # 50 px toward the chest wall, 40 px up (lateral on CC)
    for key in ("R_CC", "L_CC"):
        p = place(lms[key], to_stored(key, circle(cx, cy, 8)))
        assert p.unit == "mm"
        assert p.nipple_distance == pytest.approx(math.hypot(50, 40) * 0.25, abs=0.6)
        assert p.depth == "anterior"  # 50 of 180 px: the first third
        half = HALF * math.sqrt(1 - (cx / DEPTH) ** 2)  # the breast's half-height at that depth
        assert p.offset == pytest.approx(40 / half, abs=0.03)
    deep = place(lms["L_CC"], to_stored("L_CC", circle(30, NIP_Y + 10, 6)))
    assert deep.depth == "posterior" and deep.offset < 0


def test_without_pixel_spacing_sizes_and_distances_say_pixels():
    lms = study_landmarks(study_of(spacing=None))
    poly = to_stored("L_CC", circle(DEPTH - 60, NIP_Y, 10))
    p = place(lms["L_CC"], poly)
    assert p.unit == "px" and p.nipple_distance == pytest.approx(60, abs=2.5)
    size = size_of(poly, None)
    assert size["unit"] == "px" and size["note"] == NO_SPACING and size["max_diameter_px"] == pytest.approx(20, abs=0.5)
    assert "max_diameter_mm" not in size
    sized = size_of(poly, (0.1, 0.2))  # rows 0.1 mm, columns 0.2 mm: the circle is 4 mm wide, 2 mm tall
    assert sized["unit"] == "mm" and sized["max_diameter_mm"] == pytest.approx(4.0, abs=0.05)
    assert sized["area_mm2"] == pytest.approx(math.pi * 10 * 10 * 0.02, rel=0.02)
    locs, _ = locate(lms, {"L_CC": [poly]})
    assert locs[("L_CC", 0)]["nipple_distance_mm"] is None and locs[("L_CC", 0)]["note"] == NO_SPACING


@pytest.mark.parametrize("side, lateral, superior, hours", [
    ("R", 0.5, 0.5, (10.0, 11.0)),  # upper outer: 10-11 o'clock on the right
    ("L", 0.5, 0.5, (1.0, 2.0)),  # ... and 1-2 o'clock on the left
    ("R", -0.5, 0.5, (1.0, 2.0)),  # upper inner of the right breast faces the left one
    ("L", -0.5, 0.5, (10.0, 11.0)),
    ("R", 0.6, 0.0, (9.0, 9.0)),  # lateral = 9 o'clock on the right
    ("L", 0.6, 0.0, (3.0, 3.0)),  # ... and 3 o'clock on the left
    ("R", 0.0, -0.6, (6.0, 6.0)),
    ("L", 0.0, 0.6, (12.0, 12.0)),
    ("R", 0.5, -0.5, (7.0, 8.0)),  # lower outer
    ("L", 0.5, -0.5, (4.0, 5.0)),
])
def test_clock_face_is_mirrored_between_the_breasts(side, lateral, superior, hours):
    h = clock_hour(side, lateral, superior)
    assert hours[0] <= h <= hours[1]


@pytest.mark.parametrize("cc_offset, mlo_offset, expected", [
    # CC gives lateral (+) / medial (-); MLO superior (+) / inferior (-), less the rise of lateral lesions
    (0.5, 0.8, "upper outer"),
    (-0.5, 0.3, "upper inner"),
    (0.5, -0.4, "lower outer"),
    (-0.5, -0.8, "lower inner"),
    (0.02, 0.03, "central"),
])
def test_quadrant_table_from_cc_and_mlo(cc_offset, mlo_offset, expected):
    assert quadrant(*coronal_position(cc_offset, mlo_offset)) == expected


def test_a_lateral_lesion_rises_on_the_mlo_and_is_placed_at_the_true_height():
    # a lesion level with the nipple, lateral: the MLO shows it above the nipple axis by lat * sin(45 deg)
    lat = 0.6
    lateral, superior = coronal_position(lat, lat * math.sin(math.radians(45)))
    assert lateral == pytest.approx(0.6) and superior == pytest.approx(0.0, abs=1e-9)
    assert clock_hour("R", lateral, superior) == 9.0


def test_pairs_are_proposed_by_nipple_distance_and_size():
    cc = [Place("L_CC", 40.0, "mm", 0.3, 0.2, 12.0), Place("L_CC", 80.0, "mm", 0.6, -0.1, 25.0)]
    mlo = [Place("L_MLO", 83.0, "mm", 0.6, 0.1, 22.0), Place("L_MLO", 44.0, "mm", 0.3, 0.4, 11.0),
           Place("L_MLO", 150.0, "mm", 0.9, 0.0, 12.0)]
    assert sorted(propose_pairs(cc, mlo)) == [(0, 1), (1, 0)]
    # similar distance but a very different size is not the same lesion
    assert propose_pairs([Place("L_CC", 40.0, "mm", 0.3, 0.2, 5.0)], [Place("L_MLO", 41.0, "mm", 0.3, 0.2, 30.0)]) == []


def test_linked_cc_and_mlo_give_clock_face_on_both_and_mirror_between_sides():
    study = study_of()
    lms = study_landmarks(study)
    # upper outer in both breasts: lateral on CC (up), above the nipple on MLO by more than the lateral rise
    cc_pt, mlo_pt = (DEPTH - 70, NIP_Y - 45), (DEPTH - 70, NIP_Y - 70)
    polys = {k: [to_stored(k, circle(*(cc_pt if k.endswith("CC") else mlo_pt), 9))] for k in lms}
    locs, links = locate(lms, polys)
    assert links[("R_CC", 0)] == ("R_MLO", 0) and links[("L_MLO", 0)] == ("L_CC", 0)
    for k in lms:
        assert locs[(k, 0)]["quadrant"] == "upper outer"
    assert 9.5 <= locs[("R_CC", 0)]["clock"] <= 11.5 and locs[("R_CC", 0)]["clock"] == locs[("R_MLO", 0)]["clock"]
    assert 0.5 <= locs[("L_CC", 0)]["clock"] <= 2.5
    assert locs[("R_CC", 0)]["clock"] + locs[("L_CC", 0)]["clock"] == pytest.approx(12.0)  # mirror images
    # without the other view: distance and depth, no clock
    alone, _ = locate(lms, {"L_CC": polys["L_CC"]})
    assert alone[("L_CC", 0)]["clock"] is None and alone[("L_CC", 0)]["nipple_distance_mm"] > 0


def test_analysis_carries_location_size_and_pair_through_its_json(tmp_path):
    study = study_of()
    views = {}
    for k in ("L_CC", "L_MLO"):
        poly = to_stored(k, circle(DEPTH - 50, NIP_Y + (30 if k == "L_CC" else 40), 10)).astype(np.float32)
        views[k] = ViewResult(key=k, mask=np.zeros((H, W), np.uint8),
                              lesions=[Lesion(polygon=poly, score=0.8, area_px=314.0, bbox=(0, 0, 1, 1))])
    analysis = Analysis(models={}, device="cpu", affected_side="L", affected_side_source="segmentation",
                        malignancy_probability=None, classifier_mode=None, views=views)
    locate_analysis(study, analysis)
    les = analysis.views["L_CC"].lesions[0]
    assert les.pair == "L_MLO:0" and analysis.views["L_MLO"].lesions[0].pair == "L_CC:0"
    assert set(les.location) >= {"clock", "quadrant", "depth", "nipple_distance_mm"}
    assert les.location["quadrant"] == "lower inner"  # medial on CC (down), below the nipple on MLO
    assert les.size["max_diameter_mm"] == pytest.approx(5.0, abs=0.1)
    back = read_analysis(write_analysis(analysis, tmp_path))
    got = back.views["L_CC"].lesions[0]
    assert got.location == les.location and got.size == les.size and got.pair == "L_MLO:0"
    assert back.views["L_CC"].landmarks["nipple"] == pytest.approx(list(to_stored("L_CC", [[DEPTH, NIP_Y]])[0]), abs=3)


def test_view_without_breast_gives_no_landmarks():
    assert view_landmarks("L_CC", np.zeros((64, 64), np.uint16), (False, False), SPACING) is None
