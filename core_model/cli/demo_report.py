"""Export a report for the demo study end to end: load, analyse, review (accept, edit, draw, assess), export.

    python -m core_model.cli.demo_report OUT_DIR [--seg-weights W] [--cls-weights W] [--heatmaps] [--deidentify] [--overwrite]

With segmentation weights (given, or the shipped default when present) the
NaFV-Net analysis runs; without them the "AI" contours are stand-ins made
from the collection's ground-truth masks in ``resources/demo_masks`` and the
report says so in its model section. The review store is the usual one
(``NAFV_DATA_DIR`` to redirect it). Writes ``<patient>_<study>_report.pdf``, ``..._review.json``
(an existing one only with ``--overwrite``)
and, when the sources are DICOM, ``*_seg.dcm``; prints what it wrote and
what it skipped.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np

from core_model.domain.analysis import Analysis, ViewResult
from core_model.domain.errors import NafvError
from core_model.imaging.geometry import polygon_area
from core_model.io.masks import read_mask_png
from core_model.review.model import Link, MoveVertex, ReviewSession, SetAssessment, SetDescriptor, SetReader, accept
from core_model.review.signoff import Finalise
from core_model.review.store import ReviewStore

from core_model.domain.resources import DEFAULT_SEG_WEIGHTS, DEMO_DIR, DEMO_MASKS  # no torch import

STAND_IN = {
    "name": "stand-in: contours from the collection's ground-truth masks (no model ran)",
    "architecture": "none",
    "weights_sha256": "none",
    "trained_on": "not applicable",
    "not_for_clinical_use": True,
}


def stand_in_analysis(study, mask_dir: Path = DEMO_MASKS) -> Analysis:
    """Lesions = outlines of the ground-truth RC masks, with no score (a mask is not a probability)."""
    from core_model.imaging.contours import lesions_from_probability

    views = {}
    for (key, energy), img in study.images.items():
        if energy != "rc":
            continue
        mpath = mask_dir / Path(img.source).name
        if not mpath.is_file():
            continue
        mask = read_mask_png(mpath).astype(np.float32)
        if mask.shape != img.shape or not mask.any():
            continue
        _, lesions = lesions_from_probability(mask)
        for les in lesions:
            les.score = float("nan")  # a mask has no probability: the review shows no AI score
        views[key] = ViewResult(key, (mask > 0).astype(np.uint8), lesions=list(lesions))
    return Analysis(models={"segmentation": dict(STAND_IN)}, device="none", affected_side=None,
                    affected_side_source="segmentation", malignancy_probability=None, classifier_mode=None, views=views)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m core_model.cli.demo_report", description=__doc__.split("\n\n")[0])
    ap.add_argument("out", type=Path)
    ap.add_argument("--study", type=Path, default=DEMO_DIR)
    ap.add_argument("--seg-weights", type=Path)
    ap.add_argument("--cls-weights", type=Path)
    ap.add_argument("--heatmaps", action="store_true")
    ap.add_argument("--deidentify", action="store_true")
    ap.add_argument("--overwrite", action="store_true", help="replace this study's exports already in OUT_DIR")
    args = ap.parse_args(argv)
    try:
        from core_model.export.bundle import ReportBundle
        from core_model.export.common import export_stem, refuse_overwrite
        from core_model.export.dicom_seg import export_dicom_seg
        from core_model.export.pdf import export_pdf, heatmaps_from
        from core_model.export.review_json import export_review_json
        from core_model.io import load_study

        study = load_study(args.study)
        if args.seg_weights or DEFAULT_SEG_WEIGHTS.is_file():
            from core_model.inference.analyzer import Analyzer

            analysis = Analyzer(args.seg_weights, args.cls_weights).analyze(study)
        else:
            analysis = stand_in_analysis(study)
        store = ReviewStore()
        review = store.open(study, analysis)
        s = ReviewSession(review, store)
        if review.revision == 0:  # a fresh review: make the edits a reader would
            s.do(SetReader("Demo Reader"))
            for f in list(review.findings.values()):
                s.do(accept(f.id))
            biggest = max(review.findings.values(), key=lambda f: polygon_area(f.polygon), default=None)
            if biggest is not None:  # drag the contour's first vertex 12 px outward
                cx, cy = np.mean(biggest.polygon, axis=0)
                x, y = biggest.polygon[0]
                d = np.hypot(x - cx, y - cy) or 1.0
                s.do(MoveVertex(biggest.id, 0, (x + 12 * (x - cx) / d, y + 12 * (y - cy) / d)))
            by_side: dict[str, dict[str, str]] = {}
            for f in review.findings.values():
                by_side.setdefault(f.side, {}).setdefault(f.view, f.id)
            for side, views in by_side.items():
                if "CC" in views and "MLO" in views:
                    s.do(Link(views["CC"], views["MLO"]))
                    s.do(SetAssessment(side, "birads", "4B"))
                    for name, term in (("type", "mass"), ("shape", "irregular"), ("margin", "indistinct"),
                                       ("internal_enhancement", "heterogeneous")):
                        s.do(SetDescriptor(views["CC"], name, term))  # the linked MLO contour takes them too
                s.do(SetAssessment(side, "bpe", "mild"))
            s.do(SetAssessment("L", "density", "c"))
            s.do(SetAssessment("R", "density", "c"))
            s.do(SetAssessment("R", "birads", by_side.get("R") and "4B" or "1"))
            s.do(SetAssessment("L", "text", "Demo review of the workflow: every proposed contour accepted, the largest "
                                            "edited by dragging one vertex outward, CC and MLO linked per breast."))
            s.do(Finalise("Demo Reader"))  # signed: the report shows who and when, and the review is locked
        args.out.mkdir(parents=True, exist_ok=True)
        heat = heatmaps_from(analysis) if args.heatmaps else None
        stem = export_stem(review, args.deidentify)
        pdf, js = args.out / f"{stem}_report.pdf", args.out / f"{stem}_review.json"
        refuse_overwrite([pdf, js], args.overwrite)  # before writing either: all or nothing
        pdf = export_pdf(review, study, pdf, deidentify=args.deidentify, heatmaps=heat, overwrite=args.overwrite)
        js = export_review_json(review, js, deidentify=args.deidentify, overwrite=args.overwrite)
        bundle = ReportBundle(pdf, js, seg=export_dicom_seg(review, study, args.out))
        print("\n".join(bundle.messages()))
        return 0
    except NafvError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
