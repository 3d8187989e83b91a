"""The pectoral muscle's edge on an MLO view, as a straight line, or None when it is not clearly seen.

Pure numpy/scipy, no model. Works in the *canonical frame* of
:mod:`core_model.imaging.location` (chest wall on the left edge, superior at
the top), on the coarse grid of the tissue mask
(:func:`core_model.imaging.tissue.tissue_mask`). On an MLO the muscle is a
bright triangle in the upper-left corner; its edge runs from the top edge
down and back to the chest-wall edge.

Per row of the upper breast, the edge is taken where the brightness falls
most steeply from left to right within the inner part of the breast; a line
is fitted through those points robustly (RANSAC on the column as a function
of the row, then least squares on the agreeing rows). The line is kept only
when it is plausible, else the caller keeps the image edge:

- it slants down and back: it meets the top of the breast in its inner part
  and the chest-wall edge below that;
- its angle to the vertical lies in a sensible range;
- enough rows agree with it;
- the tissue on its chest-wall side (the muscle) is brighter than the band
  in front of it.

A view without a clear, straight muscle edge (a CC view, an MLO cropped at
the chest wall, a faint strip) fails these tests, and its depth stays
measured to the image edge.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy import ndimage

from core_model.imaging.tissue import tissue_mask

# Rows searched: from the top of the breast down to this share of its height (the muscle
# rarely reaches lower; below it the gland's own edges would be taken).
SEARCH_DEPTH = 0.75
# Columns searched per row: up to this share of the breast's width in that row.
SEARCH_WIDTH = 0.6
# Angle of the line to the vertical, degrees: steeper is a skin fold, flatter a gland edge.
MIN_ANGLE, MAX_ANGLE = 1.0, 70.0
MIN_TOP_CELLS = 10  # the muscle is at least this many cells wide at the top (of at most 256)
MIN_SPAN = 0.15  # the muscle edge is seen over at least this share of the breast's height
MIN_ROWS = 12  # agreeing rows (mask cells), below this the line is not trusted
MIN_SUPPORT = 0.45  # share of the rows the line spans that agree with it
MAX_GAP_CELLS = 12  # the muscle edge is followed down until this many rows in a row disagree
INLIER_CELLS = 2.5  # a row agrees when its edge lies within this many cells of the line
# Muscle must be brighter than the band in front of it by this share of the breast's grey range.
MIN_CONTRAST = 0.12
BAND_CELLS = 6  # width of the band in front of the line that the muscle is compared with
_TRIALS = 300


@dataclass(frozen=True)
class PectoralLine:
    """The muscle edge in canonical pixels of the image it was found on: x = slope * y + x_top.

    ``top`` is where it meets the top of the breast; ``low`` where it meets the chest-wall edge, or,
    when the muscle fades out before, the last row its edge is seen on (both (x, y)); ``support``
    the share of those rows agreeing, ``contrast`` the muscle's grey level minus the front band's.
    """

    slope: float
    x_top: float
    top: tuple[float, float]
    low: tuple[float, float]
    support: float
    contrast: float


def _fit(ys: np.ndarray, xs: np.ndarray, rng: np.random.Generator) -> tuple[float, float, np.ndarray] | None:
    """RANSAC x = a*y + b with a < 0, then least squares on the inliers: (a, b, inlier mask)."""
    n = len(ys)
    best = None
    for _ in range(_TRIALS):
        i, j = rng.choice(n, 2, replace=False)
        if ys[i] == ys[j]:
            continue
        a = (xs[j] - xs[i]) / (ys[j] - ys[i])
        if a >= 0:
            continue
        b = xs[i] - a * ys[i]
        inl = np.abs(xs - (a * ys + b)) <= INLIER_CELLS
        if best is None or inl.sum() > best.sum():
            best = inl
    if best is None or best.sum() < 2:
        return None
    a, b = np.polyfit(ys[best], xs[best], 1)
    inl = np.abs(xs - (a * ys + b)) <= INLIER_CELLS
    if inl.sum() >= 2:
        a, b = np.polyfit(ys[inl], xs[inl], 1)
    return float(a), float(b), inl


def find_pectoral(canon: np.ndarray) -> PectoralLine | None:
    """The pectoral line of an MLO image in the canonical frame (pixels of ``canon``), or None."""
    return detect_pectoral(canon)[0]


def detect_pectoral(canon: np.ndarray) -> tuple[PectoralLine | None, str]:
    """(line or None, why): the line as :func:`find_pectoral`, and which test rejected it ("" when accepted)."""
    mask, step = tissue_mask(canon)
    if mask.sum() < 64:
        return None, "no breast"
    small = np.asarray(canon)[::step, ::step].astype(np.float32)[: mask.shape[0], : mask.shape[1]]
    lo, hi = np.percentile(small[mask], [1.0, 99.0])
    if hi <= lo:
        return None, "flat image"
    img = ndimage.gaussian_filter((small - lo) / (hi - lo), 1.0)
    gx = ndimage.sobel(img, axis=1)  # > 0: brighter to the right
    rows = np.flatnonzero(mask.any(axis=1))
    top_row, bottom_row = int(rows[0]), int(rows[-1])
    height = bottom_row - top_row + 1
    last = top_row + int(SEARCH_DEPTH * height)
    ys, xs = [], []
    for r in range(top_row, last + 1):
        cols = np.flatnonzero(mask[r])
        if cols.size < 8:
            continue
        c0 = int(cols[0]) + 2  # skip the chest-wall edge itself
        c1 = int(cols[0] + SEARCH_WIDTH * (cols[-1] - cols[0]))
        if c1 - c0 < 4:
            continue
        seg = gx[r, c0:c1]
        k = int(np.argmin(seg))  # steepest fall from bright (muscle) to darker (breast)
        if seg[k] < -0.02:
            ys.append(r)
            xs.append(c0 + k)
    if len(ys) < MIN_ROWS:
        return None, "too few edge rows"
    ys_a, xs_a = np.asarray(ys, float), np.asarray(xs, float)
    fit = _fit(ys_a, xs_a, np.random.default_rng(0))  # seeded: the same image gives the same line
    if fit is None:
        return None, "no line slanting down and back"
    a, b, inl = fit
    if a >= 0:
        return None, "line slants the wrong way"
    angle = float(np.degrees(np.arctan(-a)))  # to the vertical
    if not MIN_ANGLE <= angle <= MAX_ANGLE:
        return None, f"angle {angle:.0f} deg"
    wall_x = float(np.flatnonzero(mask.any(axis=0))[0])  # the chest-wall edge of the breast
    x_at_top = a * top_row + b
    y_at_wall = (wall_x - b) / a
    width = float(np.flatnonzero(mask[top_row:last + 1].any(axis=0))[-1]) - wall_x
    # meets the top in the inner part of the breast, and the chest wall below it
    if not wall_x + MIN_TOP_CELLS <= x_at_top <= wall_x + SEARCH_WIDTH * width:
        return None, f"meets the top at {x_at_top - wall_x:.0f} cells from the chest wall"
    if y_at_wall < top_row + MIN_SPAN * height:
        return None, "meets the chest wall too high"
    # the rows the line is judged on: down to the chest wall or to its last agreeing row
    agree = np.sort(ys_a[inl])
    judged_to = min(y_at_wall, float(agree[-1]))
    spanned = ys_a <= judged_to
    n_in = int((inl & spanned).sum())
    support = n_in / max(int(spanned.sum()), 1)
    if judged_to < top_row + MIN_SPAN * height or n_in < MIN_ROWS or support < MIN_SUPPORT:
        return None, f"{n_in} agreeing rows, support {support:.2f}"
    # where the muscle edge is last seen: an agreeing row after a long gap is a gland edge that
    # happens to lie on the line, so the drawn line stops before it (the depth uses the whole line)
    gaps = np.flatnonzero(np.diff(agree) > MAX_GAP_CELLS)
    seen_to = min(judged_to, float(agree[gaps[0]])) if gaps.size else judged_to
    # muscle (between the chest wall and the line) vs the band just in front of it, over the seen rows
    rr, cc = np.mgrid[0:mask.shape[0], 0:mask.shape[1]]
    line_x = a * rr + b
    rows_ok = (rr >= top_row) & (rr <= judged_to)
    muscle = mask & rows_ok & (cc < line_x - 1) & (cc > wall_x + 1)
    front = mask & rows_ok & (cc > line_x + 1) & (cc <= line_x + BAND_CELLS)
    if muscle.sum() < 10 or front.sum() < 10:
        return None, "muscle or front band too small"
    contrast = float(np.median(img[muscle]) - np.median(img[front]))
    if contrast < MIN_CONTRAST:
        return None, f"contrast {contrast:.2f}"
    # back to pixels of ``canon``: cell (r, c) is the sample at pixel (step * r, step * c), as the
    # tissue mask takes every step-th pixel
    slope = float(a)
    x_top = float(b * step)
    top = (float(x_at_top * step), float(top_row * step))
    low = (float((a * seen_to + b) * step), float(seen_to * step))
    return PectoralLine(slope=slope, x_top=x_top, top=top, low=low, support=round(support, 3),
                        contrast=round(contrast, 3)), ""
