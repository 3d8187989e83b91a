"""The models see every study in reading orientation, whatever way its images were stored."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import torch
import pytest

from core_model.domain.study import Study
from core_model.imaging.orientation import flip_array, orientation_flips
from core_model.inference.analyzer import Analyzer
from core_model.io import load_study
from core_model.transforms.model_inputs import in_reading_orientation


def _restored(study: Study, mirror_sides: str) -> Study:
    """``study`` with the images of ``mirror_sides`` mirrored left-right (no tags say so)."""
    out = Study(patient_id=study.patient_id, study_id=study.study_id, source=study.source)
    for (key, energy), im in study.images.items():
        px = im.pixels[:, ::-1].copy() if key[0] in mirror_sides else im.pixels
        out.images[(key, energy)] = replace(im, pixels=px)
    return out


@pytest.fixture(scope="module")
def demo(demo_dir) -> Study:
    return load_study(demo_dir)


def test_demo_is_already_in_reading_orientation(demo):
    assert all(f == (False, False) for f in orientation_flips(demo).values())
    same, _ = in_reading_orientation(demo)
    assert same is demo


def test_both_chest_walls_on_one_edge_is_detected_and_undone(demo):
    stored = _restored(demo, "R")  # both chest walls on the left edge, as many archives store them
    flips = orientation_flips(stored)
    assert flips == {"R_CC": (True, False), "R_MLO": (True, False), "L_CC": (False, False), "L_MLO": (False, False)}
    canon, _ = in_reading_orientation(stored)
    for key_energy, im in demo.images.items():
        np.testing.assert_array_equal(canon.images[key_energy].pixels, im.pixels)


def test_tags_decide_over_pixels(demo):
    im = demo.get("R_CC", "le")
    st = Study(patient_id="T", study_id="t")
    # PatientOrientation ("A", "R"): rows run towards the anterior, i.e. the chest wall is on the left edge
    st.add(replace(im, pixels=im.pixels, orientation=("A", "R")))
    assert orientation_flips(st)["R_CC"] == (True, True)


def test_mirrored_and_unmirrored_storage_give_the_same_contours(demo):
    """The shipped models on the demo stored as it is and with the right breast mirrored:
    the same probabilities, contours, breast and score, mapped back onto each storage."""
    an = Analyzer(device="cpu", num_threads=2)
    a = an.analyze(demo, explain=True)
    b = an.analyze(_restored(demo, "R"), explain=True)
    assert a.affected_side == b.affected_side and a.lesion_found == b.lesion_found
    if a.malignancy_probability is None:
        assert b.malignancy_probability is None
    else:
        assert b.malignancy_probability == pytest.approx(a.malignancy_probability, abs=1e-5)
    for key, va in a.views.items():
        vb = b.views[key]
        f = (key[0] == "R", False)
        np.testing.assert_allclose(flip_array(vb.probability, f), va.probability, atol=1e-5)
        np.testing.assert_array_equal(flip_array(vb.mask, f), va.mask)
        assert len(va.lesions) == len(vb.lesions)
        w = va.mask.shape[1]
        for la, lb in zip(va.lesions, vb.lesions):
            assert lb.score == pytest.approx(la.score, abs=1e-5)
            xs = np.sort(la.polygon[:, 0])
            xs_b = np.sort((w - 1) - lb.polygon[:, 0]) if f[0] else np.sort(lb.polygon[:, 0])
            np.testing.assert_allclose(xs_b, xs, atol=1e-3)
        if va.heatmap is not None:
            np.testing.assert_allclose(flip_array(vb.heatmap, f), va.heatmap, atol=1e-4)


def test_training_samples_are_in_reading_orientation_too(demo_dir, tmp_path):
    """Segmentation training reads a breast stored mirrored exactly as the analyzer does: the same
    sample (images and mask) as from the breast stored in reading orientation."""
    from PIL import Image

    from core_model.train.seg_data import prepare_breast, scan_folder

    demo_masks = demo_dir.parent / "demo_masks"
    for name, mirror in (("as_stored", False), ("mirrored", True)):
        for sub, src in (("images", demo_dir), ("masks", demo_masks)):
            (tmp_path / name / sub).mkdir(parents=True)
            for p in sorted(src.glob("P66_R_*.jpg")):
                im = Image.open(p)
                (im.transpose(Image.FLIP_LEFT_RIGHT) if mirror else im).save(tmp_path / name / sub / p.name, quality=100)
    a = prepare_breast(scan_folder(tmp_path / "as_stored")[("P66", "R")], None, ("le", "rc"), (64, 64))
    b = prepare_breast(scan_folder(tmp_path / "mirrored")[("P66", "R")], None, ("le", "rc"), (64, 64))
    assert a["masks"].sum() > 0
    assert (a["views"] - b["views"]).abs().max() < 0.02  # JPEG re-encoding only
    assert (a["masks"] != b["masks"]).float().mean() < 0.002


# ----------------------------------------------------------------------------- lesion-centred inputs

def _disc(shape, center, radius) -> np.ndarray:
    r, c = np.ogrid[:shape[0], :shape[1]]
    return (r - center[0]) ** 2 + (c - center[1]) ** 2 <= radius ** 2


def test_lesion_box_is_centred_on_the_lesion_and_stays_inside_the_view():
    from core_model.transforms.model_inputs import lesion_box

    mask = _disc((512, 416), (200, 150), 10)
    r0, c0, side = lesion_box(mask, 0.3)
    assert side == round(0.3 * 512)  # 154: the lesion's extent (21 px) is far smaller
    assert abs(r0 + side / 2 - 200) <= 1 and abs(c0 + side / 2 - 150) <= 1
    # a lesion at the edge: the square shifts to stay inside and still holds the whole lesion
    r0, c0, side = lesion_box(_disc((512, 416), (500, 5), 8), 0.3)
    assert (r0, c0) == (512 - side, 0)
    # a large lesion gets a square twice its extent
    assert lesion_box(_disc((512, 416), (256, 208), 60), 0.3)[2] == 2 * 121
    assert lesion_box(np.zeros((512, 416), bool), 0.3) is None


def test_a_shifted_square_moves_by_that_share_of_its_side():
    from core_model.transforms.model_inputs import lesion_box

    mask = _disc((512, 416), (200, 150), 10)
    r0, c0, side = lesion_box(mask, 0.3)
    down, left = lesion_box(mask, 0.3, (0.125, 0.0)), lesion_box(mask, 0.3, (0.0, -0.125))
    assert down[1:] == (c0, side) and abs(down[0] - (r0 + side / 8)) <= 1  # 154 / 8 = 19.25 px, rounded
    assert (left[0], left[2]) == (r0, side) and abs(left[1] - (c0 - side / 8)) <= 1
    # near the edge the moved square stops at the edge: the unmoved one lies 10 px inside, the move is 19
    near = _disc((512, 416), (200, 87), 10)
    assert lesion_box(near, 0.3)[1] == 10
    assert lesion_box(near, 0.3, (0.0, -0.125)) == (lesion_box(near, 0.3)[0], 0, side)


def test_a_grown_square_keeps_its_centre_for_small_and_large_lesions():
    """The backbone fine-tune can cut its moving windows from the square grown around its centre: the
    window then shows the lesion at the analysis' scale, also when twice the lesion sets the side."""
    from core_model.transforms.model_inputs import lesion_box

    for radius in (10, 60):  # the side set by ``crop`` (154 px), then by twice the extent (242 px)
        mask = _disc((512, 416), (256, 208), radius)
        r0, c0, side = lesion_box(mask, 0.3)
        g0, h0, grown = lesion_box(mask, 0.3, grow=1.25)
        assert abs(grown - side * 1.25) <= 1
        assert abs((g0 + grown / 2) - (r0 + side / 2)) <= 1 and abs((h0 + grown / 2) - (c0 + side / 2)) <= 1
    # never beyond the view's longer side: a 450 px square grows only to 512
    big = _disc((512, 416), (256, 208), 112)
    assert lesion_box(big, 0.3)[2] == 450 and lesion_box(big, 0.3, grow=1.25)[2] == 512


def test_study_inputs_give_one_row_per_square(demo):
    from core_model.transforms.model_inputs import SCORE_SHIFTS, in_reading_orientation, study_inputs

    study, _ = in_reading_orientation(demo)
    masks = {k: _disc(study.get(k, "le").shape, (250, 200), 15) for k in ("R_CC", "R_MLO")}
    one = study_inputs(study, masks, "R", 64, ("le", "le", "rc"), crop=0.3)
    five = study_inputs(study, masks, "R", 64, ("le", "le", "rc"), crop=0.3, shifts=SCORE_SHIFTS)
    assert one[0].shape == (1, 2, 3, 64, 64) and five[0].shape == five[1].shape == (5, 2, 3, 64, 64)
    assert torch.equal(five[0][0], one[0][0]) and torch.equal(five[1][0], one[1][0])  # row 0: the outline's square
    assert all(not torch.equal(five[0][k], five[0][0]) for k in range(1, 5))
    # whole views do not depend on a square: one row whatever the shifts
    assert study_inputs(study, masks, "R", 64, ("le", "le", "rc"), shifts=SCORE_SHIFTS)[0].shape[0] == 1


def test_contralateral_crop_is_the_mirrored_square():
    from core_model.transforms.model_inputs import crop_breasts

    shape = (512, 416)
    rng = np.random.default_rng(0)
    aff_img = rng.random(shape).astype(np.float32)
    con_img = aff_img[:, ::-1].copy()  # a contralateral breast that is the exact mirror image
    mask = _disc(shape, (300, 100), 12)
    aff, masks, con = crop_breasts({("CC", "le"): aff_img, ("MLO", "le"): aff_img},
                                   {"CC": mask, "MLO": np.zeros(shape, bool)},
                                   {("CC", "le"): con_img, ("MLO", "le"): con_img}, 0.3)
    assert aff[("CC", "le")].shape == (154, 154) and masks["CC"].shape == (154, 154)
    assert masks["CC"].sum() == mask.sum()  # the whole lesion is inside its square
    np.testing.assert_array_equal(con[("CC", "le")], aff[("CC", "le")][:, ::-1])
    # the MLO has no lesion mask: it stays whole, on both sides
    assert aff[("MLO", "le")].shape == shape and con[("MLO", "le")].shape == shape


def test_squares_follow_each_image_size_and_the_largest_lesion():
    """The contralateral breast stored at another size gets the mirrored square at its own scale, an
    energy stored at another size is cut at the same place of its own pixels, and a mask with two
    lesions is centred on the larger (the one the analyzer would pass)."""
    from core_model.transforms.model_inputs import crop_breasts, lesion_box

    shape = (512, 416)
    mask = _disc(shape, (300, 100), 12)
    two = mask | _disc(shape, (60, 350), 4)
    assert lesion_box(two, 0.3) == lesion_box(mask, 0.3)
    le_big = np.zeros((1024, 832), np.float32)
    le_big[_disc((1024, 832), (600, 200), 24)] = 1.0  # the lesion, at twice the mask's resolution
    rc = mask.astype(np.float32)
    con = np.zeros((256, 208), np.float32)
    con[_disc((256, 208), (150, 208 - 50), 6)] = 1.0  # a mirror-image lesion on a half-size other breast
    aff, masks, cropped_con = crop_breasts({("CC", "le"): le_big, ("CC", "rc"): rc},
                                           {"CC": mask}, {("CC", "le"): con}, 0.3)
    assert aff[("CC", "le")].shape == (308, 308) and aff[("CC", "rc")].shape == (154, 154)
    np.testing.assert_allclose(aff[("CC", "le")].sum() / 4, aff[("CC", "rc")].sum(), rtol=0.05)  # whole lesion in both
    c = cropped_con[("CC", "le")]
    assert c.shape == (77, 77) and c.sum() == con.sum()
    # the contralateral lesion sits at the mirrored place of the square: same row, mirrored column
    rows_a, cols_a = np.argwhere(aff[("CC", "rc")]).mean(0) / 2
    rows_c, cols_c = np.argwhere(c).mean(0)
    assert abs(rows_c - rows_a) <= 1.5 and abs(cols_c - (76 - cols_a)) <= 1.5


def test_crop_zero_is_the_paper_whole_view_input():
    from core_model.transforms.model_inputs import breast_inputs

    shape = (512, 416)
    img = np.random.default_rng(1).random(shape).astype(np.float32)
    images = {("CC", "le"): img, ("MLO", "le"): img}
    masks = {"CC": _disc(shape, (300, 100), 12), "MLO": _disc(shape, (250, 120), 12)}
    whole = breast_inputs(images, masks, None, 64, ("le", "le", "le"))
    np.testing.assert_array_equal(whole["affected"], breast_inputs(images, masks, None, 64, ("le", "le", "le"),
                                                                   crop=0.0)["affected"])
    cropped = breast_inputs(images, masks, None, 64, ("le", "le", "le"), crop=0.3)["affected"]
    assert not np.allclose(cropped, whole["affected"])


def test_heatmap_of_a_crop_goes_back_to_its_square():
    from core_model.inference.heatmaps import paste

    square = np.ones((100, 100), np.float32)
    out = paste(square, (450, -20, 100), (512, 416))
    assert out.shape == (512, 416)
    assert out[450:, :80].all() and out.sum() == 62 * 80
