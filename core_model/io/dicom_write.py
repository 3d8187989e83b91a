"""Write one mammogram as a DICOM Digital Mammography (MG, For Presentation) file.

Used by the tests (DICOM files made from real CDD-CESM images), by the phantom
generator and by anyone who wants to hand the viewer a proper DICOM study. The
file carries what :mod:`core_model.io.dicom` reads back: ImageLaterality,
ViewPosition, ViewCodeSequence (SNOMED CT), ImageType with LOW_ENERGY /
RECOMBINED, PatientOrientation, ImagerPixelSpacing and a VOI window.

Transfer syntaxes written: explicit VR little endian (default), and losslessly
JPEG 2000 (pylibjpeg-openjpeg), JPEG-LS (pyjpegls), RLE (pydicom) and JPEG
lossless SV1 (the small numpy encoder below; about 10 s for a 4096 x 3328
image, so meant for tests and small files).
"""

from __future__ import annotations

import datetime as _dt
from pathlib import Path
from typing import Any

import numpy as np
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.encaps import encapsulate
from pydicom.sequence import Sequence
from pydicom.uid import (
    ExplicitVRLittleEndian,
    JPEG2000Lossless,
    JPEGLSLossless,
    JPEGLosslessSV1,
    PYDICOM_IMPLEMENTATION_UID,
    RLELossless,
    UID,
    generate_uid,
)

from core_model.imaging.orientation import chest_wall_side

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
WRITABLE_SYNTAXES = (ExplicitVRLittleEndian, JPEG2000Lossless, JPEGLSLossless, RLELossless, JPEGLosslessSV1)
SYNTHETIC_MARK = "SYNTHETIC"


def _column_direction(side: str, view: str) -> str:
    # Lateral edge at the top of the image, as mammograms are hung.
    if view == "CC":
        return "R" if side == "L" else "L"
    return "FR" if side == "L" else "FL"


def patient_orientation(pixels: np.ndarray, side: str, view: str, chest_wall: str | None = None) -> list[str]:
    """DICOM PatientOrientation (row direction, column direction) for the pixels as given.

    ``chest_wall`` ("left"/"right") is the caller's knowledge of the chest-wall
    edge; when None it is detected from the breast outline.
    """
    if chest_wall is None:
        chest_wall = chest_wall_side(pixels)
    elif chest_wall not in ("left", "right"):
        raise ValueError(f"chest_wall must be 'left' or 'right', not {chest_wall!r}")
    # Columns run from the chest wall to the nipple (anterior) when the breast hangs off the left edge.
    row = "A" if chest_wall == "left" else "P"
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
    chest_wall: str | None = None,
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
    ``chest_wall`` ("left"/"right") sets PatientOrientation from the caller's
    knowledge (e.g. one decision for both energies of a view, see
    :func:`core_model.imaging.orientation.chest_wall_side_pair`); None detects it.
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
    ds.PatientOrientation = patient_orientation(px, side, view, chest_wall)
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

    if syntax == JPEGLosslessSV1:
        # pydicom has no encoder for the syntax most mammography vendors ship; ours is small.
        ds.PixelData = encapsulate([encode_jpeg_lossless_sv1(stored, bits_stored)])
        ds["PixelData"].VR = "OB"
        ds.file_meta.TransferSyntaxUID = JPEGLosslessSV1
    elif syntax != ExplicitVRLittleEndian:
        ds.compress(syntax, stored, generate_instance_uid=False)
    path.parent.mkdir(parents=True, exist_ok=True)
    ds.save_as(path, enforce_file_format=True)
    return path


# ---------------------------------------------------------------- JPEG lossless (ITU-T T.81 process 14, SV1)
# One Huffman table holding the 17 difference categories as 5-bit codes: not the
# smallest file, but valid, short to write and decoded by every JPEG-lossless reader.
_HUFF_LENGTH = 5


def _marker(code: int, payload: bytes) -> bytes:
    return bytes([0xFF, code]) + (len(payload) + 2).to_bytes(2, "big") + payload


def encode_jpeg_lossless_sv1(pixels: np.ndarray, precision: int) -> bytes:
    """One greyscale frame as a JPEG lossless bit stream, first-order prediction (selection value 1)."""
    px = np.asarray(pixels).astype(np.int64)
    rows, cols = px.shape
    pred = np.empty_like(px)
    pred[:, 1:] = px[:, :-1]  # Ra: the sample to the left
    pred[1:, 0] = px[:-1, 0]  # first column: the sample above
    pred[0, 0] = 1 << (precision - 1)
    diff = (px - pred) % 65536
    diff = np.where(diff > 32768, diff - 65536, diff).ravel()  # -32767 .. 32768
    mag = np.abs(diff)
    ssss = np.zeros(mag.shape, np.int64)
    nz = mag > 0
    ssss[nz] = np.floor(np.log2(mag[nz])).astype(np.int64) + 1
    extra_bits = np.where(ssss == 16, 0, ssss)  # category 16 (32768) carries no extra bits
    extra = np.where(diff < 0, diff + (1 << extra_bits) - 1, diff) & ((1 << extra_bits) - 1)
    value = (ssss << extra_bits) | extra  # Huffman code of category k is k itself (5 bits)
    length = _HUFF_LENGTH + extra_bits
    # Expand every (value, length) into its bits, most significant first, and pack.
    # In chunks, so a full-field mammogram does not need a (pixels x 21) matrix at once.
    shifts = np.arange(_HUFF_LENGTH + 15, -1, -1, dtype=np.int32)
    pieces = []
    for start in range(0, value.size, 1 << 18):
        v = value[start:start + (1 << 18)].astype(np.int32)
        n = length[start:start + (1 << 18)].astype(np.int32)
        bits = ((v[:, None] >> shifts[None, :]) & 1).astype(np.uint8)
        pieces.append(bits[shifts[None, :] < n[:, None]])
    stream = np.concatenate(pieces) if pieces else np.zeros(0, np.uint8)
    pad = (-stream.size) % 8
    stream = np.concatenate([stream, np.ones(pad, np.uint8)])  # pad with 1-bits (T.81 F.1.2.3)
    data = np.packbits(stream)
    ff = np.flatnonzero(data == 0xFF)
    data = np.insert(data, ff + 1, 0)  # byte stuffing after every 0xFF
    counts = bytes(16)
    counts = counts[: _HUFF_LENGTH - 1] + bytes([17]) + counts[_HUFF_LENGTH:]
    sof = bytes([precision]) + rows.to_bytes(2, "big") + cols.to_bytes(2, "big") + bytes([1, 1, 0x11, 0])
    dht = bytes([0x00]) + counts + bytes(range(17))
    sos = bytes([1, 1, 0x00, 1, 0, 0])  # one component, table 0, predictor 1, Se 0, Ah/Al 0
    return (b"\xff\xd8" + _marker(0xC3, sof) + _marker(0xC4, dht) + _marker(0xDA, sos)
            + data.tobytes() + b"\xff\xd9")
