"""The result of analysing one study: plain dataclasses + numpy, no torch, no Qt.

Everything is in original-image pixel coordinates ((x, y) = (column, row)) of
the study image it refers to, so the viewer and the exports never rescale.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np


@dataclass
class Lesion:
    polygon: np.ndarray  # (N, 2) float, (x, y) in original pixels, closed implicitly
    score: float  # mean segmentation probability inside the contour, 0..1
    area_px: float
    bbox: tuple[float, float, float, float]  # x0, y0, x1, y1 in original pixels
    # {clock, quadrant, depth, nipple_distance_mm} (core_model.imaging.location); clock and quadrant only
    # when paired with the other view's contour of the same lesion; None when not located
    location: dict[str, Any] | None = None
    size: dict[str, Any] | None = None  # longest diameter and area, mm (or px, said so)
    pair: str | None = None  # "<view key>:<index>" of the same lesion on the other view of the breast


@dataclass
class ViewResult:
    key: str  # "L_CC", ...
    mask: np.ndarray  # uint8 {0, 1}, original image size
    probability: np.ndarray | None = None  # float32 0..1 segmentation probability, original size
    heatmap: np.ndarray | None = None  # float32 0..1 Grad-CAM on the LE image, original size
    lesions: list[Lesion] = field(default_factory=list)
    landmarks: dict[str, Any] | None = None  # nipple (stored pixels) and chest wall, core_model.imaging.location


# How the affected side was chosen, as a reader reads it (side panel, report).
AFFECTED_SIDE_SOURCES = {"segmentation": "decided from the segmentation", "caller": "chosen by the reader"}


def side_source_words(source: str) -> str:
    """``Analysis.affected_side_source`` in a reader's words."""
    return AFFECTED_SIDE_SOURCES.get(source, f"from {source}")


@dataclass
class Analysis:
    # identity of every model that contributed (see checkpoint.LoadedModel.identity),
    # e.g. {"segmentation": {...}, "classifier": {...}}
    models: dict[str, dict[str, Any]]
    device: str
    affected_side: str | None  # "L" / "R"; None when no view could be analysed
    affected_side_source: str  # "segmentation" or "caller"
    malignancy_probability: float | None  # for the affected breast; None when no classifier ran
    classifier_mode: str | None  # "four-view", "dual-view" or None
    views: dict[str, ViewResult] = field(default_factory=dict)
    timings_s: dict[str, float] = field(default_factory=dict)
    warnings: list[str] = field(default_factory=list)
    # How the heatmaps were made: "<CAM method> @ <target layer>", and which
    # class's evidence they show ("malignant" / "benign": the predicted one).
    heatmap_method: str | None = None
    heatmap_target: str | None = None
    # Per side, the evidence the affected side was decided on: the certainty (mean
    # segmentation probability inside the contour) of its most certain contour; 0 = none.
    side_evidence: dict[str, float] = field(default_factory=dict)
    # False: no contour reached the threshold in either breast, so no breast was taken as
    # affected and the classifier did not run. None: not recorded (analyses saved before this).
    lesion_found: bool | None = None

    @property
    def not_for_clinical_use(self) -> bool:
        return any(m.get("not_for_clinical_use", True) for m in self.models.values()) or not self.models
