"""The one image preparation shared by training and inference.

Order, everywhere: ``normalize_image`` on the full-size source pixels, then
``Letterbox.apply`` into the model input. Training (core_model.train.seg_data)
and the analyzer call exactly these functions, and a model card's
``preprocessing`` field (see :func:`preprocessing_card`) records the input
size, channels and normalisation, so a mismatch is visible.

Coordinates: points are ``(x, y)`` arrays in pixel-index units (pixel centres
at integers, x = column, y = row), the convention of ``align_corners=False``
resampling. ``Letterbox.to_model`` and ``Letterbox.to_source`` are exact
inverses of each other.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F

# Robust percentiles: the breast occupies a minority of a mammogram, so min/max
# would follow a few hot pixels (markers, clips); percentiles over the whole
# image keep the tissue range stable across 8-bit JPEG and 12-14-bit DICOM.
NORM_LOW_PCT = 0.5
NORM_HIGH_PCT = 99.5
NORMALIZATION = f"clip to [p{NORM_LOW_PCT}, p{NORM_HIGH_PCT}] of the source image (or the given window), scale to [0, 1]"


def normalize_image(pixels: np.ndarray, window: tuple[float, float] | None = None) -> np.ndarray:
    """Source pixels -> float32 in [0, 1].

    ``window`` = (low, high) in source units (e.g. a DICOM window) overrides the
    robust percentiles. A constant image maps to zeros (nothing to see, not NaN).
    """
    a = np.asarray(pixels, dtype=np.float32)
    if window is not None:
        lo, hi = float(window[0]), float(window[1])
    else:
        lo, hi = (float(v) for v in np.percentile(a, [NORM_LOW_PCT, NORM_HIGH_PCT]))
    if not np.isfinite(lo) or not np.isfinite(hi) or hi <= lo:
        return np.zeros_like(a, dtype=np.float32)
    return np.clip((a - lo) / (hi - lo), 0.0, 1.0).astype(np.float32)


def resize_bilinear(arr: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """Bilinear resize of (..., h, w) float arrays; antialiased when shrinking."""
    a = np.asarray(arr, dtype=np.float32)
    lead = a.shape[:-2]
    size = (int(size[0]), int(size[1]))
    t = torch.from_numpy(np.ascontiguousarray(a)).reshape(1, -1, *a.shape[-2:])
    shrink = size[0] < a.shape[-2] or size[1] < a.shape[-1]
    out = F.interpolate(t, size=size, mode="bilinear", align_corners=False, antialias=shrink)
    return out.reshape(*lead, *size).numpy()


def resize_map(m: np.ndarray, shape: tuple[int, int]) -> np.ndarray:
    """A [0, 1] map (probability, heatmap) at ``shape``, bilinear and kept in [0, 1]."""
    out = resize_bilinear(m, shape)
    return np.clip(out, 0.0, 1.0, out=out)  # in place: a full-size map is 13 MP, no second copy


def resize_nearest(m: np.ndarray, shape: tuple[int, int]) -> np.ndarray:
    """``m`` (a mask, a label map) at ``shape``: each output pixel takes the input pixel under its centre."""
    rows = ((2 * np.arange(shape[0]) + 1) * m.shape[0] // (2 * shape[0]))[:, None]
    cols = ((2 * np.arange(shape[1]) + 1) * m.shape[1] // (2 * shape[1]))[None, :]
    return m[rows, cols]


@dataclass(frozen=True)
class Letterbox:
    """Aspect-preserving resize of a source image into the model input, with padding.

    The scaled image sits centred in ``dst_shape``; ``top``/``left`` are the
    padding before it, ``new_shape`` its size inside the model input.
    """

    src_shape: tuple[int, int]
    dst_shape: tuple[int, int]
    new_shape: tuple[int, int]
    top: int
    left: int

    @classmethod
    def fit(cls, src_shape: tuple[int, int], dst_shape: tuple[int, int]) -> "Letterbox":
        h, w = int(src_shape[0]), int(src_shape[1])
        H, W = int(dst_shape[0]), int(dst_shape[1])
        if min(h, w, H, W) <= 0:
            raise ValueError(f"empty shape: src {src_shape}, dst {dst_shape}")
        s = min(H / h, W / w)
        nh, nw = min(H, max(1, round(h * s))), min(W, max(1, round(w * s)))
        return cls((h, w), (H, W), (nh, nw), (H - nh) // 2, (W - nw) // 2)

    @property
    def scale_xy(self) -> np.ndarray:
        """Per-axis scale (x, y); they differ by at most rounding."""
        return np.array([self.new_shape[1] / self.src_shape[1], self.new_shape[0] / self.src_shape[0]])

    def apply(self, img: np.ndarray, pad_value: float = 0.0) -> np.ndarray:
        """(..., h, w) source -> (..., H, W) float32 model input."""
        img = np.asarray(img)
        if tuple(img.shape[-2:]) != self.src_shape:
            raise ValueError(f"image shape {img.shape[-2:]} is not the letterbox source {self.src_shape}")
        out = np.full((*img.shape[:-2], *self.dst_shape), pad_value, dtype=np.float32)
        nh, nw = self.new_shape
        out[..., self.top:self.top + nh, self.left:self.left + nw] = resize_bilinear(img, (nh, nw))
        return out

    def invert_map(self, map_dst: np.ndarray) -> np.ndarray:
        """(..., H, W) model-space map (e.g. probabilities) -> (..., h, w) source space."""
        m = np.asarray(map_dst, dtype=np.float32)
        if tuple(m.shape[-2:]) != self.dst_shape:
            raise ValueError(f"map shape {m.shape[-2:]} is not the letterbox output {self.dst_shape}")
        nh, nw = self.new_shape
        crop = m[..., self.top:self.top + nh, self.left:self.left + nw]
        return resize_bilinear(crop, self.src_shape)

    def to_model(self, xy: np.ndarray) -> np.ndarray:
        """Source (x, y) points -> model-input (x, y) points."""
        p = np.asarray(xy, dtype=np.float64)
        return (p + 0.5) * self.scale_xy - 0.5 + np.array([self.left, self.top])

    def to_source(self, xy: np.ndarray) -> np.ndarray:
        """Model-input (x, y) points -> source (x, y) points."""
        p = np.asarray(xy, dtype=np.float64)
        return (p - np.array([self.left, self.top]) + 0.5) / self.scale_xy - 0.5


def preprocessing_card(input_size: tuple[int, int], channels: tuple[str, ...]) -> dict:
    """The model card's ``preprocessing`` field."""
    return {
        "input_size": list(input_size),
        "channels": list(channels),
        "normalization": NORMALIZATION,
        "resize": "letterbox (aspect kept, centred, zero padding), bilinear, antialiased when shrinking",
        "order": "normalize_image on the source, then Letterbox.apply",
    }
