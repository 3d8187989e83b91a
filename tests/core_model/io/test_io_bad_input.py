"""Bad input: one clear message naming the file and the reason, and the rest of the study still loads."""

from __future__ import annotations

import shutil

import numpy as np
import pytest
from PIL import Image

from core_model.domain.errors import StudyLoadError
from core_model.io import MAX_PIXELS, MAX_SIDE_PX, list_patients, load_study, write_mg_dicom
from tests.study_files import set_raw_ds

CT_IMAGE_STORAGE = "1.2.840.10008.5.1.4.1.1.2"
MR_IMAGE_STORAGE = "1.2.840.10008.5.1.4.1.1.4"


def _warning_for(study, name: str) -> str:
    hits = [w for w in study.warnings if name in w]
    assert len(hits) == 1, study.warnings
    return hits[0]


def test_truncated_and_garbage_dicom_are_skipped(dicom_study):
    folder, images = dicom_study
    victim = folder / "P66_L_CC_rc.dcm"
    data = victim.read_bytes()
    victim.write_bytes(data[: len(data) // 2])  # pixel data cut off mid-way
    (folder / "notes.dcm").write_bytes(b"this is not a DICOM file at all")
    (folder / "header_only.dcm").write_bytes(data[:100])  # cut inside the preamble
    study = load_study(folder)
    assert len(study) == 7 and not study.has("L_CC", "rc")
    assert np.array_equal(study.get("L_CC", "le").pixels, images[("L", "CC", "le")])
    assert "P66_L_CC_rc.dcm: skipped, the pixel data cannot be decoded (damaged or truncated file" in \
        _warning_for(study, "P66_L_CC_rc.dcm")
    assert "notes.dcm: skipped, not a readable DICOM file" in _warning_for(study, "notes.dcm")
    assert "header_only.dcm: skipped, not a readable DICOM file" in _warning_for(study, "header_only.dcm")


def test_truncated_jpeg_is_skipped(tmp_path, cdd_test_dir):
    for f in (cdd_test_dir / "images").glob("P12_*.jpg"):
        shutil.copy(f, tmp_path / f.name)
    victim = tmp_path / "P12_L_CM_CC.jpg"
    victim.write_bytes(victim.read_bytes()[:2000])
    study = load_study(tmp_path)
    assert len(study) == 3 and not study.has("L_CC", "rc")
    msg = _warning_for(study, "P12_L_CM_CC.jpg")
    assert msg.startswith(f"{victim}: skipped, the image cannot be read (damaged or truncated file")


@pytest.mark.parametrize("modality, sop", [("CT", CT_IMAGE_STORAGE), ("MR", MR_IMAGE_STORAGE)])
def test_non_mammography_dicom_is_skipped(dicom_study, demo_small, modality, sop):
    folder, _ = dicom_study
    write_mg_dicom(folder / "scan.dcm", demo_small[("L", "CC", "le")], side="L", view="CC", energy="le",
                   patient_id="P66", Modality=modality, SOPClassUID=sop, PresentationIntentType=None)
    study = load_study(folder)
    assert study.complete
    assert _warning_for(study, "scan.dcm") == f"{folder / 'scan.dcm'}: skipped, not a mammogram (Modality {modality})"


def test_two_files_claiming_one_slot_keep_the_first(dicom_study, demo_small):
    folder, images = dicom_study
    write_mg_dicom(folder / "Z_extra.dcm", demo_small[("R", "MLO", "le")], side="R", view="MLO", energy="le",
                   patient_id="P66")
    study = load_study(folder)
    assert study.complete and np.array_equal(study.get("R_MLO", "le").pixels, images[("R", "MLO", "le")])
    assert _warning_for(study, "Z_extra.dcm") == (
        f"{folder / 'Z_extra.dcm'}: skipped, R_MLO LE is already taken by {folder / 'P66_R_MLO_le.dcm'}; "
        "kept the first")


def test_two_images_claiming_one_slot_in_cdd_folders(tmp_path, cdd_test_dir):
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    shutil.copy(cdd_test_dir / "images" / "P106_L_DM_MLO.jpg", tmp_path / "a")
    shutil.copy(cdd_test_dir / "images" / "P106_L_DM_MLO.jpg", tmp_path / "b")
    study = load_study(tmp_path)
    assert len(study) == 1 and study.get("L_MLO", "le").source == tmp_path / "a" / "P106_L_DM_MLO.jpg"
    assert "b/P106_L_DM_MLO.jpg: skipped, L_MLO LE is already taken by" in study.warnings[0]


def test_different_patients_in_one_dicom_folder(tmp_path, demo_small, write_study):
    left = {k: v for k, v in demo_small.items() if k[0] == "L"}
    write_study(tmp_path, left, patient_id="ANON-1")
    write_study(tmp_path, {k: v for k, v in demo_small.items() if k[0] == "R"}, patient_id="ANON-2")
    with pytest.raises(StudyLoadError, match=r"holds images of 2 patients \(ANON-1, ANON-2\); choose one"):
        load_study(tmp_path)
    assert list_patients(tmp_path) == ["ANON-1", "ANON-2"]
    study = load_study(tmp_path, patient="ANON-2")
    assert study.patient_id == "ANON-2" and study.sides_present() == ["R"] and len(study) == 4
    with pytest.raises(StudyLoadError, match="patient ANON-3 is not in this folder; it holds ANON-1, ANON-2"):
        load_study(tmp_path, patient="ANON-3")


def test_two_studies_of_one_patient_open_the_larger(tmp_path, demo_small, write_study):
    write_study(tmp_path, demo_small, patient_id="P9", study_uid="1.2.3.1")
    write_mg_dicom(tmp_path / "prior.dcm", demo_small[("L", "CC", "le")], side="L", view="CC", energy="le",
                   patient_id="P9", study_uid="1.2.3.0")
    study = load_study(tmp_path)
    assert study.study_id == "1.2.3.1" and study.complete
    assert "skipped 1 file(s) of another study of patient P9 (StudyInstanceUID 1.2.3.0)" in study.warnings[0]


def test_empty_folder(tmp_path):
    with pytest.raises(StudyLoadError) as info:
        load_study(tmp_path)
    assert str(info.value) == (
        f"{tmp_path}: no usable mammogram; looked for DICOM files, CDD-CESM images named like P12_L_DM_CC.jpg, "
        "or PNG/JPEG/TIFF files whose names give side, view and energy (like L_CC_LE.png).")
    assert list_patients(tmp_path) == []


def test_folder_without_usable_images_lists_what_it_skipped(tmp_path):
    (tmp_path / "README.md").write_text("a study")
    (tmp_path / "table.csv").write_text("a,b\n")
    Image.fromarray(np.zeros((8, 8), np.uint8)).save(tmp_path / "holiday.png")
    (tmp_path / "movie.avi").write_bytes(b"RIFF")
    with pytest.raises(StudyLoadError) as info:
        load_study(tmp_path)
    msg = str(info.value)
    assert "no usable mammogram" in msg and "Files skipped:" in msg
    assert "holiday.png: skipped, the file name does not say side (L/R), view (CC/MLO)" in msg
    assert "movie.avi: skipped, not a DICOM file or an image this viewer reads" in msg
    assert "README.md" not in msg and "table.csv" not in msg


def test_missing_path():
    with pytest.raises(StudyLoadError, match=r"/no/such/study: no such file or folder"):
        load_study("/no/such/study")


def test_too_large_dicom_is_skipped_before_decoding(dicom_study, demo_small):
    folder, _ = dicom_study
    # Wider than the per-side limit (cheap to write: 2 rows).
    write_mg_dicom(folder / "wide.dcm", np.zeros((2, MAX_SIDE_PX + 1), np.uint8), side="L", view="CC", energy="le",
                   patient_id="P66")
    # A header claiming 16384 x 20000 over 50 kB of pixel data: decoding would fail or allocate,
    # so the size message proves the header was checked first.
    write_mg_dicom(folder / "huge.dcm", demo_small[("L", "CC", "le")], side="L", view="CC", energy="le",
                   patient_id="P66", Rows=16384, Columns=16384 + 3616)
    study = load_study(folder)
    assert study.complete
    assert _warning_for(study, "wide.dcm").endswith(
        f"skipped, image is 2 x {MAX_SIDE_PX + 1} pixels; the limit is 16384 pixels per side and "
        f"{MAX_PIXELS:,} pixels in all")
    assert "huge.dcm: skipped, image is 16384 x 20000 pixels; the limit is 16384 pixels per side" in \
        _warning_for(study, "huge.dcm")


def test_too_large_png_is_skipped(tmp_path, demo_small):
    Image.fromarray(demo_small[("L", "CC", "le")]).save(tmp_path / "L_CC_LE.png")
    Image.fromarray(np.zeros((1, MAX_SIDE_PX + 10), np.uint8)).save(tmp_path / "L_CC_RC.png")
    study = load_study(tmp_path)
    assert list(study.images) == [("L_CC", "le")]
    assert f"L_CC_RC.png: skipped, image is 1 x {MAX_SIDE_PX + 10} pixels; the limit is" in study.warnings[0]


def test_malformed_window_is_ignored_and_the_image_kept(dicom_study):
    folder, images = dicom_study
    victim = folder / "P66_L_CC_le.dcm"
    set_raw_ds(victim, "WindowCenter", b"12a ")
    study = load_study(folder)
    assert study.complete
    img = study.get("L_CC", "le")
    assert img.window is None and np.array_equal(img.pixels, images[("L", "CC", "le")])
    msg = _warning_for(study, "P66_L_CC_le.dcm")
    assert "WindowCenter '12a'" in msg and "ignored the window" in msg


def test_images_whose_names_give_no_view_wait_for_the_reader(tmp_path):
    from core_model.domain.resources import DEMO_DIR

    demo = sorted(DEMO_DIR.glob("*.jpg"))
    rcc = next(p for p in demo if "_R_DM_CC" in p.name)
    lcc = next(p for p in demo if "_L_DM_CC" in p.name)
    lcc_rc = next(p for p in demo if "_L_CM_CC" in p.name)
    (tmp_path / "R_CC_LE.jpg").write_bytes(rcc.read_bytes())
    (tmp_path / "scan 0002.jpg").write_bytes(lcc.read_bytes())  # a name that says nothing
    (tmp_path / "left_rc.jpg").write_bytes(lcc_rc.read_bytes())  # side and energy, no view
    (tmp_path / "scan 0002b.jpg").write_bytes(lcc.read_bytes())  # the same bytes again
    study = load_study(tmp_path)
    assert list(study.images) == [("R_CC", "le")]
    waiting = {u.source.name: u for u in study.unassigned}
    assert set(waiting) == {"scan 0002.jpg", "left_rc.jpg"}
    assert waiting["scan 0002.jpg"].reason == "the file name does not say the side or view"
    assert (waiting["scan 0002.jpg"].side, waiting["scan 0002.jpg"].energy) == (None, "le")
    assert waiting["left_rc.jpg"].reason == "the file name does not say the view"
    assert (waiting["left_rc.jpg"].side, waiting["left_rc.jpg"].energy) == ("L", "rc")
    # the reader's choice is keyed by the content, so a copy is the same image and is offered once
    assert waiting["scan 0002.jpg"].uid.startswith("sha1:") and waiting["scan 0002.jpg"].uid != waiting["left_rc.jpg"].uid
    assert any(w.endswith("scan 0002b.jpg: skipped, the same image as scan 0002.jpg") for w in study.warnings)
    assert any("scan 0002.jpg: the file name does not say the side or view; waits among the unassigned" in w
               for w in study.warnings)
    study.assign(waiting["scan 0002.jpg"].uid, "L_CC")
    assert ("L_CC", "le") in study.images


def test_a_folder_of_unnamed_images_opens_with_all_of_them_waiting(tmp_path):
    from core_model.domain.resources import DEMO_DIR

    for i, p in enumerate(sorted(DEMO_DIR.glob("*.jpg"))[:4]):
        (tmp_path / f"IMG_{i:04d}.jpg").write_bytes(p.read_bytes())
    study = load_study(tmp_path)
    assert len(study) == 0 and len(study.unassigned) == 4
    assert len({u.uid for u in study.unassigned}) == 4


def test_an_unnamed_image_beside_two_cdd_patients_belongs_to_neither(tmp_path):
    from core_model.domain.resources import DEMO_DIR

    demo = sorted(DEMO_DIR.glob("*.jpg"))
    for p in demo[:2]:
        (tmp_path / p.name).write_bytes(p.read_bytes())
        (tmp_path / p.name.replace("P66_", "P67_", 1)).write_bytes(p.read_bytes())
    (tmp_path / "loose scan.jpg").write_bytes(demo[2].read_bytes())
    study = load_study(tmp_path, patient="P66")
    assert study.unassigned == [] and len(study) == 2
    assert any("ignored 1 image(s) not named like the CDD-CESM files, e.g. loose scan.jpg" in w for w in study.warnings)
