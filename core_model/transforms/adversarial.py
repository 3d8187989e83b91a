"""Contralateral adversarial samples (Eq. 9, Figure 3).

The lesion of the affected breast is pasted onto the mirrored position of the
contralateral (unaffected) breast image of the same view through a soft
contour mask ``alpha``:

    F(x, y) = alpha * O(x, y) + (1 - alpha) * R(x, y)          # Eq. 9

with ``O`` the (horizontally mirrored) affected image and ``R`` the
contralateral image. Left and right breasts are mirror images across the
vertical axis, so a box at columns [x0, x1] on one side maps to
[W-1-x1, W-1-x0] on the other; the pasted patch is mirrored too so its
orientation to the chest wall is kept.

``alpha`` is 1 on the lesion and falls linearly to 0 over ``feather`` pixels
outside its contour (a distance-transform ramp): pixels farther than
``feather`` from the lesion are exactly the contralateral image, so the paste
has no hard edge and touches nothing else.

After fusing, the lesion box is moved by a small random offset (``jitter``, a
fraction of the box size in each axis, at least one pixel when jitter > 0):
the paper "fine-tunes the coordinates of the lesion bounding box to introduce
slight misalignments". The returned ``moved_mask`` is that shifted lesion
mask; the caller builds the sample's position mask (Eq. 8) from it, so the
network sees the pasted lesion with a slightly wrong position prior.
"""

from __future__ import annotations

import numpy as np
from scipy import ndimage

from core_model.transforms.position_mask import lesion_box

DEFAULT_JITTER = 0.1  # fraction of the lesion box size
DEFAULT_FEATHER = 0.15  # soft-contour width as a fraction of the larger box side (at least 2 px)


def soft_contour_mask(lesion_mask: np.ndarray, feather: float) -> np.ndarray:
    """alpha of Eq. 9: 1 on the lesion, linear ramp to 0 over ``feather`` pixels outside it."""
    lesion = lesion_mask > 0
    if not lesion.any():
        return np.zeros(lesion.shape, dtype=np.float32)
    dist_out = ndimage.distance_transform_edt(~lesion)  # 0 on the lesion
    return np.clip(1.0 - dist_out / max(feather, 1e-6), 0.0, 1.0).astype(np.float32)


def _shift(mask: np.ndarray, dy: int, dx: int) -> np.ndarray:
    out = np.zeros_like(mask)
    h, w = mask.shape
    ys, yd = (slice(0, h - dy), slice(dy, h)) if dy >= 0 else (slice(-dy, h), slice(0, h + dy))
    xs, xd = (slice(0, w - dx), slice(dx, w)) if dx >= 0 else (slice(-dx, w), slice(0, w + dx))
    out[yd, xd] = mask[ys, xs]
    return out


def contralateral_sample(
    affected_img: np.ndarray,
    lesion_mask: np.ndarray,
    contralateral_img: np.ndarray,
    rng: np.random.Generator,
    jitter: float = DEFAULT_JITTER,
    feather: float | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """Eq. 9: return (fused contralateral image float32, jittered lesion mask bool at the mirrored place).

    All three arrays must have the same 2-D shape (resize first). ``feather``
    is in pixels; None picks ``DEFAULT_FEATHER`` of the larger box side.
    With an empty lesion mask the contralateral image is returned unchanged
    with an empty mask.
    """
    if not (affected_img.shape == lesion_mask.shape == contralateral_img.shape) or affected_img.ndim != 2:
        raise ValueError(
            f"affected image {affected_img.shape}, lesion mask {lesion_mask.shape} and contralateral image "
            f"{contralateral_img.shape} must be 2-D and the same size"
        )
    lesion = lesion_mask > 0
    contra = contralateral_img.astype(np.float32)
    box = lesion_box(lesion)
    if box is None:
        return contra.copy(), np.zeros(lesion.shape, dtype=bool)
    y0, y1, x0, x1 = box
    if feather is None:
        feather = max(2.0, DEFAULT_FEATHER * max(y1 - y0 + 1, x1 - x0 + 1))
    # Mirror the affected image and its lesion onto the contralateral geometry.
    mirrored_img = affected_img[:, ::-1].astype(np.float32)
    mirrored_lesion = lesion[:, ::-1]
    alpha = soft_contour_mask(mirrored_lesion, feather)
    fused = alpha * mirrored_img + (1.0 - alpha) * contra  # Eq. 9
    # Jitter the box coordinates (the position prior), not the pasted pixels.
    dy = dx = 0
    if jitter > 0:
        hy = max(1, int(round(jitter * (y1 - y0 + 1))))
        hx = max(1, int(round(jitter * (x1 - x0 + 1))))
        while dy == 0 and dx == 0:
            dy = int(rng.integers(-hy, hy + 1))
            dx = int(rng.integers(-hx, hx + 1))
    moved = _shift(mirrored_lesion, dy, dx)
    return fused.astype(np.float32), moved
