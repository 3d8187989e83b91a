"""Display-ready images: hanging flips, a resolution pyramid and window -> levels (pure numpy).

A 3328x4096 mammogram is 13.6 M pixels; redrawing that for every window/level
or pan frame cannot stay under 16 ms on a small CPU. So each image keeps a
pyramid of 2x block-mean levels, and a panel draws the level whose pixels are
about the size of a screen pixel, cropped to what is visible; at high zoom
that is level 0, i.e. full resolution. Building the pyramid is numpy only, so
it runs in the loading worker thread.

A JPEG 2000 image (:class:`core_model.io.pyramid.LevelledStudyImage`) is
shown from its levels as the file gives them: the loading thread decodes only
the levels from about screen size (:data:`SCREEN_LONG_SIDE`) down; a finer
level, up to full resolution, is decoded when the zoom asks for it
(:meth:`DisplayImage.ensure`, called off the GUI thread by
:mod:`nafv_viewer.level_loader`), and until then the panel draws the nearest
level it has.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np

from core_model.domain.study import StudyImage
from core_model.imaging.tissue import tissue_bbox
from core_model.io.pyramid import ImagePyramid, LevelledStudyImage, half
from nafv_viewer.hanging import Flips, flips_for_image

# Coarsest level: about this many pixels on its long side.
_COARSEST = 256
# Levels with at most this many pixels are drawn whole; larger ones are cropped to the view.
WHOLE_LEVEL_MAX_PIXELS = 1_500_000
# A JPEG 2000 image is first decoded at the level with about this long side: what a 4-up panel
# draws (0.02 s for a 3328x4096 frame, 1024 px would take 0.1 s); finer levels follow the zoom.
SCREEN_LONG_SIDE = 512


@dataclass
class DisplayImage:
    """One study image in reading position, with its pyramid and display range (raw units)."""

    key: str
    energy: str
    flips: Flips
    levels: list[np.ndarray | None]  # levels[0] = flipped full-resolution view (no copy), then /2, /4, ...;
    # None: a level of a JPEG 2000 image not decoded yet (see ensure)
    raw_range: tuple[float, float]  # raw values mapped to window 0 and 1
    source_shape: tuple[int, int]
    raw: np.ndarray = field(repr=False, default=None)  # original pixels, for values under the cursor
    tissue_box: tuple[float, float, float, float] | None = None  # breast extent, display coordinates
    source: object = None  # the file it came from (a preview is kept when the study brings the same file)
    spacing_mm: tuple[float, float] | None = None  # (row, column) pixel spacing when the file gives it
    pyramid: ImagePyramid | None = field(repr=False, default=None)  # the file's levels, when decoded level by level

    @property
    def shape(self) -> tuple[int, int]:
        return self.source_shape

    def available(self, level: int) -> int:
        """``level`` when it is decoded, else the nearest finer decoded level, else the nearest coarser one."""
        level = max(0, min(level, len(self.levels) - 1))
        if self.levels[level] is not None:
            return level
        finer = [k for k in range(level) if self.levels[k] is not None]
        if finer:
            return max(finer)
        return min(k for k in range(level, len(self.levels)) if self.levels[k] is not None)

    def ensure(self, level: int) -> None:
        """Decode ``level`` (seconds for full resolution): call it off the GUI thread."""
        if self.levels[level] is None and self.pyramid is not None:
            self.levels[level] = self.flips.apply(self.pyramid.level(level))

    def levels_for(self, center: float, width: float) -> tuple[float, float]:
        """Window (centre, width in display-range units) -> raw (low, high) levels."""
        lo, hi = self.raw_range
        span = hi - lo
        return lo + (center - width / 2.0) * span, lo + (center + width / 2.0) * span

    def value_at(self, col: int, row: int) -> float:
        """The stored value at a source pixel (of the finest level decoded so far, for a JPEG 2000 image)."""
        if self.raw is not None:
            return float(self.raw[row, col])
        k = min(j for j in range(len(self.levels)) if self.pyramid.decoded(j))
        a = self.pyramid.level(k)
        return float(a[min(row >> k, a.shape[0] - 1), min(col >> k, a.shape[1] - 1)])

    def pick_level(self, visible_width_px: float, screen_width_px: float) -> int:
        """The level whose pixels are closest to screen pixels (0 = full resolution)."""
        if screen_width_px <= 0 or visible_width_px <= 0:
            return len(self.levels) - 1
        ratio = visible_width_px / screen_width_px
        level = int(round(math.log2(ratio))) if ratio > 1 else 0
        return max(0, min(level, len(self.levels) - 1))

    def crop(self, level: int, x0: float, y0: float, x1: float, y1: float, margin: float = 0.15):
        """The part of ``level`` covering scene box (x0, y0, x1, y1) plus a margin.

        Returns (array, (sx, sy, sw, sh)) with the scene rectangle the array covers.
        Small levels come back whole so most pans need no new crop.
        """
        img = self.levels[level]
        h, w = self.source_shape
        lh, lw = img.shape
        if lh * lw <= WHOLE_LEVEL_MAX_PIXELS:
            return img, (0.0, 0.0, float(w), float(h))
        fx, fy = lw / w, lh / h
        mx, my = (x1 - x0) * margin, (y1 - y0) * margin
        c0 = max(0, int(math.floor((x0 - mx) * fx)))
        c1 = min(lw, int(math.ceil((x1 + mx) * fx)))
        r0 = max(0, int(math.floor((y0 - my) * fy)))
        r1 = min(lh, int(math.ceil((y1 + my) * fy)))
        if c1 <= c0 or r1 <= r0:
            return img[:1, :1], (0.0, 0.0, 0.0, 0.0)
        return img[r0:r1, c0:c1], (c0 / fx, r0 / fy, (c1 - c0) / fx, (r1 - r0) / fy)

    def windowed_uint8(self, array: np.ndarray, center: float, width: float, invert: bool) -> np.ndarray:
        lo, hi = self.levels_for(center, width)
        out = (array.astype(np.float32) - lo) * (255.0 / max(hi - lo, 1e-6))
        np.clip(out, 0, 255, out=out)
        out = out.astype(np.uint8)
        return 255 - out if invert else out


def display_range(image: StudyImage, coarse: np.ndarray) -> tuple[float, float]:
    """Raw values that map to 0 and 1: the file's VOI window if any, else a robust min/max."""
    if image.window is not None and image.window[1] > 0:
        c, w = image.window
        return float(c - w / 2.0), float(c + w / 2.0)
    lo, hi = np.percentile(coarse, [0.1, 99.9])
    if hi <= lo:
        lo, hi = float(coarse.min()), float(coarse.max()) + 1.0
    return float(lo), float(hi)


def build_display_image(image: StudyImage, key: str | None = None, flips: Flips | None = None,
                        screen_long_side: int = SCREEN_LONG_SIDE) -> DisplayImage:
    """``flips`` overrides the hanging rules (the reader corrected a badly hung view)."""
    flips = flips or flips_for_image(image)
    source_shape = tuple(image.shape)
    pyramid = image.pyramid if isinstance(image, LevelledStudyImage) else None
    if pyramid is None:
        base = flips.apply(image.pixels)
        levels: list[np.ndarray | None] = [base]
        # First halving from the (possibly flipped) view; later ones from compact arrays.
        while max(levels[-1].shape) > _COARSEST * 1.5:
            levels.append(half(levels[-1]))
    else:
        n = 1
        while max(pyramid.shape(n - 1)) > _COARSEST * 1.5:
            n += 1
        levels = [None] * n
        first = min(pyramid.level_for(screen_long_side), n - 1)
        levels[first] = flips.apply(pyramid.level(first))
        for k in range(first + 1, n):  # coarser ones halved here: cheaper than decoding each again
            levels[k] = half(levels[k - 1])
    coarse = levels[-1]
    f = source_shape[1] / coarse.shape[1], source_shape[0] / coarse.shape[0]
    x0, y0, x1, y1 = tissue_bbox(coarse)
    return DisplayImage(
        tissue_box=(x0 * f[0], y0 * f[1], x1 * f[0], y1 * f[1]),
        source=image.source,
        spacing_mm=image.pixel_spacing_mm,
        key=key or image.key,
        energy=image.energy,
        flips=flips,
        levels=levels,
        raw_range=display_range(image, coarse),
        source_shape=source_shape,
        raw=image.pixels if pyramid is None else None,
        pyramid=pyramid,
    )
