"""Side and view when the DICOM view tags are missing: names in PatientID, descriptions and file names.

Also the images nothing names (they wait for the reader, unassigned) and
single-energy studies (digital mammography, no recombined image).
"""

from __future__ import annotations

import numpy as np
import pytest

from core_model.domain.study import VIEW_KEYS
from core_model.io import load_study, write_mg_dicom
from core_model.io.naming import parse_loose_name, patient_without_view, slot_hints
from tests.study_files import cbis_ddsm_study


def _one(found: set[str]) -> str | None:
    return next(iter(found)) if len(found) == 1 else None


@pytest.mark.parametrize("text, side, view", [
    ("Mass-Test_P_00173_LEFT_CC", "L", "CC"),
    ("Calc-Training_P_00005_RIGHT_MLO", "R", "MLO"),
    ("Mass-Training_P_01234_LEFT_MLO_1", "L", "MLO"),
    ("R MLO", "R", "MLO"),
    ("RCC", "R", "CC"),
    ("LMLO", "L", "MLO"),
    ("L-CC", "L", "CC"),
    ("l_cc", "L", "CC"),
    ("Right cranio-caudal", "R", "CC"),
    ("LT medio-lateral oblique", "L", "MLO"),
    ("L XCCL", "L", "CC"),
    ("Mammo screening bilateral", None, None),
    ("P_00173", None, None),
    ("CC", None, "CC"),
    ("LEFT", "L", None),
    ("L CC R MLO", None, None),  # two of each: ambiguous, never a guess
])
def test_side_and_view_from_text(text, side, view):
    sides, views, _ = slot_hints(text)
    assert (_one(sides), _one(views)) == (side, view)


@pytest.mark.parametrize("patient_id, patient", [
    ("Mass-Test_P_00173_LEFT_CC", "Mass-Test_P_00173"),
    ("Calc-Training_P_00005_RIGHT_MLO", "Calc-Training_P_00005"),
    ("Mass-Training_P_00001_LEFT_MLO_2", "Mass-Training_P_00001"),
    ("P66", "P66"),
    ("RCC", "RCC"),  # nothing before the slot words: not an id with a suffix
    ("Doe-LEFT", "Doe-LEFT"),
])
def test_patient_id_without_the_slot_words(patient_id, patient):
    assert patient_without_view(patient_id) == patient


@pytest.mark.parametrize("name, side, view, energy, assumed", [
    ("L-CC.png", "L", "CC", "le", True),
    ("R-MLO.png", "R", "MLO", "le", True),
    ("RCC_recombined.png", "R", "CC", "rc", False),
    ("left.png", None, None, None, None),
])
def test_file_names_without_energy_are_low_energy(name, side, view, energy, assumed):
    info = parse_loose_name(name, assume_le=True)
    if side is None:
        assert info is None
    else:
        assert (info.side, info.view, info.energy, info.energy_assumed) == (side, view, energy, assumed)
    assert parse_loose_name("L-CC.png") is None  # training lists keep asking for an explicit energy


def test_cbis_ddsm_study_opens_with_four_views_hung(tmp_path, demo_dir):
    written = cbis_ddsm_study(tmp_path / "exam", demo_dir)
    study = load_study(tmp_path / "exam")
    assert study.patient_id == "Mass-Test_P_00173"
    assert study.views_present() == list(VIEW_KEYS)
    assert len(study) == 4 and not study.unassigned
    assert all(study.get(k, "rc") is None for k in VIEW_KEYS)
    by_file = {img.source.parent.name: img for img in study.images.values()}
    assert set(by_file) == {"Mass-Test_P_00173_LEFT_CC", "Mass-Test_P_00173_RIGHT_CC",
                            "Mass-Test_P_00173_LEFT_MLO", "Mass-Test_P_00173_RIGHT_MLO"}
    for img in study.images.values():
        word = {"L": "LEFT", "R": "RIGHT"}[img.side]
        assert img.source.parent.name == f"Mass-Test_P_00173_{word}_{img.view}"
        assert img.pixels.dtype == np.uint16 and int(img.pixels.max()) > 4095
        assert any(np.array_equal(img.pixels, px) for px in written.values())
    assert any("other StudyInstanceUIDs" in w and "shown together" in w for w in study.warnings)


def test_image_with_no_view_anywhere_waits_unassigned(tmp_path, demo_dir):
    written = cbis_ddsm_study(tmp_path / "exam", demo_dir, views=(("R", "CC"), ("L", "CC"), ("R", "MLO")), unplaced=1)
    study = load_study(tmp_path / "exam")
    assert study.views_present() == ["R_CC", "L_CC", "R_MLO"]
    (waiting,) = study.unassigned
    assert waiting.side is None and waiting.energy == "le" and waiting.source.name == "1-1.dcm"
    assert waiting.uid in written and np.array_equal(waiting.pixels, written[waiting.uid])
    assert "no breast side" in waiting.reason
    assert any("waits among the unassigned images" in w for w in study.warnings)
    assert "1 image(s) without a view" in study.summary()

    image = study.assign(waiting.uid, "L_MLO")
    assert study.get("L_MLO", "le") is image and not study.unassigned
    with pytest.raises(ValueError, match="no unassigned image"):
        study.assign(waiting.uid, "L_MLO")
    study.unassign(waiting.uid)
    assert study.get("L_MLO", "le") is None and study.unassigned == [waiting]
    with pytest.raises(ValueError, match="already holds"):
        study.assign(waiting.uid, "R_CC")
    assert study.unassigned == [waiting]  # a refused placement leaves it waiting


def test_a_study_of_unplaced_images_only_still_opens(tmp_path, demo_dir):
    cbis_ddsm_study(tmp_path / "exam", demo_dir, views=(), unplaced=2)
    study = load_study(tmp_path / "exam")
    assert len(study) == 0 and len(study.unassigned) == 2


def test_view_in_patient_id_only_with_side_in_laterality(tmp_path, demo_small):
    write_mg_dicom(tmp_path / "IMG1", demo_small[("R", "MLO", "le")], side="R", view="MLO", energy="le",
                   patient_id="Calc-Test_P_00042_RIGHT_MLO", ViewPosition=None, ViewCodeSequence=None,
                   SeriesDescription=None, ImageLaterality=None)
    study = load_study(tmp_path)
    assert list(study.images) == [("R_MLO", "le")] and study.patient_id == "Calc-Test_P_00042"


def test_single_energy_png_study_opens_and_hangs(ffdm_dir):
    study = load_study(ffdm_dir)
    assert study.views_present() == list(VIEW_KEYS)
    assert all(study.has(k, "le") and not study.has(k, "rc") for k in VIEW_KEYS)
    assert len(study.warnings) == 4 and all("shown as low energy" in w for w in study.warnings)
