"""Size limits checked from headers before any pixel data is decoded.

A full-field digital mammogram is about 4096 x 3328 pixels (13.6 Mpx; the
largest detectors in use are under 6000 px per side). The limits below leave
a wide margin above that while refusing files whose decoded pixels would not
fit in memory (2**28 pixels as float32 for analysis is 1 GiB), so a corrupt or
hostile header cannot make the viewer allocate tens of gigabytes.

A DICOM file is also checked before its header is parsed: parsing costs about
0.3 s per MB of header, so a damaged or zero-padded file of gigabytes would
hold the loader for many minutes. The largest usable mammogram file is its
pixels (16 bits each) plus a header; anything much bigger is refused from its
size alone, and at most :data:`MAX_HEADER_BYTES` of header are read.
"""

from __future__ import annotations

MAX_SIDE_PX = 16384
MAX_PIXELS = 2**28  # 268 million pixels (16384 x 16384)
# Bytes of DICOM header read before the pixel data. Real headers are tens of
# kB; vendors' big private blocks are skipped unread (see DEFERRED_VALUE_BYTES)
# and do not count.
MAX_HEADER_BYTES = 2 * 1024**2
# A header value larger than this is not read while classifying a file (it is
# read only if asked for later).
DEFERRED_VALUE_BYTES = 64 * 1024
# The largest DICOM file worth opening: the most pixels at 16 bits, plus room for
# headers, private data and trailing items.
MAX_DICOM_FILE_BYTES = MAX_PIXELS * 2 + 64 * 1024**2
# Beyond the pixel data a file may carry trailing items (signatures, padding);
# more than this beyond what the image needs means a damaged or padded file.
SPARE_FILE_BYTES = 16 * 1024**2


def size_words(n: int) -> str:
    """A byte count as a reader says it: '2.0 GB', '64.0 MB', '12 kB'."""
    if n >= 1024**3:
        return f"{n / 1024**3:.1f} GB"
    if n >= 1024**2:
        return f"{n / 1024**2:.1f} MB"
    return f"{max(1, round(n / 1024))} kB"


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
