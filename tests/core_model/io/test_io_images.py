"""Plain image folders: PNG / JPEG / TIFF named with side, view and energy; bit depth kept."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from core_model.io import list_patients, load_study
from core_model.io.images import read_raster

NAMES = {
    ("L", "CC", "le"): "left_cc_low_energy.png",
    ("L", "CC", "rc"): "L-CC-recombined.tif",
    ("R", "MLO", "le"): "RMLO_LE.tiff",
    ("R", "MLO", "rc"): "right mlo subtracted.jpeg",
}


def test_plain_folder(tmp_path, demo_small):
    folder = tmp_path / "Jane Doe 2024"
    folder.mkdir()
    for slot, name in NAMES.items():
        Image.fromarray(demo_small[slot]).save(folder / name)
    study = load_study(folder)
    assert study.patient_id == study.study_id == "Jane Doe 2024"
    assert list(study.images) == [("L_CC", "le"), ("L_CC", "rc"), ("R_MLO", "le"), ("R_MLO", "rc")]
    assert study.warnings == [] and study.description == "image folder"
    for (side, view, energy), name in NAMES.items():
        img = study.get(f"{side}_{view}", energy)
        assert img.source.name == name and img.pixel_spacing_mm is None and img.pixels.dtype == np.uint8
        if not name.endswith(".jpeg"):  # lossless formats come back exactly
            assert np.array_equal(img.pixels, demo_small[(side, view, energy)])
        else:
            assert np.abs(img.pixels.astype(int) - demo_small[(side, view, energy)]).mean() < 3
    assert list_patients(folder) == ["Jane Doe 2024"]


@pytest.mark.parametrize("suffix", [".png", ".tif"])
def test_16bit_kept(tmp_path, demo_small, suffix):
    px = demo_small[("R", "CC", "le")].astype(np.uint16) * 250  # values up to 63750
    Image.fromarray(px).save(tmp_path / f"R_CC_LE{suffix}")
    img = load_study(tmp_path).get("R_CC", "le")
    assert img.pixels.dtype == np.uint16 and img.bits_stored == 16
    assert np.array_equal(img.pixels, px) and int(img.pixels.max()) > 4095


def test_colour_image_becomes_greyscale(tmp_path, demo_small):
    grey = demo_small[("L", "MLO", "rc")]
    Image.fromarray(np.stack([grey] * 3, axis=-1)).save(tmp_path / "L_MLO_RC.png")
    px, bits = read_raster(tmp_path / "L_MLO_RC.png")
    assert px.ndim == 2 and bits == 8 and np.array_equal(px, grey)


def test_single_file_opens_as_a_one_image_study(cdd_test_dir):
    study = load_study(cdd_test_dir / "images" / "P12_L_CM_MLO.jpg")
    assert study.patient_id == "P12" and list(study.images) == [("L_MLO", "rc")]


def test_subfolders_of_loose_names_are_separate_patients(tmp_path, demo_small):
    from core_model.domain.errors import StudyLoadError

    root = tmp_path / "root"
    (root / "patA").mkdir(parents=True)
    (root / "patB").mkdir()
    Image.fromarray(demo_small[("R", "CC", "le")]).save(root / "patA" / "R_CC_le.png")
    Image.fromarray(demo_small[("R", "MLO", "le")]).save(root / "patA" / "R_MLO_le.png")
    Image.fromarray(demo_small[("L", "CC", "le")]).save(root / "patB" / "L_CC_le.png")
    with pytest.raises(StudyLoadError, match="2 patients"):
        load_study(root)
    assert list_patients(root) == ["patA", "patB"]
    a = load_study(root, patient="patA")
    assert a.patient_id == "patA" and sorted(a.images) == [("R_CC", "le"), ("R_MLO", "le")]
    b = load_study(root, patient="patB")
    assert b.patient_id == "patB" and list(b.images) == [("L_CC", "le")]
    # Opening one patient's folder directly still names the patient by that folder.
    assert load_study(root / "patA").patient_id == "patA"
