"""Helpers for the export tests (a uniquely named module: ``conftest`` is ambiguous across test folders)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from scipy.spatial import ConvexHull

from core_model.domain.analysis import Analysis, Lesion, ViewResult
from core_model.io.masks import read_mask_png


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
        mask = read_mask_png(mpath)
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
