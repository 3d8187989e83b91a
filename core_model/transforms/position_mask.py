"""Lesion-enriched position mask (Algorithm 1 line 4, Eq. 8).

The classifier does not see a raw mammogram: each view is multiplied by a mask
that keeps the lesion at full intensity and fades the rest of the breast with
distance from the lesion, so the network attends to the mass and its
surroundings (paper, "The Breast Mass Classification").

    M(x, y) = 1                                    inside the lesion R
            = 0.9                                  inside R's bounding box, outside R
            = max(0, 0.9 * (1 - d(x, y) / (decay * diag)))   outside the box

where ``d`` is the Euclidean distance (pixels) from the bounding box of R, so
the mask is continuous at the box edge: it starts at 0.9 there and falls to 0
(Algorithm 1: "decreasing from 0.9 to 0 with distance" from the lesion's box),
and ``diag`` the image diagonal. The paper does not give the fall-off length;
we make it a fraction of the image diagonal so the same mask results at any
resolution. With the default ``decay=0.1`` the mask reaches 0 a tenth of the
image diagonal outside the box (about 66 px on a 512 x 416 image, 16 px at a
112 px network input): a spotlight of a few lesion radii around the mass, so
the tissue around the lesion is kept and the rest of the breast is nearly black.
The value was chosen with a linear probe on synthetic studies (an earlier
random backbone, distance then taken from the lesion centroid); that
measurement was not kept and has not been repeated with the current backbone
(docs/classification.md).

An empty lesion mask (no lesion found) gives an all-ones mask: the image is
passed unchanged, which is the honest thing to do when there is no position to
enrich; callers that need a lesion should check ``lesion_mask.any()``.
"""

from __future__ import annotations

import numpy as np

DEFAULT_DECAY = 0.1  # fraction of the image diagonal at which the mask reaches 0
BOX_VALUE = 0.9  # Algorithm 1 line 4


def lesion_box(lesion_mask: np.ndarray) -> tuple[int, int, int, int] | None:
    """(y_min, y_max, x_min, x_max), inclusive, of the lesion pixels; None when empty (Algorithm 1 line 3)."""
    ys, xs = np.nonzero(lesion_mask)
    if ys.size == 0:
        return None
    return int(ys.min()), int(ys.max()), int(xs.min()), int(xs.max())


def position_mask(lesion_mask: np.ndarray, decay: float = DEFAULT_DECAY) -> np.ndarray:
    """Algorithm 1 line 4: float32 mask of ``lesion_mask``'s shape (any nonzero pixel is lesion)."""
    if lesion_mask.ndim != 2:
        raise ValueError(f"lesion mask must be 2-D, got shape {lesion_mask.shape}")
    if decay <= 0:
        raise ValueError(f"decay must be positive, got {decay}")
    lesion = lesion_mask > 0
    box = lesion_box(lesion)
    if box is None:
        return np.ones(lesion.shape, dtype=np.float32)
    h, w = lesion.shape
    y0, y1, x0, x1 = box
    yy, xx = np.mgrid[0:h, 0:w]
    # distance to the box (0 inside it): the fall-off starts at the box edge, not at the centre
    dy = np.maximum(np.maximum(y0 - yy, yy - y1), 0)
    dx = np.maximum(np.maximum(x0 - xx, xx - x1), 0)
    dist = np.hypot(dy, dx)
    diag = float(np.hypot(h, w))
    m = np.clip(BOX_VALUE * (1.0 - dist / (decay * diag)), 0.0, BOX_VALUE)
    m[lesion] = 1.0
    return m.astype(np.float32)


def apply_position_mask(image: np.ndarray, lesion_mask: np.ndarray, decay: float = DEFAULT_DECAY) -> np.ndarray:
    """Eq. 8: D = I o M (element-wise), float32."""
    if image.shape[-2:] != lesion_mask.shape:
        raise ValueError(f"image {image.shape} and lesion mask {lesion_mask.shape} differ in size")
    return (image.astype(np.float32, copy=False) * position_mask(lesion_mask, decay)).astype(np.float32)
