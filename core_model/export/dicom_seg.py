"""DICOM SEG of the reader's accepted and edited contours, referencing the source images (highdicom).

One SEG instance per view that has confirmed findings, all in one new
series; each finding is one binary segment rasterised on the source image's
pixel grid. A lesion linked across CC and MLO carries the same Tracking ID
and Tracking UID in both SEGs, so a PACS or OHIF can tell it is one lesion.

A SEG must name the SOP Instance UID of the image it segments. When a view's
source is not DICOM (the CDD-CESM JPEGs, the demo study), there is nothing to
reference: that view is skipped with a message saying so, and the contours
remain in the JSON and PDF exports. We do not invent source UIDs, because a
SEG pointing at images no archive holds would look valid and display nowhere.

Mammograms have no Frame of Reference, so the SEG has none either and its
Pixel Measures carry the source's PixelSpacing (when it has one) without a
SliceThickness, which DICOM requires only with a Frame of Reference.
highdicom 0.28's reader insists on SliceThickness and so cannot open such a
SEG; :func:`read_seg_masks` (pydicom) reads every SEG this module writes.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass, field
from pathlib import Path

import highdicom as hd
import numpy as np
import pydicom
from pydicom.sr.codedict import codes
from pydicom.uid import generate_uid

from core_model import __version__
from core_model.domain.errors import NafvError
from core_model.domain.study import VIEW_KEYS
from core_model.export.common import notice
from core_model.io.atomic import atomic_path
from core_model.io.dicom import looks_like_dicom
from core_model.review.model import CONFIRMED, PROPOSED, Finding, Review

SIDE_CODES = {"L": codes.SCT.Left, "R": codes.SCT.Right}


class SegExportError(NafvError):
    """The DICOM SEG could not be written."""


@dataclass
class SegExport:
    written: dict[str, Path] = field(default_factory=dict)  # view key -> SEG file
    skipped: list[str] = field(default_factory=list)  # what could not be exported, and why


def polygon_mask(polygon: list[tuple[float, float]], shape: tuple[int, int]) -> np.ndarray:
    """Binary mask (rows, cols) of the pixels whose centres lie inside the contour (even-odd rule).

    Pixel (row r, column c) has its centre at (x, y) = (c, r), the convention of
    the contours. Scanline fill in numpy: exact, and independent of any drawing
    library's rounding.
    """
    rows, cols = int(shape[0]), int(shape[1])
    mask = np.zeros((rows, cols), dtype=bool)
    pts = np.asarray(polygon, dtype=np.float64)
    x0, y0 = pts[:, 0], pts[:, 1]
    x1, y1 = np.roll(x0, -1), np.roll(y0, -1)
    r_lo, r_hi = max(0, int(np.ceil(y0.min()))), min(rows - 1, int(np.floor(y0.max())))
    if r_lo > r_hi:
        return mask
    ys = np.arange(r_lo, r_hi + 1, dtype=np.float64)[:, None]
    crosses = ((y0 <= ys) & (ys < y1)) | ((y1 <= ys) & (ys < y0))  # half-open: each vertex counted once
    with np.errstate(divide="ignore", invalid="ignore"):
        xs = np.where(crosses, x0 + (ys - y0) * (x1 - x0) / (y1 - y0), np.inf)
    xs.sort(axis=1)
    for i, row in enumerate(xs):
        row = row[np.isfinite(row)]
        for xa, xb in zip(row[0::2], row[1::2]):
            c0, c1 = max(0, int(np.ceil(xa))), min(cols - 1, int(np.floor(xb)))
            if c0 <= c1:
                mask[r_lo + i, c0 : c1 + 1] = True
    return mask


def _tracking(review: Review, f: Finding) -> tuple[str, str]:
    """Same lesion (linked CC + MLO) -> same tracking id and UID in every SEG."""
    ids = sorted({f.id, f.link} - {None}) if f.link and f.link in review.findings else [f.id]
    tid = f"{f.side} lesion {'+'.join(ids)}"
    uid = generate_uid(entropy_srcs=[review.identity.get("digest", ""), *ids])
    return tid, uid


def _algorithm(review: Review) -> hd.AlgorithmIdentificationSequence:
    seg_model = review.ai.get("models", {}).get("segmentation", {})
    name = str(seg_model.get("name", "NaFV-Net"))[:64]
    version = str(seg_model.get("weights_sha256", "unknown"))[:16]
    return hd.AlgorithmIdentificationSequence(name=name, family=codes.cid7162.ArtificialIntelligence, version=version)


def _description(review: Review, number: int, f: Finding) -> hd.seg.SegmentDescription:
    tid, uid = _tracking(review, f)
    if f.origin == "reader":
        kind, algo = hd.seg.SegmentAlgorithmTypeValues.MANUAL, None
    elif f.state == PROPOSED:  # nobody reviewed it: the model's own output
        kind, algo = hd.seg.SegmentAlgorithmTypeValues.AUTOMATIC, _algorithm(review)
    else:
        # an AI contour the reader accepted or edited: machine-proposed, human-confirmed
        kind, algo = hd.seg.SegmentAlgorithmTypeValues.SEMIAUTOMATIC, _algorithm(review)
    score = "" if f.ai_score is None else f" AI {f.ai_score:.2f}"
    return hd.seg.SegmentDescription(
        segment_number=number,
        segment_label=f"{f.id} {f.state}{score}"[:64],
        segmented_property_category=codes.SCT.MorphologicallyAbnormalStructure,
        segmented_property_type=codes.SCT.Lesion,
        algorithm_type=kind,
        algorithm_identification=algo,
        tracking_id=tid,
        tracking_uid=uid,
        anatomic_regions=[codes.SCT.Breast],
    )


def _source(study, key: str, energy: str):
    """The DICOM file the contours of ``key`` are drawn on: preferred energy first, then the other."""
    for e in (energy, "rc" if energy == "le" else "le"):
        img = study.get(key, e)
        if img is not None and looks_like_dicom(Path(img.source)):
            return img
    return None


def export_dicom_seg(review: Review, study, out_dir: str | Path, *, energy: str = "rc", include_proposed: bool = False) -> SegExport:
    """Write ``<out_dir>/<VIEW>_seg.dcm`` for every view with accepted/edited findings.

    ``study`` is the loaded :class:`~core_model.domain.study.Study` the review belongs to
    (the SEG needs the source files). Views that cannot be exported are listed
    in ``SegExport.skipped`` with the reason; nothing is raised for them.
    ``include_proposed`` adds the AI proposals nobody reviewed (segment type
    AUTOMATIC), for batch exports straight from the AI output.
    """
    out_dir = Path(out_dir)
    result = SegExport()
    states = CONFIRMED + ((PROPOSED,) if include_proposed else ())
    confirmed = [f for f in review.findings.values() if f.state in states]
    if not confirmed:
        what = "no AI proposals and no accepted or edited findings" if include_proposed else "no accepted or edited findings"
        result.skipped.append(f"{what}: there is nothing to put in a DICOM SEG")
        return result
    unreviewed = include_proposed and any(f.state == PROPOSED for f in confirmed)
    series_uid = generate_uid()
    instance = 0
    for key in VIEW_KEYS:
        findings = [f for f in confirmed if f.key == key]
        if not findings:
            continue
        img = _source(study, key, energy)
        if img is None:
            names = ", ".join(sorted(Path(i.source).name for (k, _), i in study.images.items() if k == key)) or "none"
            result.skipped.append(
                f"{key}: the source image ({names}) is not DICOM, so there is no SOP Instance UID for a SEG to "
                f"reference; its {len(findings)} contour(s) are in the JSON and PDF exports only"
            )
            continue
        try:
            src = pydicom.dcmread(img.source)
        except Exception as exc:  # noqa: BLE001 - any read failure means this one view cannot be referenced
            result.skipped.append(f"{key}: the source file {Path(img.source).name} cannot be read again ({exc})")
            continue
        shape = (int(src.Rows), int(src.Columns))
        if shape != tuple(img.shape):
            result.skipped.append(f"{key}: the source file changed since the review was made ({shape} vs {img.shape})")
            continue
        masks, descs = [], []
        for f in findings:
            m = polygon_mask(f.polygon, shape)
            if not m.any():
                result.skipped.append(f"{key}: finding {f.id} covers no pixel of the image and was left out")
                continue
            masks.append(m)
            descs.append(_description(review, len(descs) + 1, f))
        if not masks:
            continue
        instance += 1
        note = notice(review)
        try:
            with warnings.catch_warnings():
                # highdicom warns about single-component patient names copied from the source; not ours to fix
                warnings.filterwarnings("ignore", message=".*person name.*", category=UserWarning)
                seg = hd.seg.Segmentation(
                    source_images=[src],
                    pixel_array=np.stack(masks, axis=-1)[None].astype(np.uint8),  # (frames, rows, cols, segments)
                    segmentation_type=hd.seg.SegmentationTypeValues.BINARY,
                    segment_descriptions=descs,
                    series_instance_uid=series_uid,
                    series_number=901,
                    sop_instance_uid=generate_uid(),
                    instance_number=instance,
                    manufacturer="NaFV Viewer",
                    manufacturer_model_name="NaFV Viewer review",
                    software_versions=__version__,
                    device_serial_number="none",
                    content_label="NAFV_REVIEW",
                    content_description=(("AI contours, partly not reviewed" if unreviewed else "Reader-confirmed contours")
                                         + (" - research use, not for clinical use" if note else ""))[:64],
                    content_creator_name=review.reader or None,
                )
        except (ValueError, TypeError, AttributeError) as exc:
            result.skipped.append(f"{key}: the SEG could not be built from {Path(img.source).name} ({exc})")
            continue
        seg.SeriesDescription = "NaFV AI contours (not all reviewed)" if unreviewed else "NaFV review contours (accepted/edited)"
        out_dir.mkdir(parents=True, exist_ok=True)
        path = out_dir / f"{key}_seg.dcm"
        try:
            with atomic_path(path) as tmp:
                seg.save_as(tmp, enforce_file_format=True)
        except OSError as exc:
            raise SegExportError(f"the DICOM SEG could not be written ({exc.strerror or exc})", path) from None
        result.written[key] = path
    return result


def read_seg_masks(path: str | Path) -> dict[str, object]:
    """Read a SEG back with pydicom: referenced SOP Instance UID and one mask per segment label."""
    ds = pydicom.dcmread(path)
    px = ds.pixel_array
    if px.ndim == 2:
        px = px[None]
    masks: dict[str, np.ndarray] = {}
    ref = None
    shared = ds.SharedFunctionalGroupsSequence[0]
    for i, fg in enumerate(ds.PerFrameFunctionalGroupsSequence):
        # with one segment highdicom puts the segment identification in the shared group
        ident = fg if "SegmentIdentificationSequence" in fg else shared
        number = int(ident.SegmentIdentificationSequence[0].ReferencedSegmentNumber)
        label = str(ds.SegmentSequence[number - 1].SegmentLabel)
        masks[label] = px[i].astype(bool)
        ref = str(fg.DerivationImageSequence[0].SourceImageSequence[0].ReferencedSOPInstanceUID)
    return {"source_sop_instance_uid": ref, "masks": masks}
