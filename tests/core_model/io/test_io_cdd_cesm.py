"""CDD-CESM naming: the demo study, the images/ + masks/ subset layout and the collection's two folders."""

from __future__ import annotations

import shutil

import numpy as np
import pytest
from PIL import Image

from core_model.domain.errors import StudyLoadError
from core_model.domain.study import VIEW_KEYS
from core_model.io import list_patients, load_study
from core_model.io.cdd_cesm import normalize_patient

LOW = "Low energy images of CDD-CESM"
SUB = "Subtracted images of CDD-CESM"


def test_demo_study(demo_dir):
    study = load_study(demo_dir)  # README.md beside the images is ignored quietly
    assert study.complete and study.warnings == []
    assert (study.patient_id, study.study_id) == ("P66", "CDD-CESM-P66")
    assert study.views_present() == list(VIEW_KEYS)
    for (key, energy), img in study.images.items():
        kind = {"le": "DM", "rc": "CM"}[energy]
        side, view = key.split("_")
        assert img.source == demo_dir / f"P66_{side}_{kind}_{view}.jpg"
        assert img.pixels.dtype == np.uint8 and img.shape == (512, 512) and img.bits_stored == 8
        assert np.array_equal(img.pixels, np.array(Image.open(img.source)))
        assert img.pixel_spacing_mm is None and img.window is None
    # Recombined images are dark apart from enhancement; low-energy images show the whole breast.
    assert study.get("L_CC", "le").pixels.mean() > study.get("L_CC", "rc").pixels.mean()


def test_subset_layout_images_and_masks(cdd_test_dir):
    for path in (cdd_test_dir, cdd_test_dir / "images"):
        study = load_study(path, patient="P12")
        assert study.patient_id == "P12" and len(study) == 4 and study.sides_present() == ["L"]
        assert {img.source.parent.name for img in study.images.values()} == {"images"}  # masks/ ignored
        assert study.warnings == []
    assert list_patients(cdd_test_dir) == ["P12", "P102", "P106"]
    p106 = load_study(cdd_test_dir, patient="P106")
    assert list(p106.images) == [("L_MLO", "le"), ("L_MLO", "rc")]
    assert ("L_CC", "le") in p106.missing()


def test_several_patients_need_a_choice(cdd_test_dir):
    with pytest.raises(StudyLoadError) as info:
        load_study(cdd_test_dir)
    assert str(info.value) == (f"{cdd_test_dir}: this folder holds images of 3 patients (P12, P102, P106); "
                               "choose one patient to open")
    with pytest.raises(StudyLoadError, match="patient P7 is not in this folder; it holds P12, P102, P106"):
        load_study(cdd_test_dir, patient="P7")


@pytest.mark.parametrize("given", ["P102", "p102", "102", "P0102"])
def test_patient_id_spellings(cdd_test_dir, given):
    assert normalize_patient(given) == "P102"
    assert load_study(cdd_test_dir, patient=given).patient_id == "P102"


def test_collection_two_folder_layout(tmp_path, cdd_test_dir):
    root = tmp_path / "CDD-CESM"
    (root / LOW).mkdir(parents=True)
    (root / SUB).mkdir()
    for f in sorted((cdd_test_dir / "images").glob("*.jpg")):
        shutil.copy(f, root / (LOW if "_DM_" in f.name else SUB) / f.name)
    (root / "Radiology manual annotations.csv").write_text("Image_name\n")
    assert list_patients(root) == ["P12", "P102", "P106"]
    study = load_study(root, patient="P102")
    assert study.complete is False and len(study) == 4 and study.sides_present() == ["R"]
    assert study.get("R_CC", "le").source.parent.name == LOW
    assert study.get("R_CC", "rc").source.parent.name == SUB
    assert np.array_equal(study.get("R_MLO", "rc").pixels,
                          np.array(Image.open(cdd_test_dir / "images" / "P102_R_CM_MLO.jpg")))
    assert study.warnings == []
    # The parent of the collection folder works too (one level further down).
    assert load_study(tmp_path, patient="P12").patient_id == "P12"


def test_other_images_beside_cdd_names_are_reported(tmp_path, cdd_test_dir):
    for f in (cdd_test_dir / "images").glob("P106_*.jpg"):
        shutil.copy(f, tmp_path / f.name)
    shutil.copy(cdd_test_dir / "images" / "P12_L_DM_CC.jpg", tmp_path / "left_cc_low_energy.jpg")
    study = load_study(tmp_path)
    assert study.patient_id == "P106" and len(study) == 2
    assert study.warnings == [f"{tmp_path}: ignored 1 image(s) not named like the CDD-CESM files, "
                              "e.g. left_cc_low_energy.jpg"]
