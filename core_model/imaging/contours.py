"""Segmentation probability map -> lesion mask and polygons in original image pixels.

Coordinates follow :mod:`core_model.domain.analysis`: ``(x, y) = (column, row)`` with
pixel centres at integer coordinates, in the pixels of the study image the map
belongs to. Contours are traced on the probability map itself (marching
squares at the threshold, sub-pixel), one outer polygon per connected lesion.
"""

from __future__ import annotations

import numpy as np
from contourpy import LineType, contour_generator
from scipy import ndimage

from core_model.domain.analysis import Lesion

THRESHOLD = 0.5
# Specks below this area are dropped. It is counted in pixels of the model
# input (a 4 x 4 patch at the model's resolution) and scaled to the original
# image, so the rule does not depend on the file's resolution: at a 256-pixel
# model input that is ~0.025 % of the image side squared, far below the
# smallest mass a reader would outline (a 5 mm mass is > 0.1 %).
MIN_LESION_AREA_INPUT_PX = 16.0
# Polygons are simplified to this tolerance (original pixels) to keep the JSON
# small; far below what a reader can see at any zoom that shows the breast.
SIMPLIFY_TOLERANCE_PX = 0.5


def min_area_for_scale(scale: float) -> float:
    """Minimum lesion area in original pixels when one model-input pixel is ``1/scale`` original pixels.

    ``scale`` = model-input pixels per original pixel (< 1 when the image was shrunk).
    """
    return MIN_LESION_AREA_INPUT_PX / max(scale, 1e-9) ** 2


def _components(probability: np.ndarray, threshold: float, min_area_px: float,
                min_score: float) -> tuple[np.ndarray, tuple[slice, slice], int]:
    """(labels 1..n of the kept components inside ``box``, ``box``, n): the work of :func:`lesion_mask`
    on the bounding box of the thresholded pixels only, which holds every component (a full-size
    mammogram is 13 MP; a lesion's box a few thousand pixels)."""
    binary = probability >= threshold
    rows, cols = np.flatnonzero(binary.any(axis=1)), np.flatnonzero(binary.any(axis=0))
    if rows.size == 0:
        return np.zeros((0, 0), np.int32), (slice(0, 0), slice(0, 0)), 0
    box = (slice(rows[0], rows[-1] + 1), slice(cols[0], cols[-1] + 1))
    labels, n = ndimage.label(binary[box], structure=np.ones((3, 3), bool))
    areas = np.bincount(labels.ravel(), minlength=n + 1)
    keep = areas >= min_area_px
    if min_score > 0:
        sums = np.bincount(labels.ravel(), weights=probability[box].ravel().astype(np.float64), minlength=n + 1)
        keep &= sums / np.maximum(areas, 1) >= min_score
    keep[0] = False
    # relabel kept components 1..k in order of first appearance
    new_ids = np.zeros(n + 1, np.int32)
    new_ids[keep] = np.arange(1, int(keep.sum()) + 1, dtype=np.int32)
    return new_ids[labels], box, int(keep.sum())


def lesion_mask(probability: np.ndarray, threshold: float = THRESHOLD, min_area_px: float = 0.0,
                min_score: float = 0.0) -> tuple[np.ndarray, np.ndarray, int]:
    """Threshold and drop components smaller than ``min_area_px`` or less certain than ``min_score``
    (mean probability inside the component).

    Returns (mask uint8 {0,1}, component labels int32, number of components kept).
    """
    labels, box, n = _components(probability, threshold, min_area_px, min_score)
    full = np.zeros(probability.shape, np.int32)
    full[box] = labels
    return (full > 0).astype(np.uint8), full, n


def _simplify(points: np.ndarray, tol: float) -> np.ndarray:
    """Ramer-Douglas-Peucker on a closed ring (first point not repeated)."""
    if len(points) <= 8 or tol <= 0:
        return points

    def rdp(p: np.ndarray) -> np.ndarray:
        stack = [(0, len(p) - 1)]
        keep = np.zeros(len(p), bool)
        keep[0] = keep[-1] = True
        while stack:
            i0, i1 = stack.pop()
            if i1 <= i0 + 1:
                continue
            a, b = p[i0], p[i1]
            seg = b - a
            norm = np.hypot(*seg)
            rel = p[i0 + 1 : i1] - a
            if norm < 1e-12:
                d = np.hypot(rel[:, 0], rel[:, 1])
            else:
                d = np.abs(seg[0] * rel[:, 1] - seg[1] * rel[:, 0]) / norm
            j = int(np.argmax(d))
            if d[j] > tol:
                k = i0 + 1 + j
                keep[k] = True
                stack += [(i0, k), (k, i1)]
        return p[keep]

    # split the ring at the point farthest from the first so both halves are open chains
    far = int(np.argmax(np.hypot(*(points - points[0]).T)))
    ring = np.vstack([points, points[:1]])
    out = np.vstack([rdp(ring[: far + 1])[:-1], rdp(ring[far:])[:-1]])
    return out if len(out) >= 3 else points


def _outer_ring(z: np.ndarray, level: float) -> np.ndarray | None:
    gen = contour_generator(z=z, line_type=LineType.Separate)
    best, best_area = None, -1.0
    for line in gen.lines(level):
        if len(line) < 4:
            continue
        x, y = line[:, 0], line[:, 1]
        area = 0.5 * abs(np.dot(x, np.roll(y, -1)) - np.dot(y, np.roll(x, -1)))
        if area > best_area:
            best, best_area = line, area
    if best is None:
        return None
    if np.allclose(best[0], best[-1]):
        best = best[:-1]
    return best


def lesions_from_probability(
    probability: np.ndarray,
    threshold: float = THRESHOLD,
    min_area_px: float = 0.0,
    simplify_px: float = SIMPLIFY_TOLERANCE_PX,
    min_score: float = 0.0,
) -> tuple[np.ndarray, list[Lesion]]:
    """Mask and lesions (largest first) from a probability map in original pixels.

    Each lesion's polygon is the sub-pixel iso-line of ``probability`` at
    ``threshold`` around its connected component; ``score`` is the mean
    probability over the component's pixels, ``area_px`` its pixel count.
    """
    probability = np.asarray(probability, dtype=np.float32)
    box_labels, box, n = _components(probability, threshold, min_area_px, min_score)
    mask = np.zeros(probability.shape, np.uint8)
    mask[box] = box_labels > 0
    lesions: list[Lesion] = []
    if n == 0:
        return mask, lesions
    h, w = probability.shape
    # the box's labels with the 2-pixel margin each crop below takes (no full-size label image)
    padded = np.pad(box_labels, 2)
    o0, o1 = box[0].start - 2, box[1].start - 2
    for idx, sl in enumerate(ndimage.find_objects(box_labels), start=1):
        if sl is None:
            continue
        # from the box's coordinates to the image's
        sl = (slice(sl[0].start + box[0].start, sl[0].stop + box[0].start),
              slice(sl[1].start + box[1].start, sl[1].stop + box[1].start))
        r0, r1 = max(sl[0].start - 2, 0), min(sl[0].stop + 2, h)
        c0, c1 = max(sl[1].start - 2, 0), min(sl[1].stop + 2, w)
        comp = padded[r0 - o0:r1 - o0, c0 - o1:c1 - o1] == idx
        # The real probabilities keep the iso-line sub-pixel exact; pixels of
        # other components in the crop are held just under the threshold so
        # they draw no line, and a zero border closes lines at the image edge.
        crop = probability[r0:r1, c0:c1]
        z = np.pad(np.where(comp, crop, np.minimum(crop, np.float32(threshold) * 0.999)), 1)
        ring = _outer_ring(z, threshold)
        if ring is None:
            continue
        ring = ring + np.array([c0 - 1, r0 - 1], dtype=np.float64)
        ring[:, 0] = np.clip(ring[:, 0], -0.5, w - 0.5)
        ring[:, 1] = np.clip(ring[:, 1], -0.5, h - 0.5)
        ring = _simplify(ring, simplify_px)
        rows, cols = np.nonzero(comp)
        lesions.append(
            Lesion(
                polygon=ring.astype(np.float32),
                score=float(probability[r0:r1, c0:c1][comp].mean()),
                area_px=float(comp.sum()),
                bbox=(float(c0 + cols.min()), float(r0 + rows.min()), float(c0 + cols.max()), float(r0 + rows.max())),
            )
        )
    lesions.sort(key=lambda les: les.area_px, reverse=True)
    return mask, lesions
