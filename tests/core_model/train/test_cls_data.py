"""Labels, cases and network inputs of the classifier, on the real bundled CDD-CESM files."""

import numpy as np
import pytest
from PIL import Image

from core_model.domain.errors import NafvError
from core_model.io import load_study
from core_model.io.masks import read_mask_png
from core_model.models import create_model
from core_model.train.cls_data import case_inputs, embed_cases, load_cases, read_labels
from core_model.transforms.model_inputs import study_inputs
from core_model.transforms.position_mask import position_mask

HEADER = "Image_name,Patient_ID,Side,Type,Age,Breast density (ACR),BIRADS,Findings,View,Tags,Machine,Pathology Classification/ Follow up\n"


def _write_labels(path, rows):
    path.write_text(HEADER + "".join(rows))
    return path


def test_read_labels_birads_and_pathology(tmp_path):
    csv = _write_labels(tmp_path / "a.csv", [
        "P12_L_DM_CC,12,L,DM,40,C,5,mass,CC,x,1,Malignant\n",
        "P12_R_DM_CC,12,R,DM,40,C,1,none,CC,x,1,Normal\n",
        "P102_R_DM_CC,102,R,DM,50,B,2$4,mass,CC,x,1,Benign\n",  # two findings: the highest counts
        "P106_L_CM_MLO,106,L,CESM,50,_,3,mass,MLO,x,1,Benign\n",
        "P106_L_DM_MLO,106,L,DM,50,B,4,mass,MLO,x,1,Benign\n",
    ])
    assert read_labels(csv, "birads") == {("P12", "L"): 1, ("P12", "R"): 0, ("P102", "R"): 1, ("P106", "L"): 1}
    assert read_labels(csv, "pathology") == {("P12", "L"): 1, ("P12", "R"): 0, ("P102", "R"): 0, ("P106", "L"): 0}
    with pytest.raises(NafvError):
        read_labels(tmp_path / "missing.csv")
    bad = tmp_path / "bad.csv"
    bad.write_text("a,b\n1,2\n")
    with pytest.raises(NafvError):
        read_labels(bad)


def test_load_cases_real_files(cdd_test_dir, tmp_path):
    csv = _write_labels(tmp_path / "l.csv", [
        "P12_L_DM_CC,12,L,DM,40,C,5,mass,CC,x,1,Malignant\n",
        "P102_R_DM_CC,102,R,DM,50,B,2,mass,CC,x,1,Benign\n",
    ])
    cases, notes = load_cases(cdd_test_dir, csv)
    assert sorted(c.key for c in cases) == ["P102_R", "P12_L"]
    assert {c.key: c.label for c in cases} == {"P12_L": 1, "P102_R": 0}
    assert all(c.contralateral is None for c in cases)  # these patients have one breast imaged
    assert any("P106" in n for n in notes)  # unlabelled / MLO only
    c = next(c for c in cases if c.key == "P12_L")
    assert c.masks["CC"].shape == (512, 512) and c.masks["CC"].sum() > 1000
    x = case_inputs(c, 56, ("le", "le", "rc"))
    assert set(x) == {"affected"} and x["affected"].shape == (2, 3, 56, 56)
    assert 0 <= x["affected"].min() and x["affected"].max() <= 1


def test_study_inputs_demo_study(demo_dir):
    study = load_study(demo_dir)
    masks = {}
    for p in (demo_dir.parent / "demo_masks").glob("P66_L_DM_*.jpg"):
        masks["L_" + p.stem.split("_")[-1]] = read_mask_png(p)
    aff, con = study_inputs(study, masks, "L", 56, ("le", "le", "rc"))
    assert aff.shape == con.shape == (1, 2, 3, 56, 56)
    # Eq. 8: far from the lesion the input is dimmed relative to the raw image
    raw = np.asarray(Image.fromarray(study.get("L_CC", "le").normalized()).resize((56, 56), Image.BILINEAR))
    les = np.asarray(Image.fromarray(masks["L_CC"].astype(np.float32)).resize((56, 56), Image.NEAREST)) > 0.5
    np.testing.assert_allclose(aff[0, 0, 0].numpy(), raw * position_mask(les), atol=1e-5)
    # the contralateral side gets the mirrored position mask
    raw_r = np.asarray(Image.fromarray(study.get("R_CC", "le").normalized()).resize((56, 56), Image.BILINEAR))
    np.testing.assert_allclose(con[0, 0, 0].numpy(), raw_r * position_mask(les[:, ::-1]), atol=1e-5)
    # without masks the views pass unchanged (all-ones fallback), and a missing side is an error
    aff2, _ = study_inputs(study, {}, "L", 56, ("le", "le", "le"))
    np.testing.assert_allclose(aff2[0, 0, 0].numpy(), raw, atol=1e-5)
    study.images.pop(("L_MLO", "le"))
    with pytest.raises(NafvError):
        study_inputs(study, masks, "L", 56, ("le", "le", "rc"))


@pytest.mark.parametrize("crop", [0.0, 0.3])
def test_training_and_analysis_feed_the_classifier_the_same_inputs(demo_dir, crop):
    """What the trainer builds from a case is what the analyzer builds from the study, whole views or
    lesion squares."""
    from core_model.train.cls_data import cases_from_study

    study = load_study(demo_dir)
    masks = {f"L_{v}": read_mask_png(demo_dir.parent / "demo_masks" / f"P66_L_DM_{v}.jpg") > 0 for v in ("CC", "MLO")}
    case = next(c for c in cases_from_study(study, masks, {"L": 1}) if c.side == "L")
    x = case_inputs(case, 56, ("le", "le", "rc"), crop=crop)
    aff, con = study_inputs(study, masks, "L", 56, ("le", "le", "rc"), crop=crop)
    np.testing.assert_array_equal(x["affected"], aff[0].numpy())
    np.testing.assert_array_equal(x["contralateral"], con[0].numpy())


def test_adversarial_inputs_and_token_cache(demo_dir):
    from core_model.train.cls_data import cases_from_study

    study = load_study(demo_dir)
    masks = {}
    for p in (demo_dir.parent / "demo_masks").glob("P66_*_DM_*.jpg"):
        _, side, _, view = p.stem.split("_")
        masks[f"{side}_{view}"] = read_mask_png(p)
    cases = cases_from_study(study, masks, {"L": 1, "R": 0})
    assert sorted((c.side, c.label) for c in cases) == [("L", 1), ("R", 0)]  # lesions on both sides
    x = case_inputs(cases[0], 56, ("le", "le", "rc"), n_adversarial=2, rng=np.random.default_rng(0))
    assert x["adversarial"].shape == (2, 2, 3, 56, 56)
    assert not np.allclose(x["adversarial"][0], x["contralateral"])  # the lesion was pasted
    m = create_model("nafv_cls_tiny").eval()
    cache = embed_cases(m, cases, n_adversarial=2, seed=0)
    assert cache["affected"].shape == (2, 2, 48, 4, 4) and cache["adversarial"].shape == (2, 2, 2, 48, 4, 4)
    assert cache["has_contralateral"].all() and cache["label"].tolist() == [cases[0].label, cases[1].label]
    again = embed_cases(m, cases, n_adversarial=2, seed=0)
    assert np.allclose(cache["adversarial"].numpy(), again["adversarial"].numpy())  # reproducible from the seed
