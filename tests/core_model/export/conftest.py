"""Fixtures for the export tests: a DICOM study written from real CDD-CESM images, and reviews on it."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from scipy.spatial import ConvexHull

from core_model.io import load_study, write_mg_dicom
from core_model.io.naming import parse_cdd_cesm_name
from core_model.review import Review, ReviewSession, accept, review_from_analysis
from core_model.analysis import Analysis, Lesion, ViewResult
from core_model.review_store import study_identity


def hull_polygon(mask: np.ndarray) -> np.ndarray:
    """Convex hull of a ground-truth mask as an (x, y) polygon: a stand-in for an AI contour."""
    ys, xs = np.nonzero(mask)
    pts = np.stack([xs, ys], 1).astype(float)
    return pts[ConvexHull(pts).vertices]


def analysis_from_masks(study, mask_dir: Path, score: float = 0.8) -> Analysis:
    """An Analysis whose lesions are the hulls of the ground-truth RC masks (no model in these tests)."""
    views = {}
    for (key, energy), img in study.images.items():
        if energy != "rc":
            continue
        name = Path(img.source).name
        mpath = mask_dir / (Path(name).stem + ".jpg")
        if not mpath.is_file():
            continue
        mask = np.array(Image.open(mpath).convert("L")) > 127
        if not mask.any():
            continue
        poly = hull_polygon(mask)
        views[key] = ViewResult(key, mask.astype(np.uint8), lesions=[Lesion(poly, score, float(mask.sum()), (*poly.min(0), *poly.max(0)))])
    return Analysis(
        models={"segmentation": {"name": "nafv_seg_test", "weights_sha256": "c0ffee" * 10 + "abcd", "trained_on": "test fixture",
                                 "not_for_clinical_use": True}},
        device="cpu", affected_side="L", affected_side_source="segmentation", malignancy_probability=0.64,
        classifier_mode="dual-view", views=views,
    )


@pytest.fixture
def dicom_study_dir(tmp_path, cdd_test_dir) -> Path:
    """Patient P12's left-breast images (CC/MLO, LE/RC) written as DICOM MG, file names kept as stems."""
    out = tmp_path / "dicom"
    for p in sorted((cdd_test_dir / "images").glob("P12_*.jpg")):
        info = parse_cdd_cesm_name(p)
        write_mg_dicom(out / (p.stem + ".dcm"), np.array(Image.open(p).convert("L")), side=info.side, view=info.view,
                       energy=info.energy, patient_id="P12", pixel_spacing_mm=(0.1, 0.1))
    return out


@pytest.fixture
def dicom_review(dicom_study_dir, cdd_test_dir):
    """(study, review): L_CC accepted, L_MLO edited, linked; one rejected and one reader finding."""
    study = load_study(dicom_study_dir)
    # masks are named like the JPEGs; the DICOM files keep the stems
    analysis = analysis_from_masks(study, cdd_test_dir / "masks")
    review = review_from_analysis(analysis, study, study_identity(study))
    return study, review
