"""Plane geometry of contours: the one polygon area and longest diameter, in pixels or mm.

A contour is a sequence of (x, y) points in image pixels; ``spacing`` is the
pixel spacing as DICOM gives it, (row, column), so x scales by the column
spacing. With the default spacing the figures are in pixels.
"""

from __future__ import annotations

from typing import Sequence

import numpy as np


def _scaled(points: Sequence[Sequence[float]] | np.ndarray, spacing: tuple[float, float]) -> np.ndarray:
    pts = np.asarray(points, dtype=np.float64).reshape(-1, 2)
    return pts * np.array([spacing[1], spacing[0]], dtype=np.float64)


def polygon_area(points: Sequence[Sequence[float]] | np.ndarray, spacing: tuple[float, float] = (1.0, 1.0)) -> float:
    """Shoelace area of the closed polygon ``points``."""
    p = _scaled(points, spacing)
    if len(p) < 3:
        return 0.0
    x, y = p[:, 0], p[:, 1]
    return float(0.5 * abs(np.dot(x, np.roll(y, -1)) - np.dot(y, np.roll(x, -1))))


def max_diameter(points: Sequence[Sequence[float]] | np.ndarray, spacing: tuple[float, float] = (1.0, 1.0)) -> float:
    """Longest distance between two contour points (the size a reader measures)."""
    p = _scaled(points, spacing)
    if len(p) < 2:
        return 0.0
    d = p[:, None, :] - p[None, :, :]
    return float(np.sqrt((d ** 2).sum(-1)).max())
