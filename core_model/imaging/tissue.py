"""Where the breast is in a mammogram: the one tissue mask of the project, and its bounding box.

Every "is this breast or background?" question reads this module: the
chest-wall detector (:mod:`core_model.imaging.orientation`), the landmarks of
:mod:`core_model.imaging.location`, the viewer's fit-to-breast box and its
"contour outside the breast?" check, and the crop of the PDF report.

The mask: grey levels are scaled to the image's 1st..99.5th percentile range
and a pixel is tissue above 3 % of that range; small specks are opened away,
holes (dark fat between dense strands) are filled, and only the largest
connected region is kept, so a lead marker or a burnt-in label is not breast.

Why this one: it was the chest-wall detector's; the viewer's fit box used
10 % of the 1st..99th range with no clean-up, the report's crop 5 % of the
display range. On the demo study (``resources/demo``) and ``tests/data`` the
3 % outline is 0-5 px (of 512) wider at the fatty border than the 10 % box,
and the largest-region rule keeps the "R CC" label of the NYU images out: the
old viewer box reached the label at the image edge (x1 = 248 px of 250 on
R-CC, the breast ends at 146). The orientation, location, hanging, report and
viewer tests pass on those images with it. The mask is padded by its edge
pixels before the opening, so a breast cut by the detector edge still reaches
the image edge.
"""

from __future__ import annotations

import numpy as np
from scipy import ndimage

# Work on at most this many pixels along the longer side: the outline is coarse anyway, and a
# full-field image as float32 would be 50 MB for nothing.
WORK_SIZE = 256
# Tissue threshold, as a fraction of the image's 1st..99.5th percentile range.
TISSUE_LEVEL = 0.03
_PAD = 4  # > the 2 iterations of opening and closing


def tissue_mask(pixels: np.ndarray) -> tuple[np.ndarray, int]:
    """(breast outline mask, step): the mask is sampled every ``step`` pixels of ``pixels``.

    ``pixels`` is one 2-D image, tissue brighter than background (MONOCHROME2
    sense), any numeric dtype; an image with no breast gives an empty mask.
    """
    px = np.asarray(pixels)
    if px.ndim != 2:
        raise ValueError(f"expected a 2-D greyscale image, got shape {px.shape}")
    step = max(1, int(np.ceil(max(px.shape) / WORK_SIZE)))
    small = px[::step, ::step].astype(np.float32)  # subsample before converting
    lo, hi = np.percentile(small, [1.0, 99.5])
    if hi <= lo:
        return np.zeros(small.shape, dtype=bool), step
    # Padded by copying the edge: the breast is cut by the detector edge at the chest wall, and
    # the opening must not eat into it there (the box would stop short of the image edge).
    mask = np.pad((small - lo) > TISSUE_LEVEL * (hi - lo), _PAD, mode="edge")
    mask = ndimage.binary_opening(mask, iterations=2)
    mask = ndimage.binary_fill_holes(ndimage.binary_closing(mask, iterations=2))[_PAD:-_PAD, _PAD:-_PAD]
    labels, n = ndimage.label(mask)
    if n == 0:
        return mask, step
    sizes = ndimage.sum(mask, labels, index=np.arange(1, n + 1))
    return labels == (1 + int(np.argmax(sizes))), step


def tissue_bbox(pixels: np.ndarray) -> tuple[float, float, float, float]:
    """(x0, y0, x1, y1) of the breast in pixel units of ``pixels``; the whole frame when none is found.

    Resized or padded images (the CDD-CESM subset) have black margins, so the
    breast does not always reach the image edges.
    """
    h, w = np.asarray(pixels).shape
    mask, step = tissue_mask(pixels)
    cols = np.flatnonzero(mask.any(axis=0))
    rows = np.flatnonzero(mask.any(axis=1))
    if cols.size == 0 or rows.size == 0:
        return 0.0, 0.0, float(w), float(h)
    return (float(cols[0] * step), float(rows[0] * step),
            float(min(w, (cols[-1] + 1) * step)), float(min(h, (rows[-1] + 1) * step)))


def on_tissue(pixels: np.ndarray, xy: np.ndarray) -> np.ndarray:
    """For each (x, y) point in pixel units of ``pixels``: does it lie on the breast? (outside the image: no)"""
    mask, step = tissue_mask(pixels)
    xy = np.asarray(xy, dtype=float).reshape(-1, 2)
    h, w = np.asarray(pixels).shape
    inside = (xy[:, 0] >= 0) & (xy[:, 0] < w) & (xy[:, 1] >= 0) & (xy[:, 1] < h)
    cols = np.clip((xy[:, 0] // step).astype(int), 0, mask.shape[1] - 1)
    rows = np.clip((xy[:, 1] // step).astype(int), 0, mask.shape[0] - 1)
    return inside & mask[rows, cols]
