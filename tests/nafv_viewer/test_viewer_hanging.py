"""Hanging flips: from DICOM PatientOrientation, and from the pixels when the tags do not say."""

import numpy as np
import pytest

from core_model.study import VIEW_KEYS, split_view_key
from nafv_viewer.hanging import Flips, chest_wall_side, hanging_flips


@pytest.mark.parametrize("key", VIEW_KEYS)
@pytest.mark.parametrize("energy", ["le", "rc"])
def test_chest_wall_detected_on_real_images(demo_study, key, energy):
    # CDD-CESM stores images already hung: R with the chest wall on the right edge, L on the left.
    img = demo_study.get(key, energy)
    side, _ = split_view_key(key)
    expected = "right" if side == "R" else "left"
    assert chest_wall_side(img.pixels) == expected
    assert chest_wall_side(img.pixels[:, ::-1]) != expected


@pytest.mark.parametrize("key", VIEW_KEYS)
def test_content_flips_bring_a_mirrored_image_back(demo_study, key):
    img = demo_study.get(key, "le")
    side, view = split_view_key(key)
    as_stored = hanging_flips(side, view, img.pixels)
    assert as_stored == Flips(False, False, "content")
    mirrored = img.pixels[:, ::-1]
    flips = hanging_flips(side, view, mirrored)
    assert flips.horizontal and not flips.vertical and flips.source == "content"
    np.testing.assert_array_equal(flips.apply(mirrored), img.pixels)


def test_cdd_cesm_test_patients_chest_wall(cdd_test_dir):
    from PIL import Image

    files = sorted((cdd_test_dir / "images").glob("*.jpg"))
    assert len(files) == 10
    for f in files:
        side = f.stem.split("_")[1]
        px = np.asarray(Image.open(f).convert("L"))
        assert chest_wall_side(px) == ("right" if side == "R" else "left"), f.name


@pytest.mark.parametrize(
    "side, view, orientation, expected",
    [
        ("R", "CC", ("P", "L"), (False, False)),  # already in reading position
        ("R", "CC", ("A", "L"), (True, False)),  # nipple on the right: mirror
        ("R", "CC", ("A", "R"), (True, True)),  # rotated 180 degrees
        ("L", "CC", ("A", "R"), (False, False)),
        ("L", "CC", ("P", "R"), (True, False)),
        ("L", "CC", ("A", "L"), (False, True)),  # medial side at the top: flip vertically
        ("R", "MLO", ("P", "FL"), (False, False)),
        ("R", "MLO", ("P", "HL"), (False, True)),  # axilla at the bottom
        ("L", "MLO", ("A", "FR"), (False, False)),
        ("L", "MLO", ("P", "HR"), (True, True)),
    ],
)
def test_flips_from_patient_orientation(side, view, orientation, expected):
    # The tags win over the content: give a blank image that content could not judge.
    f = hanging_flips(side, view, np.zeros((8, 8)), orientation)
    assert (f.horizontal, f.vertical) == expected
    assert f.source == "tags"


def test_unreadable_orientation_falls_back_to_content():
    px = np.zeros((64, 64), np.uint8)
    px[:, 40:] = 200  # tissue against the right edge
    f = hanging_flips("L", "CC", px, ("", "R"))
    assert f.source == "content" and f.horizontal


def test_display_and_pixel_coordinates_round_trip():
    shape = (100, 200)  # h, w
    f = Flips(True, True, "tags")
    d = f.to_display(np.array([[0, 0], [199, 99], [10, 20]]), shape)
    np.testing.assert_allclose(d, [[199.5, 99.5], [0.5, 0.5], [189.5, 79.5]])
    for (x, y), orig in zip(d, [(0, 0), (199, 99), (10, 20)]):
        assert f.pixel_at(x, y, shape) == orig
    assert f.pixel_at(-1, 5, shape) is None and f.pixel_at(5, 100, shape) is None
    g = Flips(False, False, "none")
    assert g.pixel_at(10.7, 20.2, shape) == (10, 20)
