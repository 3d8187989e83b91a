"""Hanging flips: from DICOM PatientOrientation, and from the pixels when the tags do not say."""

import numpy as np
import pytest

from core_model.domain.study import VIEW_KEYS, split_view_key
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


def test_unreadable_orientation_falls_back_to_content(demo_study):
    px = demo_study.get("L_CC", "le").pixels[:, ::-1]  # an L breast with its chest wall on the right edge
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


def _pad(px, left, right, top=0, bottom=0):
    return np.pad(px, ((top, bottom), (left, right)))


def test_padding_on_the_chest_wall_side_does_not_hang_the_breast_nipple_inward(demo_study):
    """Black margins like the CDD-CESM conversion's: the breast no longer touches the image edge."""
    for key in VIEW_KEYS:
        side, view = split_view_key(key)
        le = demo_study.get(key, "le").pixels
        h, w = le.shape
        # A wide margin on the chest-wall side, a thin one at the nipple: judged by the raw
        # edges and by where the tissue mass sits, the breast looks the other way round.
        wide, thin = int(0.9 * w), 4
        padded = _pad(le, wide, thin) if side == "L" else _pad(le, thin, wide)
        assert hanging_flips(side, view, padded) == Flips(False, False, "content"), key
        mirrored = padded[:, ::-1]
        assert hanging_flips(side, view, mirrored).horizontal, key


def _weak_wrong_outline(shape, side):
    """An LE image whose outline says, weakly, the wrong chest-wall side (a near-rectangle
    tapering slightly towards the true chest wall), as a poorly exposed or cropped LE might."""
    h, w = shape
    x0, x1 = w // 10, w - w // 10
    px = np.zeros(shape, np.uint16)
    rows = np.arange(h)[:, None]
    for i, x in enumerate(range(x0, x1)):
        t = i / (x1 - x0)  # 0 at the left end of the breast, 1 at the right end
        half = 0.5 * h * (0.85 + 0.1 * (t if side == "L" else 1 - t))
        px[:, x] = np.where(np.abs(rows[:, 0] - h / 2) < half, 3000, 0)
    return px


def test_one_flip_per_view_for_both_energies(demo_study):
    _disagreeing_study(demo_study)


def _disagreeing_study(demo_study):
    """LE and RC of a view always hang the same way, so switching energy never mirrors the view;
    when the two disagree, the combined evidence (here the RC's clear outline) decides both."""
    from core_model.domain.study import Study, StudyImage
    from nafv_viewer.hanging import view_flips

    s = Study(patient_id=demo_study.patient_id, study_id=demo_study.study_id)
    for key in VIEW_KEYS:
        side, view = split_view_key(key)
        rc = demo_study.get(key, "rc")
        le = _weak_wrong_outline(rc.pixels.shape, side)
        assert hanging_flips(side, view, le).horizontal, key  # alone, the LE would hang mirrored
        s.add(StudyImage(side, view, "le", le, rc.source.with_name("le.png")))
        s.add(StudyImage(side, view, "rc", rc.pixels, rc.source))
    for key in VIEW_KEYS:
        flips = view_flips(s, key)
        assert flips["le"] == flips["rc"] == Flips(False, False, "content"), key
    return s


def test_window_hangs_le_and_rc_of_a_view_alike(demo_study, make_window, qtbot):
    s = _disagreeing_study(demo_study)
    w = make_window(study_loader=lambda path: s)
    with qtbot.waitSignal(w.study_ready, timeout=10000):
        w.open_study("unused")
    for key in VIEW_KEYS:
        le, rc = (w.grid.panels8[(key, e)].current for e in ("le", "rc"))
        assert le.flips == rc.flips == Flips(False, False, "content"), key


def test_tags_still_win_per_file(demo_study):
    from nafv_viewer.hanging import view_flips

    s = _disagreeing_study(demo_study)
    # Tags still win, per file: each file's tags describe that file.
    s.get("L_CC", "le").orientation = ("P", "R")
    assert view_flips(s, "L_CC")["le"] == Flips(True, False, "tags")
    assert view_flips(s, "L_CC")["rc"] == Flips(False, False, "content")
