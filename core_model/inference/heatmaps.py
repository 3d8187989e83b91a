"""Grad-CAM heatmaps of a finished analysis, computed after its contours and score.

The heatmaps are the slowest part of an analysis that a reader does not need
first: the viewer shows the contours and the score as soon as they exist and
the heatmaps when they follow. :class:`PendingHeatmaps` is what the analyzer
keeps from its run for that (the classifier's input, where each heatmap goes
back to); :meth:`PendingHeatmaps.compute` makes :class:`Heatmaps` (maps at the
stored images' size and orientation), and :meth:`Heatmaps.apply` puts them on
the analysis, in the thread that owns it.
"""

from __future__ import annotations

import time
from contextlib import nullcontext
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch

from core_model.domain.analysis import Analysis
from core_model.domain.jobs import CancelToken, ProgressCallback, report
from core_model.imaging.orientation import flip_array
from core_model.imaging.preprocess import resize_map
from core_model.inference.cancel import cancellable
from core_model.inference.explain import CamResult, explain_views

EMPTY_CAM_WARNING = ("Grad-CAM found no image region that supports the prediction at the chosen layer; "
                     "the heatmaps are empty (this says nothing about the lesion)")


@dataclass
class Heatmaps:
    """Grad-CAM maps per view key, at the size and orientation of the images as stored."""

    maps: dict[str, np.ndarray]
    target: str  # the class explained: "malignant" or "benign"
    method: str
    warnings: list[str] = field(default_factory=list)
    seconds: float = 0.0  # Grad-CAM's passes (when not shared with the classification) and the maps

    def apply(self, analysis: Analysis) -> None:
        """Put the maps on ``analysis`` (its views, method, target, warnings and timings)."""
        for key, heat in self.maps.items():
            if key in analysis.views:
                analysis.views[key].heatmap = heat
        analysis.heatmap_target, analysis.heatmap_method = self.target, self.method
        analysis.warnings.extend(w for w in self.warnings if w not in analysis.warnings)
        t = analysis.timings_s
        t["explain"] = t.get("explain", 0.0) + self.seconds
        if "total" in t:
            t["total"] += self.seconds


def paste(square: np.ndarray, box: tuple[int, int, int], shape: tuple[int, int]) -> np.ndarray:
    """A map of ``shape``, zero outside the crop ``box`` and ``square`` inside it (clipped to the image)."""
    r0, c0, side = box
    out = np.zeros(shape, dtype=np.float32)
    rs, cs = max(r0, 0), max(c0, 0)
    re, ce = min(r0 + side, shape[0]), min(c0 + side, shape[1])
    if re > rs and ce > cs:
        out[rs:re, cs:ce] = square[rs - r0:re - r0, cs - c0:ce - c0]
    return out


@dataclass
class PendingHeatmaps:
    """What Grad-CAM needs after the analysis: the classifier and its input, and per explained view
    the shape of the image the classifier saw, its flips to reading orientation and its full size."""

    model: torch.nn.Module
    views_in: torch.Tensor  # [V, C, S, S]: the affected CC, MLO (then the contralateral pair)
    keys: tuple[str | None, str | None]  # view key of the first two inputs, None where no map goes
    level_shapes: dict[str, tuple[int, int]]
    flips: dict[str, tuple[bool, bool]]
    full_shapes: dict[str, tuple[int, int]]
    method: str
    target: str
    cam: CamResult | None = None  # already computed in the classification's own forward pass
    lock: Any = None  # the analyzer's: its models serve one analysis at a time
    # view key -> (row0, col0, side) of a lesion-centred classifier input in the level (reading orientation)
    crop_boxes: dict[str, tuple[int, int, int]] = field(default_factory=dict)

    def compute(self, cancel: CancelToken | None = None, progress: ProgressCallback | None = None) -> Heatmaps:
        t = time.perf_counter()
        cam = self.cam
        if cam is None:
            with self.lock or nullcontext(), cancellable(self.model, cancel):
                cam = explain_views(self.model, self.views_in, None, self.method, self.target, cancel=cancel)
        maps = {}
        for i, key in enumerate(self.keys):
            if key is None:
                continue
            # The classifier input is the image (or its lesion square) resized to a square, no letterbox,
            # so a plain resize maps back; then the flips to reading orientation are undone and the level
            # brought to full size.
            box = self.crop_boxes.get(key)
            heat = (resize_map(cam.maps[i], self.level_shapes[key]) if box is None
                    else paste(resize_map(cam.maps[i], (box[2], box[2])), box, self.level_shapes[key]))
            f = self.flips.get(key, (False, False))
            if f[0] or f[1]:
                heat = flip_array(heat, f)
            full = self.full_shapes.get(key)
            if full is not None and heat.shape != tuple(full):
                heat = resize_map(heat, full)
            maps[key] = heat
        warnings = [] if any(float(cam.maps[i].max()) > 0 for i in range(2)) else [EMPTY_CAM_WARNING]
        seconds = time.perf_counter() - t
        report(progress, "explain", 1.0)
        return Heatmaps(maps, "malignant" if cam.category == 1 else "benign", f"{self.method} @ {self.target}",
                        warnings, seconds)
