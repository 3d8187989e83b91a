"""write_mg_dicom: the tags a mammography reader relies on, stored values, compression."""

from __future__ import annotations

import numpy as np
import pydicom
import pytest
from pydicom.uid import JPEG2000Lossless, JPEGBaseline8Bit, JPEGLosslessSV1, JPEGLSLossless

from core_model.io.dicom_write import MG_FOR_PRESENTATION, write_mg_dicom


@pytest.mark.parametrize(
    "side, view, energy, code, image_type, orientation_col",
    [
        ("L", "CC", "le", "399162004", "LOW_ENERGY", "R"),
        ("R", "CC", "rc", "399162004", "RECOMBINED", "L"),
        ("L", "MLO", "rc", "399368009", "RECOMBINED", "FR"),
        ("R", "MLO", "le", "399368009", "LOW_ENERGY", "FL"),
    ],
)
def test_mg_tags(tmp_path, demo_small, side, view, energy, code, image_type, orientation_col):
    px = demo_small[(side, view, energy)]
    path = write_mg_dicom(tmp_path / "a.dcm", px, side=side, view=view, energy=energy, patient_id="P66",
                          pixel_spacing_mm=0.085)
    ds = pydicom.dcmread(path)
    assert ds.file_meta.MediaStorageSOPClassUID == MG_FOR_PRESENTATION == ds.SOPClassUID
    assert ds.Modality == "MG" and ds.PresentationIntentType == "FOR PRESENTATION"
    assert ds.ImageLaterality == side and ds.ViewPosition == view
    assert ds.ViewCodeSequence[0].CodeValue == code and ds.ViewCodeSequence[0].CodingSchemeDesignator == "SCT"
    assert ds.ImageType[3] == image_type
    assert ds.PatientID == "P66"
    assert [float(v) for v in ds.ImagerPixelSpacing] == [0.085, 0.085]
    assert ds.BitsAllocated == 8 and ds.BitsStored == 8 and ds.HighBit == 7
    assert (ds.Rows, ds.Columns) == px.shape
    assert np.array_equal(ds.pixel_array, px)
    assert ds.PatientOrientation[1] == orientation_col
    # Demo images: right breasts hang off the right edge (columns run towards the chest: P),
    # left breasts off the left edge (A).
    assert ds.PatientOrientation[0] == ("A" if side == "L" else "P")
    assert "SYNTHETIC" not in ds.SeriesDescription and "ImageComments" not in ds


def test_one_patient_shares_study_uid_and_each_slot_has_its_series(tmp_path, demo_small):
    a = pydicom.dcmread(write_mg_dicom(tmp_path / "a", demo_small[("L", "CC", "le")], side="L", view="CC",
                                       energy="le", patient_id="X1"))
    b = pydicom.dcmread(write_mg_dicom(tmp_path / "b", demo_small[("L", "CC", "rc")], side="L", view="CC",
                                       energy="rc", patient_id="X1"))
    c = pydicom.dcmread(write_mg_dicom(tmp_path / "c", demo_small[("L", "CC", "rc")], side="L", view="CC",
                                       energy="rc", patient_id="X2"))
    assert a.StudyInstanceUID == b.StudyInstanceUID != c.StudyInstanceUID
    assert a.SeriesInstanceUID != b.SeriesInstanceUID
    assert len({a.SOPInstanceUID, b.SOPInstanceUID, c.SOPInstanceUID}) == 3


@pytest.mark.parametrize("scale, bits", [(16, 12), (257, 16)])
def test_bits_stored_follows_the_data(tmp_path, demo_small, scale, bits):
    px = demo_small[("R", "CC", "le")].astype(np.uint16) * scale
    ds = pydicom.dcmread(write_mg_dicom(tmp_path / "a.dcm", px, side="R", view="CC", energy="le", patient_id="P"))
    assert (ds.BitsAllocated, ds.BitsStored, ds.HighBit) == (16, bits, bits - 1)
    assert np.array_equal(ds.pixel_array, px)
    # Default window spans the data.
    assert float(ds.WindowWidth) == pytest.approx(float(px.max()) - float(px.min()))


def test_monochrome1_stores_inverted_values_and_window(tmp_path, demo_small):
    px = demo_small[("L", "MLO", "le")].astype(np.uint16) * 16
    ds = pydicom.dcmread(write_mg_dicom(tmp_path / "a.dcm", px, side="L", view="MLO", energy="le", patient_id="P",
                                        photometric="MONOCHROME1", window=(1000, 800)))
    assert ds.PhotometricInterpretation == "MONOCHROME1" and ds.BitsStored == 12
    assert np.array_equal(ds.pixel_array, 4095 - px)
    assert (float(ds.WindowCenter), float(ds.WindowWidth)) == (3095.0, 800.0)


@pytest.mark.parametrize("syntax", [JPEG2000Lossless, JPEGLSLossless, JPEGLosslessSV1])
def test_lossless_compression(tmp_path, demo_small, syntax):
    px = demo_small[("R", "MLO", "rc")].astype(np.uint16) * 257  # 16-bit, values up to 65535
    path = write_mg_dicom(tmp_path / "a.dcm", px, side="R", view="MLO", energy="rc", patient_id="P",
                          transfer_syntax=syntax)
    ds = pydicom.dcmread(path)
    assert ds.file_meta.TransferSyntaxUID == syntax
    assert len(ds.PixelData) < px.nbytes  # really compressed
    assert np.array_equal(ds.pixel_array, px)


def test_synthetic_mark_and_extra_tags(tmp_path, demo_small):
    path = write_mg_dicom(tmp_path / "a.dcm", demo_small[("R", "CC", "rc")], side="R", view="CC", energy="rc",
                          patient_id="PH1", synthetic=True, StudyDescription="phantom", ViewPosition=None)
    ds = pydicom.dcmread(path)
    assert ds.SeriesDescription.startswith("SYNTHETIC") and "SYNTHETIC" in ds.ImageComments
    assert str(ds.PatientName) == "Synthetic^Phantom"
    assert ds.StudyDescription == "phantom"
    assert "ViewPosition" not in ds


@pytest.mark.parametrize(
    "kwargs, message",
    [
        (dict(side="B", view="CC", energy="le"), "not a CEM mammogram slot"),
        (dict(side="L", view="ML", energy="le"), "not a CEM mammogram slot"),
        (dict(side="L", view="CC", energy="he"), "not a CEM mammogram slot"),
        (dict(side="L", view="CC", energy="le", photometric="RGB"), "MONOCHROME1 or MONOCHROME2"),
        (dict(side="L", view="CC", energy="le", transfer_syntax=JPEGBaseline8Bit), "cannot encode"),
    ],
)
def test_bad_arguments(tmp_path, demo_small, kwargs, message):
    with pytest.raises(ValueError, match=message):
        write_mg_dicom(tmp_path / "a.dcm", demo_small[("L", "CC", "le")], patient_id="P", **kwargs)


def test_rejects_values_that_do_not_fit(tmp_path):
    with pytest.raises(ValueError, match="unsigned 16-bit"):
        write_mg_dicom(tmp_path / "a.dcm", np.full((8, 8), -1, np.int32), side="L", view="CC", energy="le",
                       patient_id="P")


def test_jpeg_lossless_extreme_differences(tmp_path):
    """Jumps of 32768 (difference category 16, no extra bits) and full-range noise survive."""
    rng = np.random.default_rng(7)
    px = rng.integers(0, 65536, (40, 30)).astype(np.uint16)
    px[::2, ::2] = 0
    px[1::2, 1::2] = 32768
    px[0, :4] = [0, 32768, 0, 65535]
    path = write_mg_dicom(tmp_path / "a.dcm", px, side="R", view="CC", energy="le", patient_id="P",
                          transfer_syntax=JPEGLosslessSV1)
    assert np.array_equal(pydicom.dcmread(path).pixel_array, px)
