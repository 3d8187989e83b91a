"""DICOM loader: real demo images written as MG files, tag fallbacks, LUTs, codecs."""

from __future__ import annotations

import numpy as np
import pydicom
import pytest
from pydicom.uid import JPEG2000Lossless, JPEGLosslessSV1, JPEGLSLossless, MPEG2MPML, RLELossless

from core_model.domain.errors import StudyLoadError
from core_model.domain.study import VIEW_KEYS
from core_model.io import dicom as dicom_mod
from core_model.io import list_patients, load_study, write_mg_dicom


def test_eight_image_study(dicom_study):
    folder, images = dicom_study
    study = load_study(folder)
    assert study.complete and study.warnings == []
    assert study.patient_id == "P66"
    assert study.study_id == pydicom.dcmread(next(folder.iterdir())).StudyInstanceUID
    assert study.views_present() == list(VIEW_KEYS)
    for (side, view, energy), px in images.items():
        img = study.get(f"{side}_{view}", energy)
        assert img.pixels.dtype == np.uint16 and img.bits_stored == 12
        assert np.array_equal(img.pixels, px)
        assert img.pixel_spacing_mm == (0.1, 0.1)
        assert img.window == pytest.approx(((float(px.min()) + float(px.max())) / 2, float(px.max()) - float(px.min())))
        assert img.orientation == (("A", "R") if (side, view) == ("L", "CC") else img.orientation)
        assert img.source.name == f"P66_{side}_{view}_{energy}.dcm"
    assert study.get("R_MLO", "le").orientation == ("P", "FL")
    assert list_patients(folder) == ["P66"]


def test_files_without_extension_in_nested_folders(tmp_path, demo_small, write_study):
    write_study(tmp_path / "P66" / "series1", {k: v for k, v in demo_small.items() if k[0] == "L"}, suffix="")
    study = load_study(tmp_path)
    assert len(study) == 4 and study.sides_present() == ["L"] and study.warnings == []
    assert np.array_equal(study.get("L_CC", "rc").pixels, demo_small[("L", "CC", "rc")])
    assert study.get("L_CC", "rc").pixels.dtype == np.uint8 and study.get("L_CC", "rc").bits_stored == 8


def test_monochrome1_comes_back_equal_to_monochrome2(tmp_path, demo_small, make12):
    px = make12(demo_small[("R", "CC", "le")])
    kw = dict(side="R", view="CC", energy="le", patient_id="P1", window=(1500.0, 2000.0))
    write_mg_dicom(tmp_path / "m2" / "a.dcm", px, photometric="MONOCHROME2", **kw)
    write_mg_dicom(tmp_path / "m1" / "a.dcm", px, photometric="MONOCHROME1", **kw)
    stored = pydicom.dcmread(tmp_path / "m1" / "a.dcm").pixel_array
    assert not np.array_equal(stored, px)  # the file really holds inverted values
    a = load_study(tmp_path / "m2").get("R_CC", "le")
    b = load_study(tmp_path / "m1").get("R_CC", "le")
    assert np.array_equal(a.pixels, px) and np.array_equal(b.pixels, px)
    assert b.pixels.dtype == np.uint16
    assert a.window == b.window == (1500.0, 2000.0)


@pytest.mark.parametrize("syntax", [JPEG2000Lossless, JPEGLSLossless, JPEGLosslessSV1, RLELossless])
def test_compressed_16bit_round_trip(tmp_path, demo_small, syntax):
    px = demo_small[("L", "MLO", "rc")].astype(np.uint16) * 257  # up to 65535
    assert px.max() > 4095
    write_mg_dicom(tmp_path / "a.dcm", px, side="L", view="MLO", energy="rc", patient_id="P1",
                   transfer_syntax=syntax)
    img = load_study(tmp_path).get("L_MLO", "rc")
    assert img.bits_stored == 16 and img.pixels.dtype == np.uint16
    assert np.array_equal(img.pixels, px)


def test_16bit_uncompressed_keeps_values_above_4095(tmp_path, demo_small):
    px = demo_small[("L", "CC", "le")].astype(np.uint16) * 200
    write_mg_dicom(tmp_path / "a.dcm", px, side="L", view="CC", energy="le", patient_id="P1")
    img = load_study(tmp_path).get("L_CC", "le")
    assert img.bits_stored == 16 and int(img.pixels.max()) == int(px.max()) > 4095
    assert np.array_equal(img.pixels, px)


NO_SLOT_TAGS = dict(ImageLaterality=None, Laterality=None, ViewPosition=None, ViewCodeSequence=None,
                    SeriesDescription=None)


@pytest.mark.parametrize(
    "tags, slot",
    [
        ({**NO_SLOT_TAGS, "SeriesDescription": "L CC"}, ("L_CC", "le")),
        ({**NO_SLOT_TAGS, "SeriesDescription": "RMLO"}, ("R_MLO", "le")),
        ({**NO_SLOT_TAGS, "ProtocolName": "Right cranio-caudal"}, ("R_CC", "le")),
        ({**NO_SLOT_TAGS, "ImageType": ["DERIVED", "PRIMARY"], "SeriesDescription": "L MLO recombined"},
         ("L_MLO", "rc")),
        ({**NO_SLOT_TAGS, "ImageType": ["ORIGINAL", "PRIMARY"], "SeriesDescription": "CESM low energy R CC"},
         ("R_CC", "le")),
        ({"ViewPosition": None, "ImageLaterality": None}, ("L_CC", "le")),  # ViewCodeSequence + Laterality
        ({"ImageType": ["DERIVED", "PRIMARY", "", "SUBTRACTION"]}, ("L_CC", "rc")),
    ],
)
def test_slot_fallbacks(tmp_path, demo_small, tags, slot):
    write_mg_dicom(tmp_path / "IMG0001", demo_small[("L", "CC", "le")], side="L", view="CC", energy="le",
                   patient_id="P1", **tags)
    study = load_study(tmp_path)
    assert list(study.images) == [slot]


def test_no_energy_marker_is_low_energy_with_a_warning(tmp_path, demo_small):
    write_mg_dicom(tmp_path / "IMG1", demo_small[("L", "CC", "le")], side="L", view="CC", energy="le",
                   patient_id="P1", ImageType=["ORIGINAL", "PRIMARY"], SeriesDescription="L CC")
    study = load_study(tmp_path)
    assert list(study.images) == [("L_CC", "le")]
    assert len(study.warnings) == 1 and "shown as low energy" in study.warnings[0]


def test_missing_side_or_view_waits_unassigned_and_says_what_was_looked_at(tmp_path, demo_small):
    write_mg_dicom(tmp_path / "IMG1", demo_small[("L", "CC", "le")], side="L", view="CC", energy="le",
                   patient_id="P1", **NO_SLOT_TAGS)
    write_mg_dicom(tmp_path / "IMG2", demo_small[("L", "CC", "rc")], side="L", view="CC", energy="rc",
                   patient_id="P1", ViewPosition=None, ViewCodeSequence=None, SeriesDescription="L")
    study = load_study(tmp_path)  # opens: the reader places the images
    assert len(study) == 0
    first, second = sorted(study.unassigned, key=lambda u: u.source.name)
    assert (first.side, first.energy) == (None, "le") and (second.side, second.energy) == ("L", "rc")
    assert first.reason.startswith("no breast side in ImageLaterality, Laterality, FrameLaterality")
    assert second.reason.startswith("no view (CC or MLO) in ViewPosition, ViewCodeSequence")
    assert "PatientID or the file name" in first.reason and "PatientID or the file name" in second.reason


def test_high_energy_is_skipped_and_other_views_refused(tmp_path, demo_small):
    px = demo_small[("R", "CC", "le")]
    write_mg_dicom(tmp_path / "a_le.dcm", px, side="R", view="CC", energy="le", patient_id="P1")
    write_mg_dicom(tmp_path / "b_he.dcm", px, side="R", view="CC", energy="le", patient_id="P1",
                   ImageType=["ORIGINAL", "PRIMARY", "", "HIGH_ENERGY"])
    write_mg_dicom(tmp_path / "c_ml.dcm", px, side="R", view="CC", energy="rc", patient_id="P1",
                   ViewPosition="ML", ViewCodeSequence=None)
    study = load_study(tmp_path)
    assert list(study.images) == [("R_CC", "le")]
    assert any("b_he.dcm: skipped, ImageType 'HIGH_ENERGY' is a high-energy image" in w for w in study.warnings)
    assert any("c_ml.dcm: skipped, view ML is not one of CC / MLO" in w for w in study.warnings)


def test_modality_lut_applied(tmp_path, demo_small):
    px = demo_small[("L", "CC", "le")].astype(np.uint16) * 10
    write_mg_dicom(tmp_path / "a.dcm", px, side="L", view="CC", energy="le", patient_id="P1",
                   RescaleSlope="2", RescaleIntercept="100")
    img = load_study(tmp_path).get("L_CC", "le")
    assert np.array_equal(img.pixels, px.astype(np.int64) * 2 + 100)
    assert img.pixels.dtype == np.uint16


def test_first_of_several_windows_and_voi_lut_sequence(tmp_path, demo_small):
    px = demo_small[("L", "CC", "le")]
    write_mg_dicom(tmp_path / "w" / "a.dcm", px, side="L", view="CC", energy="le", patient_id="P1",
                   WindowCenter=["100", "120"], WindowWidth=["50", "80"])
    assert load_study(tmp_path / "w").get("L_CC", "le").window == (100.0, 50.0)
    lut = pydicom.Dataset()
    lut.LUTDescriptor = [200, 20, 8]
    lut.LUTData = bytes(range(200))
    write_mg_dicom(tmp_path / "v" / "a.dcm", px, side="L", view="CC", energy="le", patient_id="P1",
                   WindowCenter=None, WindowWidth=None, VOILUTSequence=pydicom.Sequence([lut]))
    assert load_study(tmp_path / "v").get("L_CC", "le").window == (120.0, 200.0)


def test_syntax_without_decoder_is_named(tmp_path, demo_small):
    write_mg_dicom(tmp_path / "ok.dcm", demo_small[("L", "CC", "le")], side="L", view="CC", energy="le",
                   patient_id="P1")
    bad = write_mg_dicom(tmp_path / "mpeg.dcm", demo_small[("L", "CC", "rc")], side="L", view="CC", energy="rc",
                         patient_id="P1", transfer_syntax=JPEG2000Lossless)
    ds = pydicom.dcmread(bad)
    ds.file_meta.TransferSyntaxUID = MPEG2MPML
    ds.save_as(bad)
    study = load_study(tmp_path)
    assert list(study.images) == [("L_CC", "le")]
    assert [w for w in study.warnings if "mpeg.dcm" in w] == [
        f"{bad}: skipped, compressed as {MPEG2MPML.name} ({MPEG2MPML}), which no installed decoder reads"]


def test_missing_plugin_is_named(tmp_path, demo_small, monkeypatch):
    write_mg_dicom(tmp_path / "ok.dcm", demo_small[("L", "CC", "le")], side="L", view="CC", energy="le",
                   patient_id="P1")
    write_mg_dicom(tmp_path / "j2k.dcm", demo_small[("L", "CC", "rc")], side="L", view="CC", energy="rc",
                   patient_id="P1", transfer_syntax=JPEG2000Lossless)

    class Unavailable:
        is_available = False

    monkeypatch.setattr(dicom_mod, "get_decoder", lambda uid: Unavailable())
    study = load_study(tmp_path)
    assert list(study.images) == [("L_CC", "le")]
    assert any("j2k.dcm: skipped, compressed as JPEG 2000" in w and "install pylibjpeg-openjpeg" in w
               for w in study.warnings)


def test_synthetic_files_mark_the_study(tmp_path, demo_small):
    write_mg_dicom(tmp_path / "a.dcm", demo_small[("L", "CC", "le")], side="L", view="CC", energy="le",
                   patient_id="PH", synthetic=True)
    study = load_study(tmp_path)
    assert study.synthetic and len(study) == 1


def test_jpeg_extended_12bit_decodes_with_libjpeg(tmp_path):
    """pydicom's own 12-bit JPEG (process 4) test image, retagged as a mammogram."""
    from pydicom.data import get_testdata_file

    ds = pydicom.dcmread(get_testdata_file("JPGExtended.dcm"))
    expected = ds.pixel_array
    ds.Modality = "MG"
    ds.SOPClassUID = ds.file_meta.MediaStorageSOPClassUID = "1.2.840.10008.5.1.4.1.1.1.2"
    ds.ImageLaterality, ds.ViewPosition = "R", "MLO"
    ds.ImageType = ["ORIGINAL", "PRIMARY", "", "LOW_ENERGY"]
    ds.save_as(tmp_path / "jpeg12.dcm")
    img = load_study(tmp_path).get("R_MLO", "le")
    assert img.bits_stored == 12 and img.pixels.dtype == np.uint16
    assert img.pixels.shape == expected.shape and np.array_equal(img.pixels, expected)


def test_headers_read_once_across_patients(tmp_path, demo_small, write_study, monkeypatch):
    write_study(tmp_path, {k: v for k, v in demo_small.items() if k[0] == "L"}, patient_id="A")
    write_study(tmp_path, {k: v for k, v in demo_small.items() if k[0] == "R"}, patient_id="B")
    calls = []
    real = dicom_mod.read_header
    monkeypatch.setattr(dicom_mod, "read_header", lambda p: calls.append(p) or real(p))
    assert [len(load_study(tmp_path, patient=p)) for p in list_patients(tmp_path)] == [4, 4]
    assert len(calls) == 8
    # An edited file is read again.
    f = sorted(tmp_path.iterdir())[0]
    write_mg_dicom(f, demo_small[("L", "CC", "le")][:100], side="L", view="CC", energy="le", patient_id="A")
    assert load_study(tmp_path, patient="A").get("L_CC", "le").shape == (100, 200)
    assert calls[-1] == f and len(calls) == 9


def test_monochrome1_with_rescale_inverts_in_modality_values(tmp_path, demo_small, make12):
    px = make12(demo_small[("L", "MLO", "le")])
    write_mg_dicom(tmp_path / "a.dcm", px, side="L", view="MLO", energy="le", patient_id="P1",
                   photometric="MONOCHROME1", RescaleSlope="2", RescaleIntercept="100")
    img = load_study(tmp_path).get("L_MLO", "le")
    assert np.array_equal(img.pixels, px.astype(np.int64) * 2 + 100)


def test_pixel_spacing_and_orientation_fallbacks(tmp_path, demo_small):
    write_mg_dicom(tmp_path / "a.dcm", demo_small[("R", "CC", "rc")], side="R", view="CC", energy="rc",
                   patient_id="P1", PixelSpacing=["0.07", "0.08"], PatientOrientation=None)
    img = load_study(tmp_path).get("R_CC", "rc")
    assert img.pixel_spacing_mm == (0.07, 0.08) and img.orientation is None
    write_mg_dicom(tmp_path / "a.dcm", demo_small[("R", "CC", "rc")], side="R", view="CC", energy="rc",
                   patient_id="P1")
    assert load_study(tmp_path).get("R_CC", "rc").pixel_spacing_mm is None


def test_patients_counted_from_mammograms_only(dicom_study, demo_small):
    folder, _ = dicom_study
    write_mg_dicom(folder / "ct_other.dcm", demo_small[("L", "CC", "le")], side="L", view="CC", energy="le",
                   patient_id="SOMEONE-ELSE", Modality="CT", SOPClassUID="1.2.840.10008.5.1.4.1.1.2")
    assert list_patients(folder) == ["P66"]
    study = load_study(folder)
    assert study.complete and any("ct_other.dcm: skipped, not a mammogram (Modality CT)" in w
                                  for w in study.warnings)


def test_calibrated_pixel_spacing_preferred_and_magnification_divided(tmp_path, demo_small):
    px = demo_small[("R", "CC", "rc")]
    write_mg_dicom(tmp_path / "a" / "a.dcm", px, side="R", view="CC", energy="rc", patient_id="P1",
                   pixel_spacing_mm=(0.1, 0.1), PixelSpacing=["0.085", "0.086"])
    assert load_study(tmp_path / "a").get("R_CC", "rc").pixel_spacing_mm == (0.085, 0.086)
    write_mg_dicom(tmp_path / "b" / "a.dcm", px, side="R", view="CC", energy="rc", patient_id="P1",
                   pixel_spacing_mm=(0.1, 0.1), EstimatedRadiographicMagnificationFactor="1.25")
    assert load_study(tmp_path / "b").get("R_CC", "rc").pixel_spacing_mm == pytest.approx((0.08, 0.08))
    write_mg_dicom(tmp_path / "c" / "a.dcm", px, side="R", view="CC", energy="rc", patient_id="P1",
                   pixel_spacing_mm=(0.1, 0.1))
    assert load_study(tmp_path / "c").get("R_CC", "rc").pixel_spacing_mm == (0.1, 0.1)


def test_sigmoid_voi_function_is_named_in_a_warning(tmp_path, demo_small):
    write_mg_dicom(tmp_path / "a.dcm", demo_small[("L", "CC", "le")], side="L", view="CC", energy="le",
                   patient_id="P1", WindowCenter="100", WindowWidth="50", VOILUTFunction="SIGMOID")
    study = load_study(tmp_path)
    assert study.get("L_CC", "le").window == (100.0, 50.0)
    assert any("SIGMOID" in w and "a.dcm" in w for w in study.warnings), study.warnings
