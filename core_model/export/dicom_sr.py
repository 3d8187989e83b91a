"""DICOM Structured Report of the findings: a TID 1500 measurement report (highdicom), beside the SEG.

One Comprehensive 3D SR per study. Per finding, one planar ROI group:

- the region: the contour as a closed POLYLINE on the source image it was
  drawn on (its SOP Instance UID; DICOM SCOORD puts the top-left corner of
  the first pixel at (0, 0), so our pixel-centre coordinates are shifted by
  half a pixel);
- the tracking identifier and UID, the same as the SEG's, so a lesion linked
  across CC and MLO is one lesion in both objects;
- finding type (lesion) and site (breast, laterality);
- measurements: longest diameter and area in mm, distance from the nipple in
  mm (only when the view has a pixel spacing), and the AI lesion score with
  the model that made it (name, weights sha256) as the algorithm;
- qualitative evaluations: clock face and quadrant (for a linked CC + MLO
  pair), depth third, where the contour came from (AI or reader) and the
  reader's decision (accepted, edited, rejected, or not reviewed);
- the reader's BI-RADS lexicon terms (:mod:`core_model.review.lexicon`), one
  qualitative evaluation per field the finding's type takes, coded in the
  private scheme (concept "Finding type", "Calcification morphology", ...;
  value the lexicon's words; the value code is derived from the words, so it
  does not change when the lexicon table is reordered). A term an older
  review stored that the type does not take is left out of the SR (a coded
  report must not contradict its own finding type); the PDF and JSON keep it.

The SR must name the images it measures: a view whose source is not DICOM
is left out with a message, as for the SEG (no invented UIDs). The
not-for-clinical-use notice goes into the series description when it applies.
"""

from __future__ import annotations

import warnings
import zlib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import highdicom as hd
import numpy as np
import pydicom
from pydicom.sr.codedict import codes
from pydicom.uid import generate_uid

from core_model import __version__
from core_model.domain.errors import NafvError
from core_model.export.common import notice
from core_model.export.dicom_seg import _source, _tracking
from core_model.imaging.geometry import max_diameter, polygon_area
from core_model.imaging.location import locate_review
from core_model.io.atomic import atomic_path
from core_model.review.lexicon import FIELDS, stray_terms
from core_model.review.model import CONFIRMED, PROPOSED, REJECTED, Finding, Review

SCHEME = "99NAFV"  # private coding scheme for what DICOM has no code for
READER_DECISION = hd.sr.CodedConcept("RD001", SCHEME, "Reader decision")
CONTOUR_ORIGIN = hd.sr.CodedConcept("RD002", SCHEME, "Contour origin")
AI_LESION_SCORE = hd.sr.CodedConcept("RD003", SCHEME, "AI lesion score")
DECISIONS = {
    PROPOSED: hd.sr.CodedConcept("RD010", SCHEME, "Not reviewed"),
    "accepted": hd.sr.CodedConcept("RD011", SCHEME, "Accepted"),
    "edited": hd.sr.CodedConcept("RD012", SCHEME, "Edited"),
    REJECTED: hd.sr.CodedConcept("RD013", SCHEME, "Rejected"),
}
ORIGINS = {"ai": hd.sr.CodedConcept("RD020", SCHEME, "AI proposal"),
           "reader": hd.sr.CodedConcept("RD021", SCHEME, "Drawn by the reader")}
DEPTH_CODES = {"anterior": hd.sr.CodedConcept("RD030", SCHEME, "Anterior third"),
               "middle": hd.sr.CodedConcept("RD031", SCHEME, "Middle third"),
               "posterior": hd.sr.CodedConcept("RD032", SCHEME, "Posterior third")}
QUADRANT_CODES = {"upper outer": codes.cid6020.UpperOuterQuadrantOfBreast,
                  "upper inner": codes.cid6020.UpperInnerQuadrantOfBreast,
                  "lower outer": codes.cid6020.LowerOuterQuadrantOfBreast,
                  "lower inner": codes.cid6020.LowerInnerQuadrantOfBreast,
                  "central": codes.cid6019.CentralRegionOfBreast}
LATERALITY = {"L": codes.SCT.Left, "R": codes.SCT.Right}
# lexicon field -> the concept its term is reported under ("distribution" is named by the type it describes)
LEXICON_CONCEPTS = {"type": ("RD040", "Finding type"), "shape": ("RD041", "Mass shape"),
                    "margin": ("RD042", "Mass margin"), "mass_density": ("RD043", "Mass density"),
                    "asymmetry_kind": ("RD044", "Asymmetry type"), "morphology": ("RD045", "Calcification morphology"),
                    "distribution": ("RD046", "Distribution"), "internal_enhancement": ("RD047", "Internal enhancement"),
                    "enhancement": ("RD048", "Enhancement on recombined image")}


def lexicon_evaluations(descriptors: dict[str, str]) -> list:
    """One qualitative evaluation per lexicon term that the finding's type takes (stray terms left out)."""
    stray = stray_terms(descriptors)
    out = []
    for name in FIELDS:
        term = descriptors.get(name)
        if not term or name in stray:
            continue
        code, meaning = LEXICON_CONCEPTS[name]
        value = hd.sr.CodedConcept(f"LX{zlib.crc32(f'{name}:{term}'.encode()):08X}", SCHEME, term)
        out.append(hd.sr.QualitativeEvaluation(hd.sr.CodedConcept(code, SCHEME, meaning), value))
    return out


def clock_code(hour: float):
    """The CID 6018 code of the nearest whole hour (12 for 11:30 and later)."""
    h = int(hour + 0.5) % 12 or 12
    return getattr(codes.cid6018, f"_{h}OClockPosition")


class SrExportError(NafvError):
    """The DICOM SR could not be written."""


@dataclass
class SrExport:
    written: Path | None = None
    skipped: list[str] = field(default_factory=list)


def _algorithm(review: Review, role: str = "segmentation") -> hd.sr.AlgorithmIdentification | None:
    m = review.ai.get("models", {}).get(role)
    if not m:
        return None
    sha = str(m.get("weights_sha256", "unknown"))
    return hd.sr.AlgorithmIdentification(name=str(m.get("name", "NaFV-Net"))[:64], version=sha[:64],
                                         parameters=[f"weights_sha256={sha}"])


def _group(review: Review, f: Finding, src: pydicom.Dataset, spacing, loc: dict[str, Any] | None):
    tid, uid = _tracking(review, f)
    pts = np.asarray(f.polygon + f.polygon[:1], dtype=np.float64) + 0.5  # closed; pixel centres -> SCOORD
    region = hd.sr.ImageRegion(graphic_type=hd.sr.GraphicTypeValues.POLYLINE, graphic_data=pts,
                               source_image=hd.sr.SourceImageForRegion(src.SOPClassUID, src.SOPInstanceUID))
    measurements = []
    if spacing is not None:
        measurements += [
            hd.sr.Measurement(name=codes.SCT.Diameter, value=round(max_diameter(f.polygon, spacing), 2), unit=codes.UCUM.Millimeter),
            hd.sr.Measurement(name=codes.SCT.Area, value=round(polygon_area(f.polygon, spacing), 2), unit=codes.UCUM.SquareMillimeter),
        ]
        if loc and loc.get("nipple_distance_mm") is not None:
            measurements.append(hd.sr.Measurement(name=codes.DCM.DistanceFromNipple, value=float(loc["nipple_distance_mm"]),
                                                  unit=codes.UCUM.Millimeter))
    algo = _algorithm(review)
    if f.ai_score is not None and algo is not None:
        measurements.append(hd.sr.Measurement(name=AI_LESION_SCORE, value=round(float(f.ai_score), 4), unit=codes.UCUM.NoUnits,
                                              algorithm_id=algo))
    evaluations = [hd.sr.QualitativeEvaluation(CONTOUR_ORIGIN, ORIGINS[f.origin]),
                   hd.sr.QualitativeEvaluation(READER_DECISION, DECISIONS[f.state])]
    if loc:
        if loc.get("clock") is not None:
            evaluations.append(hd.sr.QualitativeEvaluation(codes.DCM.ClockfaceOrRegion, clock_code(loc["clock"])))
            evaluations.append(hd.sr.QualitativeEvaluation(codes.DCM.QuadrantLocation, QUADRANT_CODES[loc["quadrant"]]))
        evaluations.append(hd.sr.QualitativeEvaluation(codes.DCM.Depth, DEPTH_CODES[loc["depth"]]))
    evaluations += lexicon_evaluations(f.descriptors)
    return hd.sr.PlanarROIMeasurementsAndQualitativeEvaluations(
        tracking_identifier=hd.sr.TrackingIdentifier(uid=uid, identifier=f"{tid} ({f.id})"[:64]),
        referenced_region=region,
        finding_type=codes.SCT.Lesion,
        finding_sites=[hd.sr.FindingSite(anatomic_location=codes.SCT.Breast, laterality=LATERALITY[f.side])],
        measurements=measurements or None,
        qualitative_evaluations=evaluations,
    )


def export_dicom_sr(review: Review, study: Any, path: str | Path, *, energy: str = "rc",
                    include_proposed: bool = False) -> SrExport:
    """Write one SR file at ``path`` for the study's findings; views without a DICOM source are skipped.

    Accepted, edited and rejected findings are reported with the reader's decision;
    ``include_proposed`` adds the proposals nobody reviewed (batch reports).
    """
    path = Path(path)
    result = SrExport()
    states = CONFIRMED + (REJECTED,) + ((PROPOSED,) if include_proposed else ())
    findings = [f for f in review.findings.values() if f.state in states]
    if not findings:
        result.skipped.append("no findings to report: there is nothing to put in a DICOM SR")
        return result
    locations = locate_review(review, study)
    sources: dict[str, pydicom.Dataset] = {}
    groups = []
    for f in findings:
        if f.key not in sources:
            img = _source(study, f.key, energy)
            if img is None:
                result.skipped.append(f"{f.key}: the source image is not DICOM, so the SR cannot reference it; "
                                      "its findings are in the JSON and PDF exports only")
                sources[f.key] = None
            else:
                try:
                    sources[f.key] = pydicom.dcmread(img.source, stop_before_pixels=True)
                except Exception as exc:  # noqa: BLE001 - one unreadable file costs its view only
                    result.skipped.append(f"{f.key}: the source file {Path(img.source).name} cannot be read again ({exc})")
                    sources[f.key] = None
        src = sources[f.key]
        if src is None:
            continue
        groups.append(_group(review, f, src, review.pixel_spacing(f.key), locations.get(f.id)))
    evidence = [ds for ds in sources.values() if ds is not None]
    if not groups:
        return result
    algo = _algorithm(review)
    if review.reader:
        observer = hd.sr.ObserverContext(observer_type=codes.cid270.Person,
                                         observer_identifying_attributes=hd.sr.PersonObserverIdentifyingAttributes(
                                             name=review.reader))
        context = hd.sr.ObservationContext(observer_person_context=observer)
    else:
        device = hd.sr.DeviceObserverIdentifyingAttributes(
            uid=generate_uid(entropy_srcs=["nafv-viewer", __version__]),
            name=str(review.ai.get("models", {}).get("segmentation", {}).get("name", "NaFV Viewer"))[:64],
            manufacturer_name="NaFV Viewer", model_name=f"NaFV Viewer {__version__}")
        context = hd.sr.ObservationContext(observer_device_context=hd.sr.ObserverContext(
            observer_type=codes.cid270.Device, observer_identifying_attributes=device))
    report = hd.sr.MeasurementReport(observation_context=context, procedure_reported=codes.LN.BreastBilateralMammogram,
                                     imaging_measurements=groups, title=codes.cid7021.ImagingMeasurementReport)
    unreviewed = any(f.state == PROPOSED for f in findings)
    try:
        with warnings.catch_warnings():
            # highdicom warns about single-component patient names copied from the source; not ours to fix
            warnings.filterwarnings("ignore", message=".*person name.*", category=UserWarning)
            sr = hd.sr.Comprehensive3DSR(
                evidence=evidence, content=report, series_instance_uid=generate_uid(), series_number=902,
                sop_instance_uid=generate_uid(), instance_number=1, manufacturer="NaFV Viewer",
                is_complete=True, is_final=False, is_verified=False)
    except (ValueError, TypeError, AttributeError) as exc:
        raise SrExportError(f"the DICOM SR could not be built ({exc})", path) from None
    sr.SeriesDescription = (("NaFV AI findings (not all reviewed)" if unreviewed else "NaFV review findings")
                            + (" - not for clinical use" if notice(review) else ""))[:64]
    sr.SoftwareVersions = __version__
    try:
        with atomic_path(path) as tmp:
            sr.save_as(tmp, enforce_file_format=True)
    except OSError as exc:
        raise SrExportError(f"the DICOM SR could not be written ({exc.strerror or exc})", path) from None
    result.written = path
    return result


def read_sr_findings(path: str | Path) -> list[dict[str, Any]]:
    """Read an SR this module wrote back (highdicom): per finding, its reference, measurements and evaluations."""
    sr = hd.sr.srread(path)
    out = []
    for g in sr.content.get_planar_roi_measurement_groups():
        region = g.roi
        out.append({
            "tracking_uid": str(g.tracking_uid),
            "tracking_id": str(g.tracking_identifier),
            "source_sop_instance_uid": (str(region.ContentSequence[0].ReferencedSOPSequence[0].ReferencedSOPInstanceUID)
                                        if region is not None else None),
            "laterality": g.finding_sites[0].laterality.meaning if g.finding_sites else None,
            "polygon": None if region is None else (np.asarray(region.value, float) - 0.5)[:-1].tolist(),
            "measurements": {m.name.meaning: (float(m.value), m.unit.value) for m in g.get_measurements()},
            "evaluations": {e.name.meaning: e.value.meaning for e in g.get_qualitative_evaluations()},
            "finding_type": g.finding_type.meaning if g.finding_type is not None else None,
            "algorithms": {m.name.meaning: _algo_of(m) for m in g.get_measurements() if _algo_of(m)},
        })
    return out


def _algo_of(m) -> dict[str, str] | None:
    """The Algorithm Name / Version (DCM 111001 / 111003) items under a measurement, if any."""
    found = {}
    for item in getattr(m[0], "ContentSequence", []):
        code = item.ConceptNameCodeSequence[0].CodeValue
        if code in ("111001", "111003"):
            found["name" if code == "111001" else "version"] = str(item.TextValue)
    return found or None

