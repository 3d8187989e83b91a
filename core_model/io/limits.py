"""Size limits checked from headers before any pixel data is decoded.

A full-field digital mammogram is about 4096 x 3328 pixels (13.6 Mpx; the
largest detectors in use are under 6000 px per side). The limits below leave
a wide margin above that while refusing files whose decoded pixels would not
fit in memory (2**28 pixels as float32 for analysis is 1 GiB), so a corrupt or
hostile header cannot make the viewer allocate tens of gigabytes.
"""

from __future__ import annotations

MAX_SIDE_PX = 16384
MAX_PIXELS = 2**28  # 268 million pixels (16384 x 16384)


def size_problem(rows: int, cols: int, frames: int = 1) -> str | None:
    """Why an image of this size cannot be held, or None when it can."""
    if rows <= 0 or cols <= 0:
        return f"the header gives an empty image ({rows} x {cols} pixels)"
    if rows > MAX_SIDE_PX or cols > MAX_SIDE_PX:
        return (
            f"image is {rows} x {cols} pixels; the limit is {MAX_SIDE_PX} pixels per side "
            f"and {MAX_PIXELS:,} pixels in all"
        )
    if rows * cols * max(frames, 1) > MAX_PIXELS:
        return (
            f"image is {rows} x {cols} pixels x {frames} frames; the limit is {MAX_PIXELS:,} pixels in all"
        )
    return None
