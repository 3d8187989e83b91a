"""Read DICOM mammograms (MG, For Presentation) into study slots.

Where each slot comes from, in order:

- side: ImageLaterality, Laterality, FrameLaterality, then the words of
  SeriesDescription / ProtocolName / ImageComments / PatientID (CBIS-DDSM
  names it ``Mass-Test_P_00173_LEFT_CC``) / the file name;
- view: ViewPosition, ViewCodeSequence (SNOMED CT), then the same words.
  An image whose side or view is still unknown is kept as a
  :class:`~core_model.domain.study.UnassignedImage` for the reader to place;
- energy: the rules in :data:`ENERGY_RULES` (ImageType values first, then
  descriptions). Vendors name the CEM images differently; add a row there.

Pixels go through the Modality LUT (rescale) only; the VOI window is kept as
:attr:`StudyImage.window` instead of being burned in, so 12/16-bit data stay
as stored. Only a linear window is kept: a VOI LUT Sequence is approximated
by its input range and VOILUTFunction SIGMOID is shown linear, each with a
warning. MONOCHROME1 is inverted (and its window with it). Pixel spacing
prefers calibrated PixelSpacing, else ImagerPixelSpacing divided by
EstimatedRadiographicMagnificationFactor. A malformed header value costs at
most its own file (or only the window / spacing it carries), never the study. Header sizes are
checked against :mod:`core_model.io.limits` before pixel data is decoded, and
the file itself before its header is parsed: its size against what a
mammogram can need, and at most a capped number of header bytes read, so a
damaged or zero-padded file of gigabytes costs a message, not minutes.

Declared decoders (pyproject): JPEG 2000 via pylibjpeg-openjpeg, JPEG-LS via
pyjpegls, JPEG lossless / baseline via pylibjpeg-libjpeg; RLE and deflate are
built into pydicom.
"""

from __future__ import annotations

import hashlib
import io
import re
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pydicom
from pydicom.dataset import Dataset
from pydicom.encaps import generate_frames
from pydicom.errors import InvalidDicomError
from pydicom.filereader import read_partial
from pydicom.pixels import apply_modality_lut, get_decoder

from core_model.domain.errors import StudyLoadError, os_error_words
from core_model.domain.jobs import CancelToken
from core_model.domain.notice import SYNTHETIC_MARK_RE
from core_model.domain.study import SIDE_NAMES, StudyImage, UnassignedImage
from core_model.imaging.orientation import laterality_doubts
from core_model.io.images import nonfinite_problem
from core_model.io.limits import (
    DEFERRED_VALUE_BYTES,
    MAX_DICOM_FILE_BYTES,
    MAX_HEADER_BYTES,
    SPARE_FILE_BYTES,
    size_problem,
    size_words,
)
from core_model.io.naming import patient_without_view, slot_hints
from core_model.io.pyramid import (
    J2K_SYNTAXES,
    ImagePyramid,
    LevelledStudyImage,
    decode_j2k,
    j2k_info,
    j2k_native_levels,
    pixels_for,
)

SKIP = "skip"  # an energy rule result: an image kind the viewer does not show


@dataclass(frozen=True)
class EnergyRule:
    """Where ``pattern`` matches one of ``keywords``' values, the image is ``energy`` (or SKIP)."""

    keywords: tuple[str, ...]
    pattern: re.Pattern
    energy: str
    why: str = ""


_DESCRIPTIONS = ("SeriesDescription", "ProtocolName", "AcquisitionDeviceProcessingDescription", "ImageComments")
_IMAGE_TYPE = ("ImageType",)


def _rx(p: str) -> re.Pattern:
    return re.compile(p, re.IGNORECASE)


# The one table of vendor conventions for low energy (le) vs recombined (rc).
# First match wins; ImageType rules come before free-text rules.
ENERGY_RULES: tuple[EnergyRule, ...] = (
    EnergyRule(_IMAGE_TYPE, _rx(r"^HIGH[_ ]?ENERGY$"), SKIP,
               "is a high-energy image; the viewer shows low-energy and recombined images"),
    EnergyRule(_IMAGE_TYPE, _rx(r"^LOW[_ ]?ENERGY$"), "le"),
    EnergyRule(_IMAGE_TYPE, _rx(r"^(RECOMBINED|SUBTRACTION|SUBTRACTED|DUAL_ENERGY_SUBTRACTION)$"), "rc"),
    EnergyRule(_DESCRIPTIONS, _rx(r"high[\s_-]*energy|\bHE\b"), SKIP,
               "is a high-energy image; the viewer shows low-energy and recombined images"),
    EnergyRule(_DESCRIPTIONS, _rx(r"low[\s_-]*energy|\bLE\b|\bDM\b"), "le"),
    EnergyRule(_DESCRIPTIONS, _rx(r"recombin|subtract|\bRC\b|\bSUB\b|\bCM\b|\biodine\b"), "rc"),
)

MG_SOP_CLASSES = {
    "1.2.840.10008.5.1.4.1.1.1.2",  # Digital Mammography X-Ray Image Storage - For Presentation
    "1.2.840.10008.5.1.4.1.1.1.2.1",  # ... - For Processing
}
VIEW_POSITIONS = {"CC": "CC", "MLO": "MLO"}
VIEW_CODE_VALUES = {"399162004": "CC", "399368009": "MLO"}
# Decoder plugin to install per transfer-syntax family (for the error message).
_PLUGIN_HINT = (
    ("JPEG 2000", "pylibjpeg-openjpeg"),
    ("JPEG-LS", "pyjpegls"),
    ("JPEG", "pylibjpeg-libjpeg"),
)


_PREAMBLE = 132  # 128 bytes, then 'DICM'
_HEADER_PROBE = 4096  # bytes looked at where the header should start


def _head(path: Path) -> bytes:
    with open(path, "rb") as fh:
        return fh.read(_PREAMBLE + _HEADER_PROBE)


def _preamble(head: bytes) -> bool:
    return len(head) >= _PREAMBLE and head[128:_PREAMBLE] == b"DICM"


def has_preamble(path: Path) -> bool:
    """True when the file has the DICOM preamble ('DICM' at byte 128); OSError when it cannot be read."""
    return _preamble(_head(path))


def looks_like_dicom(path: Path) -> bool:
    """:func:`has_preamble`, False for a file that cannot be read."""
    try:
        return has_preamble(path)
    except OSError:
        return False


def unreadable(path: Path, err: OSError) -> StudyLoadError:
    """The message for a file the system would not let us read (the file itself may be fine)."""
    return StudyLoadError(f"skipped, the file cannot be read ({os_error_words(err)})", path)


class _CappedReader(io.BufferedReader):
    """A file whose reads stop after ``budget`` bytes; seeks cost nothing.

    pydicom parses a header element by element, about 0.3 s per MB, and a file
    of zeros after its preamble parses as endless empty elements: a padded 2 GB
    file would hold the loader for many minutes. With values above the defer
    size skipped by seeking, only the small elements count against the budget;
    ``exhausted`` says the budget, not the file, ended the read.
    """

    def __init__(self, path: Path, budget: int):
        super().__init__(io.FileIO(str(path), "rb"))
        self.left = budget
        self.exhausted = False

    def read(self, size: int | None = -1) -> bytes:
        if size is None or size < 0:  # "the rest of the file": the budget ends it if the file is longer
            data = super().read(self.left + 1)
            self.exhausted = self.exhausted or len(data) > self.left
            data = data[: self.left]
        else:
            if size > self.left:
                self.exhausted = True
            data = super().read(min(size, self.left))
        self.left -= len(data)
        return data


def _file_size_problem(ds: Dataset, size: int, header_end: int) -> str | None:
    """Why a file is far bigger than the image its header describes (damaged or padded), else None."""
    try:
        rows, cols = int(ds.Rows), int(ds.Columns)
        frames = int(ds.get("NumberOfFrames", 1) or 1)
        samples = int(ds.get("SamplesPerPixel", 1) or 1)
        bits = int(ds.get("BitsAllocated", 16) or 16)
    except (AttributeError, ValueError, TypeError, KeyError):
        return None  # classify names what is missing or malformed
    if min(rows, cols, frames, samples, bits) <= 0:
        return None
    needed = rows * cols * max(frames, 1) * max(samples, 1) * ((bits + 7) // 8)
    # Compressed pixel data are smaller than raw ones; allow twice raw plus trailing items.
    if size <= header_end + 2 * needed + SPARE_FILE_BYTES:
        return None
    image = f"{rows} x {cols}" + (f" x {frames} frames" if frames > 1 else "")
    return (f"the file is {size_words(size)} but its header describes a {image} image of about "
            f"{size_words(needed)}; not read (a damaged or padded file)")


def read_header(path: Path) -> Dataset:
    """The file's data set without pixel data; StudyLoadError if it is not readable DICOM.

    Checks the file size before parsing and reads at most
    :data:`~core_model.io.limits.MAX_HEADER_BYTES` of header (larger values are
    skipped unread), so a damaged file of any size answers within a second.
    """
    try:
        size = path.stat().st_size
    except OSError as err:
        raise unreadable(path, err) from err
    if size > MAX_DICOM_FILE_BYTES:
        raise StudyLoadError(
            f"skipped, the file is {size_words(size)}, more than any 2-D mammogram needs (at most "
            f"{size_words(MAX_DICOM_FILE_BYTES)}); not read (a damaged or padded file, or a tomosynthesis volume?)",
            path)
    if size == 0:
        raise StudyLoadError("skipped, the file is empty", path)
    try:
        head = _head(path)
        force = not _preamble(head)
        start = head[:_HEADER_PROBE] if force else head[_PREAMBLE:]
        if not start.strip(b"\0"):
            # Zeros parse as endless empty elements; no header begins that way.
            raise StudyLoadError("skipped, not a readable DICOM file (only zeros where the header should be: "
                                 "a damaged or padded file)", path)
        with _CappedReader(path, MAX_HEADER_BYTES) as fh:
            try:
                ds = pydicom.dcmread(fh, defer_size=DEFERRED_VALUE_BYTES, stop_before_pixels=True, force=force)
            except (InvalidDicomError, EOFError, ValueError, KeyError, TypeError, AttributeError, OSError):
                if not fh.exhausted:
                    raise
            if fh.exhausted:
                raise StudyLoadError(
                    f"skipped, not a readable DICOM file (its header runs past {size_words(MAX_HEADER_BYTES)} "
                    "without reaching the image: a damaged or padded file)", path)
            header_end = fh.tell()
    except StudyLoadError:
        raise
    except OSError as err:
        if err.errno is not None:  # the system refused the read: name that, not damage
            raise unreadable(path, err) from err
        raise StudyLoadError(f"skipped, not a readable DICOM file (damaged or truncated: {err})", path) from err
    except (InvalidDicomError, EOFError, ValueError, KeyError, TypeError, AttributeError) as err:
        raise StudyLoadError(f"skipped, not a readable DICOM file (damaged or truncated: {err})", path) from err
    # A forced read of arbitrary bytes "succeeds" with a near-empty data set.
    if not any(k in ds for k in ("SOPClassUID", "Modality", "Rows", "PatientID", "StudyInstanceUID")):
        raise StudyLoadError("skipped, not a readable DICOM file (no DICOM header found)", path)
    problem = _file_size_problem(ds, size, header_end)
    if problem:
        raise StudyLoadError(f"skipped, {problem}", path)
    return ds


def patient_of(ds: Dataset) -> str:
    # PatientID has one value by the standard, but files with several exist: show
    # them as DICOM writes them (A\B), never as a Python list.
    return "\\".join(_text(ds, "PatientID"))


def _text(ds: Dataset, keyword: str) -> list[str]:
    value = ds.get(keyword)
    if value is None or value == "":
        return []
    if isinstance(value, (list, tuple, pydicom.multival.MultiValue)):
        return [str(v).strip() for v in value if str(v).strip()]
    return [str(value).strip()]


def _frame_laterality(ds: Dataset) -> str:
    for fg in ds.get("SharedFunctionalGroupsSequence", []) or []:
        for fa in fg.get("FrameAnatomySequence", []) or []:
            if fa.get("FrameLaterality"):
                return str(fa.FrameLaterality)
    return ""


def _free_text(ds: Dataset, path: Path) -> list[tuple[str, str]]:
    texts = [(kw, t) for kw in _DESCRIPTIONS + ("PatientID",) for t in _text(ds, kw)]
    texts.append(("file name", path.stem))
    return texts


def _side(ds: Dataset, path: Path) -> tuple[str | None, str]:
    """(side or None, what said it): the tag's keyword, or the free text and where it was found."""
    for keyword, value in (
        ("ImageLaterality", ds.get("ImageLaterality", "")),
        ("Laterality", ds.get("Laterality", "")),
        ("FrameLaterality", _frame_laterality(ds)),
    ):
        value = str(value or "").strip().upper()
        if value in ("L", "R"):
            return value, keyword
        if value:
            raise StudyLoadError(f"skipped, {keyword} is {value!r}; a mammogram slot needs L or R", path)
    for keyword, text in _free_text(ds, path):
        sides = slot_hints(text)[0]
        if len(sides) == 1:
            return sides.pop(), ("the file name" if keyword == "file name" else f"{keyword} {text!r}")
    return None, ("no breast side in ImageLaterality, Laterality, FrameLaterality, SeriesDescription, "
                  "ProtocolName, ImageComments, PatientID or the file name")


_NO_VIEW = ("no view (CC or MLO) in ViewPosition, ViewCodeSequence, SeriesDescription, ProtocolName, "
            "ImageComments, PatientID or the file name")


def _view(ds: Dataset, path: Path) -> str | None:
    vp = str(ds.get("ViewPosition", "") or "").strip().upper()
    if vp in VIEW_POSITIONS:
        return VIEW_POSITIONS[vp]
    for code in ds.get("ViewCodeSequence", []) or []:
        value = str(code.get("CodeValue", "")).strip()
        if value in VIEW_CODE_VALUES:
            return VIEW_CODE_VALUES[value]
        views = slot_hints(str(code.get("CodeMeaning", "")))[1]
        if len(views) == 1:
            return views.pop()
    if vp:
        raise StudyLoadError(f"skipped, view {vp} is not one of CC / MLO", path)
    for _, text in _free_text(ds, path):
        views = slot_hints(text)[1]
        if len(views) == 1:
            return views.pop()
    return None


def _energy(ds: Dataset, path: Path) -> tuple[str, str | None]:
    """(energy, warning or None); StudyLoadError for kinds that are skipped."""
    for rule in ENERGY_RULES:
        for keyword in rule.keywords:
            for value in _text(ds, keyword):
                if rule.pattern.search(value):
                    if rule.energy == SKIP:
                        raise StudyLoadError(f"skipped, {keyword} {value!r} {rule.why}", path)
                    return rule.energy, None
    # A mammogram with no CEM marker looks like a low-energy image (a standard FFDM).
    return "le", (f"{path}: no low-energy / recombined marker in ImageType or descriptions; "
                  "shown as low energy")


@dataclass
class DicomSlot:
    path: Path
    header: Dataset
    side: str | None  # None (or view None): the reader places the image, see UnassignedImage
    view: str | None
    energy: str
    warning: str | None = None
    side_source: str = "ImageLaterality"  # what gave the side, for messages that question it

    @property
    def placed(self) -> bool:
        return self.side is not None and self.view is not None

    @property
    def slot(self) -> tuple[str, str]:
        return f"{self.side}_{self.view}", self.energy

    @property
    def uid(self) -> str:
        return str(self.header.get("SOPInstanceUID", "") or "").strip() or self.path.name

    @property
    def unplaced_reason(self) -> str:
        return self.side_source if self.side is None else _NO_VIEW


def classify(path: Path, ds: Dataset) -> DicomSlot:
    """The study slot of one DICOM header, or StudyLoadError saying why it is skipped."""
    modality = str(ds.get("Modality", "") or "").strip().upper()
    sop = str(ds.get("SOPClassUID", "") or "")
    is_mg = modality == "MG" or sop in MG_SOP_CLASSES
    breast_dx = modality == "DX" and str(ds.get("BodyPartExamined", "")).upper() == "BREAST"
    if not (is_mg or breast_dx):
        what = f"Modality {modality}" if modality else "no Modality"
        raise StudyLoadError(f"skipped, not a mammogram ({what})", path)
    if "Rows" not in ds or "Columns" not in ds:
        raise StudyLoadError("skipped, the file holds no image", path)
    if str(ds.get("PresentationIntentType", "")).upper() == "FOR PROCESSING" or sop.endswith(".1.2.1"):
        raise StudyLoadError("skipped, a 'For Processing' (raw detector) image; the viewer needs "
                             "'For Presentation' images", path)
    frames = int(ds.get("NumberOfFrames", 1) or 1)
    problem = size_problem(int(ds.Rows), int(ds.Columns), frames)
    if problem:
        raise StudyLoadError(f"skipped, {problem}", path)
    if frames > 1:
        raise StudyLoadError(f"skipped, holds {frames} frames (tomosynthesis?); the viewer shows 2-D mammograms",
                             path)
    if int(ds.get("SamplesPerPixel", 1) or 1) != 1:
        raise StudyLoadError("skipped, a colour image; mammograms are greyscale", path)
    if "ModalityLUTSequence" not in ds and _header_number(ds, "RescaleSlope", 1, path) == 0:
        # Every stored value would map to the intercept: a flat grey image that looks like a real one.
        raise StudyLoadError("skipped, its RescaleSlope is 0, which would make every pixel the same value "
                             "(a damaged or wrongly written file)", path)
    energy, warning = _energy(ds, path)
    side, side_source = _side(ds, path)
    return DicomSlot(path, ds, side, _view(ds, path), energy, warning, side_source)


def _check_decoder(ds: Dataset, path: Path) -> None:
    meta = getattr(ds, "file_meta", None)
    syntax = meta.get("TransferSyntaxUID") if meta is not None else None
    if syntax is None or not syntax.is_compressed:
        return
    try:
        decoder = get_decoder(syntax)
    except NotImplementedError:
        raise StudyLoadError(f"skipped, compressed as {syntax.name} ({syntax}), which no installed decoder "
                             "reads", path) from None
    if not decoder.is_available:
        plugin = next((p for family, p in _PLUGIN_HINT if family in syntax.name), "a pydicom decoder plugin")
        raise StudyLoadError(f"skipped, compressed as {syntax.name}; install {plugin} to read it", path)


def _modality_range(ds: Dataset, path: Path | None = None) -> tuple[float, float]:
    """Lowest and highest value the Modality LUT can produce (for MONOCHROME1 inversion)."""
    where = path if path is not None else Path("?")
    bits = int(_header_number(ds, "BitsStored", 16, where))
    if int(_header_number(ds, "PixelRepresentation", 0, where)) == 1:
        lo, hi = -(1 << (bits - 1)), (1 << (bits - 1)) - 1
    else:
        lo, hi = 0, (1 << bits) - 1
    slope = _header_number(ds, "RescaleSlope", 1, where)
    intercept = _header_number(ds, "RescaleIntercept", 0, where)
    a, b = lo * slope + intercept, hi * slope + intercept
    return min(a, b), max(a, b)


def _window(ds: Dataset, path: Path | None = None, warnings: list[str] | None = None) -> tuple[float, float] | None:
    """The first VOI window (center, width), or None; a malformed one is ignored with a warning.

    Only a linear window is kept. A VOI LUT Sequence table is approximated by
    the input range it covers, and VOILUTFunction SIGMOID is shown linear
    (both said in ``warnings``): the image stays usable, only its initial
    contrast differs from the one the modality chose.
    """
    notes = warnings if warnings is not None else []
    where = f"{path}: " if path is not None else ""
    function = str(ds.get("VOILUTFunction", "") or "").strip().upper()
    if function == "SIGMOID":
        notes.append(f"{where}VOILUTFunction SIGMOID is shown as a linear window (initial contrast may differ)")
    center, width = ds.get("WindowCenter"), ds.get("WindowWidth")
    if center is not None and width is not None and center != "" and width != "":
        c = center[0] if isinstance(center, pydicom.multival.MultiValue) else center
        w = width[0] if isinstance(width, pydicom.multival.MultiValue) else width
        try:
            c, w = float(c), float(w)
        except (ValueError, TypeError):
            notes.append(f"{where}ignored the window (WindowCenter {str(center)!r} / WindowWidth {str(width)!r} "
                         "is not a number); the image is shown with automatic contrast")
        else:
            if w > 0 and np.isfinite(c) and np.isfinite(w):
                return c, w
    for item in ds.get("VOILUTSequence", []) or []:
        desc = item.get("LUTDescriptor")
        try:
            if desc and len(desc) >= 2:
                # Approximate a VOI LUT table by the input range it covers.
                n = int(desc[0]) or 65536
                notes.append(f"{where}the VOI LUT table is approximated by a linear window over its input range")
                return float(desc[1]) + n / 2.0, float(n)
        except (ValueError, TypeError):
            notes.append(f"{where}ignored a malformed VOI LUT Sequence (LUTDescriptor {str(desc)!r})")
    return None


def _header_number(ds: Dataset, keyword: str, default: float, path: Path) -> float:
    """A numeric header value the pixels depend on; a malformed one skips this file (StudyLoadError)."""
    value = ds.get(keyword, default)
    try:
        number = float(value if value not in (None, "") else default)
    except (ValueError, TypeError) as err:
        raise StudyLoadError(f"skipped, its {keyword} value {str(value)!r} is not a number", path) from err
    if not np.isfinite(number):
        raise StudyLoadError(f"skipped, its {keyword} value {str(value)!r} is not a number", path)
    return number


def pixel_spacing(ds: Dataset, path: Path | None = None, warnings: list[str] | None = None):
    """Pixel spacing (row, column) in mm at the breast, or None when the file does not say.

    PixelSpacing is preferred: when present it is calibrated to the patient.
    ImagerPixelSpacing is measured at the detector, where the breast is
    magnified, so it is divided by EstimatedRadiographicMagnificationFactor
    when the file gives one. A malformed value is ignored with a warning.
    """
    notes = warnings if warnings is not None else []
    where = f"{path}: " if path is not None else ""
    for keyword in ("PixelSpacing", "ImagerPixelSpacing"):
        value = ds.get(keyword)
        if value is None or value == "":
            continue
        try:
            row, col = (float(v) for v in value)
        except (ValueError, TypeError):
            notes.append(f"{where}ignored {keyword} {str(value)!r} (not two numbers)")
            continue
        if not (row > 0 and col > 0 and np.isfinite(row) and np.isfinite(col)):
            notes.append(f"{where}ignored {keyword} {str(value)!r} (not two positive numbers)")
            continue
        if keyword == "ImagerPixelSpacing":
            factor = ds.get("EstimatedRadiographicMagnificationFactor")
            try:
                factor = float(factor) if factor not in (None, "") else None
            except (ValueError, TypeError):
                notes.append(f"{where}ignored EstimatedRadiographicMagnificationFactor {str(factor)!r} "
                             "(not a number); spacing measured at the detector")
                factor = None
            if factor is not None and factor > 0 and np.isfinite(factor):
                row, col = row / factor, col / factor
        return row, col
    return None


def _as_compact(arr: np.ndarray, stored_dtype: np.dtype) -> np.ndarray:
    """Integer dtype when the values are integers (bit depth preserved), else float32."""
    if arr.dtype in (np.uint8, np.uint16):
        return arr
    if not np.issubdtype(arr.dtype, np.integer) and not np.array_equal(arr, np.round(arr)):
        return arr.astype(np.float32)
    lo, hi = float(arr.min()), float(arr.max())
    if lo >= 0 and hi <= 255 and stored_dtype == np.uint8:
        return arr.astype(np.uint8)
    if lo >= 0 and hi <= 65535:
        return arr.astype(np.uint16)
    if lo >= -32768 and hi <= 32767:
        return arr.astype(np.int16)
    return arr.astype(np.int32)


def _presentation(raw: np.ndarray, ds: Dataset, path: Path) -> np.ndarray:
    """Stored values -> the pixels shown: Modality LUT, MONOCHROME1 inverted, compact dtype.

    Applied alike to every resolution level of an image, so windowing and grey
    values agree between levels.
    """
    identity = ("ModalityLUTSequence" not in ds and _header_number(ds, "RescaleSlope", 1, path) == 1.0
                and _header_number(ds, "RescaleIntercept", 0, path) == 0.0)
    # The usual MG file has an identity Modality LUT: keep the stored integers (no float copy).
    try:
        px = raw if identity else apply_modality_lut(raw, ds)
    except (ValueError, TypeError, KeyError, AttributeError, IndexError) as err:
        raise StudyLoadError(f"skipped, its Modality LUT cannot be applied ({err})", path) from err
    if _monochrome1(ds):
        # Invert within the Modality LUT output range so that bright means dense, as in MONOCHROME2.
        lo, hi = _modality_range(ds, path)
        if identity and raw.dtype.kind == "u":
            px = (np.asarray(int(lo + hi), dtype=raw.dtype) - raw).astype(raw.dtype)
        else:
            px = (lo + hi) - px.astype(np.float64)
    px = _as_compact(np.asarray(px), raw.dtype)
    problem = nonfinite_problem(px)
    if problem:
        raise StudyLoadError(f"skipped, {problem}", path)
    return px


def _monochrome1(ds: Dataset) -> bool:
    return str(ds.get("PhotometricInterpretation", "")).upper() == "MONOCHROME1"


def _decode_failed(path: Path, err: BaseException) -> StudyLoadError:
    return StudyLoadError(f"skipped, the pixel data cannot be decoded (damaged or truncated file: {err})", path)


def _j2k_pyramid(ds: Dataset, path: Path) -> ImagePyramid | None:
    """Levels decoded straight from a single-frame unsigned JPEG 2000 file; None for anything else."""
    syntax = str(getattr(getattr(ds, "file_meta", None), "TransferSyntaxUID", "") or "")
    if (syntax not in J2K_SYNTAXES or int(ds.get("NumberOfFrames", 1) or 1) != 1
            or int(ds.get("SamplesPerPixel", 1) or 1) != 1 or int(ds.get("PixelRepresentation", 0) or 0) != 0
            or "PixelData" not in ds):
        return None
    try:
        frame = next(generate_frames(ds.PixelData, number_of_frames=1))
        bits, signed, _ = j2k_info(frame)
        shape = (int(ds.Rows), int(ds.Columns))
        native = j2k_native_levels(frame, shape)
    except Exception:  # noqa: BLE001 - pydicom's own decoders then say what is wrong
        return None
    if signed or bits > 16:
        return None
    header = ds.copy()
    del header.PixelData  # the code stream is kept once, in ``frame``

    def decode(k: int) -> np.ndarray:
        try:
            raw = decode_j2k(frame, k)
        except Exception as err:  # noqa: BLE001 - a damaged code stream costs this file only
            raise _decode_failed(path, err) from err
        return _presentation(raw, header, path)

    # The lossless code stream plus the header values the pixels depend on identify the image.
    mapping = "\0".join(str(header.get(k, "")) for k in ("RescaleSlope", "RescaleIntercept", "PhotometricInterpretation",
                                                          "BitsStored", "ModalityLUTSequence"))
    digest = hashlib.sha256(frame + b"\0" + mapping.encode()).hexdigest()
    return ImagePyramid(shape, decode, native, content_digest=digest)


def load_slot(slot: DicomSlot, warnings: list[str] | None = None) -> StudyImage | UnassignedImage:
    """Decode one classified file into a StudyImage (an UnassignedImage when its side or view is unknown).

    A JPEG 2000 file gives a :class:`~core_model.io.pyramid.LevelledStudyImage`:
    only its coarsest directly decodable level is decoded here (which also
    checks the code stream), the full resolution when something reads
    ``pixels``. A malformed header value the pixels depend on (rescale, bit
    depth) skips the file (StudyLoadError naming the tag); one they do not
    depend on (window, spacing, orientation) is ignored and explained in
    ``warnings``.
    """
    notes = warnings if warnings is not None else []
    path = slot.path
    _check_decoder(slot.header, path)
    pyramid = None
    try:
        force = not has_preamble(path)
        with open(path, "rb") as fh:
            # Nothing after the pixel data is shown; stopping there keeps trailing padding unparsed.
            ds = read_partial(fh, stop_when=_after_pixel_data, force=force)
        pyramid = _j2k_pyramid(ds, path)
        if pyramid is not None:
            pyramid.level(pyramid.native)
            raw = None
        else:
            raw = ds.pixel_array
    except StudyLoadError:
        raise
    except OSError as err:
        if err.errno is not None:
            raise unreadable(path, err) from err
        raise _decode_failed(path, err) from err
    except Exception as err:  # noqa: BLE001 - any decoder failure means this one file is unreadable
        raise _decode_failed(path, err) from err
    if raw is not None and raw.ndim != 2:
        raise StudyLoadError(f"skipped, expected one greyscale frame, got pixel array of shape {raw.shape}", path)
    window = _window(ds, path, notes)
    if _monochrome1(ds) and window is not None:
        lo, hi = _modality_range(ds, path)
        window = (lo + hi - window[0], window[1])
    spacing = pixel_spacing(ds, path, notes)
    orientation = None
    po = ds.get("PatientOrientation")
    if po is not None and len(po) == 2:
        orientation = (str(po[0]), str(po[1]))
    common = dict(energy=slot.energy, source=path, pixel_spacing_mm=spacing,
                  bits_stored=int(_header_number(ds, "BitsStored", 16, path)), window=window,
                  orientation=orientation)
    if not slot.placed:
        # rare; the reader hangs it by hand, so the full resolution is decoded now
        px = pyramid.level(0) if pyramid is not None else _presentation(raw, ds, path)
        return UnassignedImage(uid=slot.uid, reason=slot.unplaced_reason, side=slot.side, pixels=px, **common)
    if pyramid is not None:
        return LevelledStudyImage(side=slot.side, view=slot.view, pixels=pyramid, **common)
    return StudyImage(side=slot.side, view=slot.view, pixels=_presentation(raw, ds, path), **common)


# Batch runs call load_study(folder, patient=...) once per patient of a large
# folder; remembering each file's classification avoids re-reading every header
# for every patient. Keyed by path, modification time and size, so an edited
# file is read again.
_CLASSIFIED: dict[tuple[str, int, int], DicomSlot | str] = {}
_CLASSIFIED_MAX = 20_000


def _after_pixel_data(tag, vr, length) -> bool:
    return tag > 0x7FE00010


def _classify_cached(path: Path) -> DicomSlot | str:
    try:
        st = path.stat()
        key = (str(path), st.st_mtime_ns, st.st_size)
    except OSError as err:
        return str(unreadable(path, err))
    hit = _CLASSIFIED.get(key)
    if hit is None:
        try:
            hit = classify(path, read_header(path))
        except StudyLoadError as err:
            hit = str(err)
        except (ValueError, TypeError, KeyError, AttributeError, IndexError) as err:
            # A malformed header value costs this file, never the study.
            hit = str(StudyLoadError(f"skipped, a header value cannot be read ({err})", path))
        if len(_CLASSIFIED) >= _CLASSIFIED_MAX:
            _CLASSIFIED.clear()
        _CLASSIFIED[key] = hit
    return hit


def classify_all(paths: list[Path], warnings: list[str], cancel: CancelToken | None = None) -> list[DicomSlot]:
    """Slots of every usable file (headers only, nothing decoded); the others explained in ``warnings``.

    ``cancel`` is checked before each file, so a folder of many (or slow) files can be abandoned.
    """
    slots = []
    for path in sorted(paths, key=str):
        if cancel is not None:
            cancel.check()
        hit = _classify_cached(path)
        if isinstance(hit, str):
            warnings.append(hit)
        else:
            slots.append(hit)
    return slots


def _patient(slot: DicomSlot, root: Path) -> str:
    return patient_without_view(patient_of(slot.header)) or (root.name if root.is_dir() else root.parent.name)


def list_dicom_patients(paths: list[Path], root: Path, cancel: CancelToken | None = None) -> list[str]:
    return list(dict.fromkeys(_patient(s, root) for s in classify_all(paths, [], cancel)))


def load_dicom_study(paths: list[Path], root: Path, patient: str | None, warnings: list[str],
                     cancel: CancelToken | None = None):
    """One patient's study from DICOM files; every skipped file is explained in ``warnings``.

    Only files that are usable mammograms count when telling patients apart, so
    a CT of someone else in the folder does not block opening the study. Pixels
    are decoded only for the files the study shows.
    """
    from core_model.io.cdd_cesm import choose_patient  # one wording for every loader
    from core_model.domain.study import Study

    slots = classify_all(paths, warnings, cancel)
    if not slots:
        return None
    patients = list(dict.fromkeys(_patient(s, root) for s in slots))
    chosen = choose_patient(patients, patient, root, normalize=lambda p: str(p).strip())
    mine = [s for s in slots if _patient(s, root) == chosen]
    # Several examinations of one patient (priors) in one folder: open the one with most files.
    studies: dict[str, list[DicomSlot]] = {}
    for s in mine:
        studies.setdefault(str(s.header.get("StudyInstanceUID", "") or ""), []).append(s)
    study_uid = max(studies, key=lambda uid: len(studies[uid]))
    _join_split_examination(studies, study_uid, warnings)
    for uid, items in studies.items():
        if uid != study_uid:
            warnings.append(f"{items[0].path.parent}: skipped {len(items)} file(s) of another study of patient "
                            f"{chosen} (StudyInstanceUID {uid or 'missing'}); opened study {study_uid}")
    first = studies[study_uid][0].header
    study = Study(
        patient_id=chosen,
        study_id=study_uid or chosen,
        source=root,
        description=" ".join(_text(first, "StudyDescription")) or "DICOM study",
    )
    loaded: list[tuple[DicomSlot, StudyImage]] = []
    for slot in studies[study_uid]:
        if slot.placed and slot.slot in study.images:
            warnings.append(f"{slot.path}: skipped, {slot.slot[0]} {slot.energy.upper()} is already taken by "
                            f"{study.images[slot.slot].source}; kept the first")
            continue
        if cancel is not None:
            cancel.check()
        try:
            image = load_slot(slot, warnings)
        except StudyLoadError as err:
            warnings.append(str(err))
            continue
        except (ValueError, TypeError, KeyError, AttributeError, IndexError) as err:
            warnings.append(str(StudyLoadError(f"skipped, a header value cannot be read ({err})", slot.path)))
            continue
        if slot.warning:
            warnings.append(slot.warning)
        if isinstance(image, UnassignedImage):
            warnings.append(f"{slot.path}: {image.reason}; waits among the unassigned images for the reader to "
                            "place it")
            study.unassigned.append(image)
            continue
        study.add(image)
        loaded.append((slot, image))
        marks = _text(slot.header, "SeriesDescription") + _text(slot.header, "ImageComments")
        if SYNTHETIC_MARK_RE.search(" ".join(marks)):
            study.synthetic = True
    warnings.extend(laterality_warnings(loaded))
    return study


def _join_split_examination(studies: dict[str, list[DicomSlot]], chosen: str, warnings: list[str]) -> None:
    """Fold into ``chosen`` the other StudyInstanceUIDs that are the same examination split per image.

    Some archives (CBIS-DDSM) give each image of one four-view exam its own
    StudyInstanceUID. Another UID joins when it has the same StudyDate (or
    none) and none of its images claims a slot ``chosen`` already has; a
    prior examination repeats the views, so it stays apart.
    """
    def date(items: list[DicomSlot]) -> str:
        return str(items[0].header.get("StudyDate", "") or "")

    taken = {s.slot for s in studies[chosen] if s.placed}
    joined = 0
    for uid in [u for u in studies if u != chosen]:
        items = studies[uid]
        slots = {s.slot for s in items if s.placed}
        if date(items) and date(studies[chosen]) and date(items) != date(studies[chosen]):
            continue
        if slots & taken:
            continue
        taken |= slots
        joined += len(items)
        studies[chosen].extend(studies.pop(uid))
    if joined:
        warnings.append(f"{studies[chosen][0].path.parent}: {joined} image(s) carry other StudyInstanceUIDs than "
                        f"{chosen or 'missing'} but fill other slots of the same examination; shown together")


def laterality_warnings(loaded: list[tuple[DicomSlot, StudyImage]]) -> list[str]:
    """A warning per image whose side tag the image's storage contradicts (see :func:`laterality_doubts`).

    The image stays where its tag puts it: moving it on the strength of the
    outline would be a silent guess too. The reader is told what each source
    says and decides.
    """
    # The outline is judged on a few hundred pixels: a reduced level serves (no full decode).
    doubts = laterality_doubts([(image.side, (pixels_for(image, 512)[0] if isinstance(image, LevelledStudyImage) else image.pixels), image.orientation) for _, image in loaded])
    out = []
    for i, stored, tags_agree in doubts:
        slot, image = loaded[i]
        said, seen = SIDE_NAMES[image.side], SIDE_NAMES[stored]
        po = "\\".join(image.orientation) if image.orientation is not None else None  # as DICOM writes it: P\L
        if tags_agree:
            tags = f", and PatientOrientation {po} says the same"
        elif po is None:
            tags = "; the file has no PatientOrientation"
        else:
            tags = f"; PatientOrientation {po} does not say"
        source = slot.side_source
        short = source.split(" ")[0] if source != "the file name" else source
        out.append(f"{slot.path}: {source} says {said} breast, but the image is stored as a {seen} breast is "
                   f"(chest wall on the {seen} edge{tags}); shown as {said}, as {short} says: "
                   "check which breast this is")
    return out

