"""A laterality tag that the image contradicts is shown as tagged, with a warning saying which says what."""

from __future__ import annotations

import shutil

import numpy as np
import pytest
from PIL import Image

from core_model.io import load_study, write_mg_dicom
from core_model.io.naming import parse_cdd_cesm_name


def _laterality_warnings(study) -> list[str]:
    return [w for w in study.warnings if "breast" in w and "stored" in w]


def test_left_tag_on_a_right_image_is_warned(dicom_study):
    folder, images = dicom_study
    victim = folder / "P66_L_CC_le.dcm"
    # The right CC image tagged L: its chest wall is on the right edge and PatientOrientation says P (posterior
    # to the right), the way a right breast is stored.
    write_mg_dicom(victim, images[("R", "CC", "le")], side="L", view="CC", energy="le", patient_id="P66",
                   pixel_spacing_mm=(0.1, 0.1))
    study = load_study(folder)
    assert study.complete and np.array_equal(study.get("L_CC", "le").pixels, images[("R", "CC", "le")])
    (msg,) = _laterality_warnings(study)
    assert msg == (
        f"{victim}: ImageLaterality says left breast, but the image is stored as a right breast is "
        "(chest wall on the right edge, and PatientOrientation P\\R says the same); shown as left, "
        "as ImageLaterality says: check which breast this is")


def test_without_patient_orientation_the_pixels_alone_are_named(dicom_study):
    folder, images = dicom_study
    victim = folder / "P66_R_MLO_rc.dcm"
    write_mg_dicom(victim, images[("L", "MLO", "rc")], side="R", view="MLO", energy="rc", patient_id="P66",
                   pixel_spacing_mm=(0.1, 0.1), PatientOrientation=None)
    study = load_study(folder)
    (msg,) = _laterality_warnings(study)
    assert msg.startswith(f"{victim}: ImageLaterality says right breast, but the image is stored as a left "
                          "breast is (chest wall on the left edge; the file has no PatientOrientation)")


def test_side_from_the_series_description_is_named_as_such(dicom_study):
    folder, images = dicom_study
    victim = folder / "P66_L_CC_rc.dcm"
    write_mg_dicom(victim, images[("R", "CC", "rc")], side="L", view="CC", energy="rc", patient_id="P66",
                   ImageLaterality=None, Laterality=None)
    study = load_study(folder)
    (msg,) = _laterality_warnings(study)
    assert msg.startswith(f"{victim}: SeriesDescription 'L CC recombined' says left breast, but")


def test_orientation_that_disagrees_with_the_pixels_is_not_a_laterality_doubt(dicom_study):
    # The tags then describe the geometry differently from the outline; the side is not what is in question.
    folder, images = dicom_study
    write_mg_dicom(folder / "P66_L_CC_le.dcm", images[("R", "CC", "le")], side="L", view="CC", energy="le",
                   patient_id="P66", chest_wall="left")
    assert _laterality_warnings(load_study(folder)) == []


def test_a_vendor_storing_every_image_chest_wall_left_gets_no_warning(tmp_path, demo_small, write_study):
    # Every right image stored mirrored, its PatientOrientation (A) saying so: the storage says nothing about side.
    mirrored = {k: (v[:, ::-1] if k[0] == "R" else v) for k, v in demo_small.items()}
    write_study(tmp_path, mirrored)
    study = load_study(tmp_path)
    assert study.complete and study.warnings == []
    assert {study.get(k, "le").orientation[0] for k in ("R_CC", "L_CC", "R_MLO", "L_MLO")} == {"A"}


def test_real_cdd_cesm_patients_as_dicom_get_no_warning(tmp_path, cdd_test_dir):
    for f in sorted((cdd_test_dir / "images").glob("*.jpg")):
        info = parse_cdd_cesm_name(f)
        px = np.asarray(Image.open(f).convert("L").resize((200, 256), Image.BILINEAR))
        write_mg_dicom(tmp_path / info.patient_id / f"{f.stem}.dcm", px, side=info.side, view=info.view,
                       energy=info.energy, patient_id=info.patient_id)
    for patient in ("P12", "P102", "P106"):
        study = load_study(tmp_path / patient)
        assert study.warnings == [], patient


@pytest.mark.parametrize("folder", ["demo", "cdd"])
def test_jpeg_studies_get_no_laterality_warning(tmp_path, demo_dir, cdd_test_dir, folder):
    if folder == "demo":
        study = load_study(demo_dir)
    else:
        for f in (cdd_test_dir / "images").glob("P12_*.jpg"):
            shutil.copy(f, tmp_path / f.name)
        study = load_study(tmp_path)
    assert study.warnings == []
