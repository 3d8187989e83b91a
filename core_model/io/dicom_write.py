"""Write one mammogram as a DICOM Digital Mammography (MG, For Presentation) file.

Used by the tests (DICOM files made from real CDD-CESM images), by the phantom
generator and by anyone who wants to hand the viewer a proper DICOM study. The
file carries what :mod:`core_model.io.dicom` reads back: ImageLaterality,
ViewPosition, ViewCodeSequence (SNOMED CT), ImageType with LOW_ENERGY /
RECOMBINED, PatientOrientation, ImagerPixelSpacing and a VOI window.
"""

from __future__ import annotations

import datetime as _dt
from pathlib import Path
from typing import Any

import numpy as np
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.sequence import Sequence
from pydicom.uid import (
    ExplicitVRLittleEndian,
    JPEG2000Lossless,
    JPEGLSLossless,
    PYDICOM_IMPLEMENTATION_UID,
    RLELossless,
    UID,
    generate_uid,
)

MG_FOR_PRESENTATION = UID("1.2.840.10008.5.1.4.1.1.1.2")

# SNOMED CT codes of the DICOM view code context group (CID 4014).
VIEW_CODES = {
    "CC": ("399162004", "cranio-caudal"),
    "MLO": ("399368009", "medio-lateral oblique"),
}
# Value 4 of ImageType names the CEM image kind (DICOM CP for contrast-enhanced MG).
IMAGE_TYPE = {
    "le": ["ORIGINAL", "PRIMARY", "", "LOW_ENERGY"],
    "rc": ["DERIVED", "PRIMARY", "", "RECOMBINED"],
}
ENERGY_DESCRIPTION = {"le": "low energy", "rc": "recombined"}
# Transfer syntaxes this writer can produce with the installed encoders.
WRITABLE_SYNTAXES = (ExplicitVRLittleEndian, JPEG2000Lossless, JPEGLSLossless, RLELossless)
SYNTHETIC_MARK = "SYNTHETIC"


def _column_direction(side: str, view: str) -> str:
    # Lateral edge at the top of the image, as mammograms are hung.
    if view == "CC":
        return "R" if side == "L" else "L"
    return "FR" if side == "L" else "FL"


def chest_wall_on_left(pixels: np.ndarray) -> bool:
    """True when the chest wall is on the image's left.

    The breast is widest at the chest wall and tapers to the nipple, so of the
    two outermost tenths of the columns holding tissue, the chest-wall one has
    the higher mean. (Resized or padded images need not touch the edge.)
    """
    profile = pixels.astype(np.float32, copy=False).mean(axis=0)
    tissue = np.flatnonzero(profile > 0.05 * float(profile.max()))
    if tissue.size == 0:
        return True
    a, b = int(tissue[0]), int(tissue[-1])
    k = max(1, (b - a + 1) // 10)
    return float(profile[a:a + k].mean()) >= float(profile[b - k + 1:b + 1].mean())


def patient_orientation(pixels: np.ndarray, side: str, view: str) -> list[str]:
    """DICOM PatientOrientation (row direction, column direction) for the pixels as given."""
    # Columns run from the chest wall to the nipple (anterior) when the breast hangs off the left edge.
    row = "A" if chest_wall_on_left(pixels) else "P"
    return [row, _column_direction(side, view)]


def _prepare_pixels(pixels: np.ndarray) -> tuple[np.ndarray, int]:
    px = np.asarray(pixels)
    if px.ndim != 2:
        raise ValueError(f"expected a 2-D greyscale image, got shape {px.shape}")
    if px.dtype == np.uint8:
        return np.ascontiguousarray(px), 8
    if px.dtype == np.bool_:
        return px.astype(np.uint8), 8
    if np.issubdtype(px.dtype, np.floating) or px.dtype != np.uint16:
        if np.issubdtype(px.dtype, np.floating) and not np.all(np.isfinite(px)):
            raise ValueError("pixels contain NaN or infinity")
        lo, hi = float(px.min()), float(px.max())
        if lo < 0 or hi > 65535:
            raise ValueError(f"pixel values {lo}..{hi} do not fit unsigned 16-bit")
        if np.issubdtype(px.dtype, np.floating) and not np.array_equal(px, np.round(px)):
            raise ValueError("pixels must be integers (scale floating-point images first)")
        px = px.astype(np.uint16)
    bits = 12 if int(px.max(initial=0)) <= 4095 else 16
    return np.ascontiguousarray(px), bits


def write_mg_dicom(
    path: str | Path,
    pixels: np.ndarray,
    *,
    side: str,
    view: str,
    energy: str,
    patient_id: str,
    study_uid: str | None = None,
    series_uid: str | None = None,
    pixel_spacing_mm: tuple[float, float] | float | None = None,
    photometric: str = "MONOCHROME2",
    window: tuple[float, float] | None = None,
    transfer_syntax: str | None = None,
    synthetic: bool = False,
    patient_name: str | None = None,
    **extra_tags: Any,
) -> Path:
    """Write ``pixels`` (uint8, or uint16/integers 0..65535) as one MG image and return the path.

    ``window`` is (center, width) in the values of ``pixels``. With
    ``photometric="MONOCHROME1"`` the stored values are inverted (and the window
    with them) so that a reader that inverts MONOCHROME1 gets ``pixels`` back.
    ``study_uid`` / ``series_uid`` default to UIDs derived from the patient id
    (and from side, view and energy for the series), so files written for one
    patient form one study. ``extra_tags`` are DICOM keywords set last; a value
    of None removes that tag (tests use this to write files that lack a tag).
    """
    side, view, energy = side.upper(), view.upper(), energy.lower()
    if side not in ("L", "R") or view not in VIEW_CODES or energy not in IMAGE_TYPE:
        raise ValueError(f"not a CEM mammogram slot: side={side!r} view={view!r} energy={energy!r}")
    if photometric not in ("MONOCHROME1", "MONOCHROME2"):
        raise ValueError(f"photometric must be MONOCHROME1 or MONOCHROME2, not {photometric!r}")
    syntax = UID(transfer_syntax) if transfer_syntax else ExplicitVRLittleEndian
    if syntax not in WRITABLE_SYNTAXES:
        names = ", ".join(u.name for u in WRITABLE_SYNTAXES)
        raise ValueError(f"cannot encode {syntax.name}; this writer supports {names}")
    path = Path(path)
    px, bits_stored = _prepare_pixels(pixels)
    max_value = (1 << bits_stored) - 1
    stored = (max_value - px).astype(px.dtype) if photometric == "MONOCHROME1" else px

    now = _dt.datetime.now(_dt.timezone.utc)
    study_uid = study_uid or generate_uid(entropy_srcs=["nafv-study", patient_id])
    series_uid = series_uid or generate_uid(entropy_srcs=["nafv-series", study_uid, side, view, energy])
    sop_uid = generate_uid()

    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = MG_FOR_PRESENTATION
    meta.MediaStorageSOPInstanceUID = sop_uid
    meta.TransferSyntaxUID = ExplicitVRLittleEndian
    meta.ImplementationClassUID = PYDICOM_IMPLEMENTATION_UID

    ds = Dataset()
    ds.file_meta = meta
    ds.SpecificCharacterSet = "ISO_IR 192"
    ds.SOPClassUID = MG_FOR_PRESENTATION
    ds.SOPInstanceUID = sop_uid
    ds.StudyInstanceUID = study_uid
    ds.SeriesInstanceUID = series_uid
    ds.Modality = "MG"
    ds.PresentationIntentType = "FOR PRESENTATION"
    ds.ImageType = IMAGE_TYPE[energy]
    ds.PatientID = patient_id
    ds.PatientName = patient_name if patient_name is not None else ("Synthetic^Phantom" if synthetic else patient_id)
    ds.PatientBirthDate = ""
    ds.PatientSex = "F"
    ds.StudyDate = ds.SeriesDate = ds.ContentDate = now.strftime("%Y%m%d")
    ds.StudyTime = ds.SeriesTime = ds.ContentTime = now.strftime("%H%M%S")
    ds.StudyID = "1"
    ds.AccessionNumber = ""
    ds.ReferringPhysicianName = ""
    ds.Manufacturer = "NaFV Viewer"
    ds.SeriesNumber = 1 + list(VIEW_CODES).index(view) * 2 + (side == "L") * 4 + (energy == "rc") * 8
    ds.InstanceNumber = 1
    description = f"{side} {view} {ENERGY_DESCRIPTION[energy]}"
    ds.SeriesDescription = f"{SYNTHETIC_MARK} {description}" if synthetic else description
    if synthetic:
        ds.ImageComments = f"{SYNTHETIC_MARK} image (phantom), not patient data"
    ds.BurnedInAnnotation = "NO"
    ds.Laterality = side
    ds.ImageLaterality = side
    ds.ViewPosition = view
    code = Dataset()
    code.CodeValue, code.CodeMeaning = VIEW_CODES[view]
    code.CodingSchemeDesignator = "SCT"
    code.ViewModifierCodeSequence = Sequence()
    ds.ViewCodeSequence = Sequence([code])
    ds.PatientOrientation = patient_orientation(px, side, view)
    if pixel_spacing_mm is not None:
        sp = (pixel_spacing_mm, pixel_spacing_mm) if np.isscalar(pixel_spacing_mm) else pixel_spacing_mm
        ds.ImagerPixelSpacing = [f"{float(s):.6g}" for s in sp]

    if window is None:
        lo, hi = float(px.min()), float(px.max())
        window = ((lo + hi) / 2.0, max(hi - lo, 1.0))
    center, width = float(window[0]), float(window[1])
    if photometric == "MONOCHROME1":
        center = max_value - center
    ds.WindowCenter = f"{center:.6g}"
    ds.WindowWidth = f"{width:.6g}"
    ds.VOILUTFunction = "LINEAR"
    ds.RescaleIntercept = "0"
    ds.RescaleSlope = "1"
    ds.RescaleType = "US"

    ds.SamplesPerPixel = 1
    ds.PhotometricInterpretation = photometric
    ds.Rows, ds.Columns = px.shape
    ds.BitsAllocated = 8 if px.dtype == np.uint8 else 16
    ds.BitsStored = bits_stored
    ds.HighBit = bits_stored - 1
    ds.PixelRepresentation = 0
    ds.PixelData = stored.tobytes()

    for keyword, value in extra_tags.items():
        if value is None:
            if keyword in ds:
                delattr(ds, keyword)
        else:
            setattr(ds, keyword, value)

    if syntax != ExplicitVRLittleEndian:
        ds.compress(syntax, stored, generate_instance_uid=False)
    path.parent.mkdir(parents=True, exist_ok=True)
    ds.save_as(path, enforce_file_format=True)
    return path
