"""Synthetic CEM studies: determinism, anatomy conventions, CC/MLO geometry, mask/lesion agreement."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image
from scipy import ndimage

from core_model.domain.errors import NafvError
from core_model.domain.study import VIEW_KEYS
from core_model.synth.phantom import (
    LABELS, MAX_VALUE, PhantomConfig, generate_case,
)

SIZE = (256, 208)


@pytest.fixture(scope="module")
def cases():
    return [generate_case(s, size=SIZE) for s in range(6)]


def _chest_wall_side(px: np.ndarray) -> str:
    """'left' or 'right': the chest wall is the tallest column of tissue, at one end of the breast."""
    tissue = px.astype(np.float64) > 0.06 * px.max()
    height = tissue.sum(axis=0)
    cols = np.nonzero(height > 0.05 * px.shape[0])[0]
    wall = int(np.argmax(height))
    return "left" if wall - cols.min() < cols.max() - wall else "right"


def test_same_seed_same_study_other_seed_other_study():
    a, b, c = generate_case(11, size=SIZE), generate_case(11, size=SIZE), generate_case(12, size=SIZE)
    for key in VIEW_KEYS:
        for e in ("le", "rc"):
            np.testing.assert_array_equal(a.study.get(key, e).pixels, b.study.get(key, e).pixels)
        np.testing.assert_array_equal(a.masks[key], b.masks[key])
    assert (a.label, a.affected_side, a.density) == (b.label, b.affected_side, b.density)
    assert not np.array_equal(a.study.get("L_CC", "le").pixels, c.study.get("L_CC", "le").pixels)


def test_study_is_complete_labelled_synthetic_and_12_bit(cases):
    for case in cases:
        st = case.study
        assert st.complete and len(st) == 8
        assert st.synthetic and "synthetic" in st.description.lower()
        assert st.patient_id == f"SYN{case.seed:05d}"
        assert case.label in LABELS and case.affected_side in ("L", "R")
        assert (case.birads in (2, 3)) == (case.label == "benign")
        for (key, energy), img in st.images.items():
            assert img.pixels.dtype == np.uint16 and img.pixels.shape == SIZE
            assert img.bits_stored == 12 and 0 < img.pixels.max() <= MAX_VALUE
            # black background around the breast, like the real images (breast ~30-60% of the field)
            assert 0.25 < (img.pixels > 0.05 * MAX_VALUE).mean() < 0.75, (case.seed, key, energy)
    assert {c.label for c in cases} == set(LABELS)  # both labels drawn without asking


def test_label_argument_is_honoured():
    assert generate_case(3, size=SIZE, label="benign").label == "benign"
    assert generate_case(3, size=SIZE, label="malignant").label == "malignant"
    with pytest.raises(NafvError):
        generate_case(3, size=SIZE, label="suspicious")
    with pytest.raises(NafvError):
        PhantomConfig.preset("impossible")


def test_chest_wall_on_the_same_side_as_real_cdd_cesm(cases, demo_dir):
    real = {}
    for key in VIEW_KEYS:
        side, view = key.split("_")
        real[key] = _chest_wall_side(np.array(Image.open(demo_dir / f"P66_{side}_DM_{view}.jpg").convert("L")))
    assert real == {"R_CC": "right", "L_CC": "left", "R_MLO": "right", "L_MLO": "left"}
    for case in cases:
        for key in VIEW_KEYS:
            for e in ("le", "rc"):
                assert _chest_wall_side(case.study.get(key, e).pixels) == real[key], (case.seed, key, e)


def test_masks_only_on_the_affected_side_and_boxes_match(cases):
    for case in cases:
        assert len(case.lesions) == 2
        for key in VIEW_KEYS:
            m = case.masks[key]
            assert m.dtype == np.uint8 and set(np.unique(m)) <= {0, 1}
            assert (m.sum() > 0) == key.startswith(case.affected_side)
        for les in case.lesions:
            rows, cols = np.nonzero(case.masks[les.view_key])
            assert les.box == (rows.min(), cols.min(), rows.max() + 1, cols.max() + 1)
            r0, c0, r1, c1 = les.box
            assert r0 <= les.center[0] <= r1 and c0 <= les.center[1] <= c1


def test_cc_and_mlo_agree_on_depth_and_clock(cases):
    for case in cases:
        cc, mlo = sorted(case.lesions, key=lambda l: l.view_key.endswith("MLO"))
        assert cc.view_key.endswith("CC") and mlo.view_key.endswith("MLO")
        assert cc.depth_mm == mlo.depth_mm and cc.clock == mlo.clock
        assert 0.5 < cc.radius_mm / mlo.radius_mm < 2.0
        sx = case.study.get(cc.view_key, "le").pixel_spacing_mm[1]
        for les in (cc, mlo):
            rows, cols = np.nonzero(case.masks[les.view_key])
            # the mask centroid lies at the stated depth from the nipple, on the chest-wall side of it
            depth_px = abs(cols.mean() - les.nipple[1])
            assert depth_px == pytest.approx(les.depth_mm / sx, abs=0.4 * les.radius_px[1] + 2)
            toward_wall = cols.mean() > les.nipple[1] if case.affected_side == "R" else cols.mean() < les.nipple[1]
            assert toward_wall


def test_mask_is_where_rc_enhances(cases):
    for case in cases:
        other = "L" if case.affected_side == "R" else "R"
        for les in case.lesions:
            m = case.masks[les.view_key].astype(bool)
            rc = case.study.get(les.view_key, "rc").pixels.astype(np.float64)
            ring = ndimage.binary_dilation(m, iterations=8) & ~ndimage.binary_dilation(m, iterations=3)
            ring &= rc > 0.05 * MAX_VALUE  # inside the breast
            assert rc[m].mean() > rc[ring].mean() + 0.03 * MAX_VALUE, (case.seed, les.view_key)
            # the same pixels of the mirrored contralateral view do not enhance like that
            view = les.view_key.split("_")[1]
            rc_other = case.study.get(f"{other}_{view}", "rc").pixels[:, ::-1].astype(np.float64)
            assert rc[m].mean() > rc_other[m].mean() + 0.03 * MAX_VALUE


def test_breasts_are_similar_but_not_identical(cases):
    for case in cases:
        for view in ("CC", "MLO"):
            r = case.study.get(f"R_{view}", "le").pixels[:, ::-1].astype(np.float64)
            l = case.study.get(f"L_{view}", "le").pixels.astype(np.float64)
            both = (r > 0.05 * MAX_VALUE) & (l > 0.05 * MAX_VALUE)
            corr = np.corrcoef(r[both], l[both])[0, 1]
            assert 0.3 < corr < 0.98, (case.seed, view, corr)


def _compactness(mask: np.ndarray) -> float:
    area = mask.sum()
    perimeter = (mask & ~ndimage.binary_erosion(mask)).sum()
    return float(area / max(perimeter, 1) ** 2)


def test_malignant_margins_less_compact_but_classes_overlap():
    clean = PhantomConfig(ambiguity=0.0)
    comp = {lab: [] for lab in LABELS}
    for s in range(5):
        for lab in LABELS:
            case = generate_case(100 + s, size=SIZE, label=lab, config=clean)
            les = case.lesions[0]
            comp[lab].append(_compactness(case.masks[les.view_key].astype(bool)))
    assert np.median(comp["malignant"]) < np.median(comp["benign"])
    margins = {lab: {generate_case(300 + s, size=(64, 64), label=lab, config=clean).lesions[0].margin
                     for s in range(8)} for lab in LABELS}
    assert margins["benign"] <= {"circumscribed", "lobulated"} and margins["malignant"] <= {"irregular", "spiculated"}
    # the default difficulty keeps some malignant lesions as compact as benign ones
    default = [generate_case(200 + s, size=(64, 64), label="malignant") for s in range(30)]
    assert any(c.lesions[0].margin in ("circumscribed", "lobulated") for c in default)


def test_512_square_is_the_squashed_field():
    case = generate_case(4, size=(512, 512))
    img = case.study.get("L_CC", "le")
    assert img.pixels.shape == (512, 512)
    sy, sx = img.pixel_spacing_mm
    assert sy == pytest.approx(240 / 512) and sx == pytest.approx(195 / 512)


def test_generator_reports_the_ceiling_its_ground_truth_allows():
    from core_model.synth.phantom import PhantomConfig, ceiling_auc

    easy = ceiling_auc(PhantomConfig.preset("easy"), n=1500)
    medium = ceiling_auc(PhantomConfig.preset("medium"), n=1500)
    hard = ceiling_auc(PhantomConfig.preset("hard"), n=1500)
    assert easy == 1.0  # no ambiguous lesions: the look alone separates the classes
    # an ambiguous lesion takes the other class's look, so about 1 - ambiguity is left from the look,
    # a little more from the weak cues that stay with the label (size, enhancement, distortion)
    assert 0.8 < medium < 0.97 and 0.65 < hard < medium
    assert ceiling_auc(PhantomConfig(ambiguity=0.5, distortion_prob=0.0, calcification_prob=0.0,
                                     benign_radius_mm=(5.0, 15.0), malignant_radius_mm=(5.0, 15.0)), n=1500) < 0.75
