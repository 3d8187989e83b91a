"""Lesion masks stored as 8-bit greyscale images: the one reader, and the one threshold.

Masks come as PNG (the analysis folder, the phantom collection) or as JPEG
(the CDD-CESM collection's annotations). JPEG blurs the mask's edge into grey
levels, so a pixel is lesion above mid-grey (> 127), the same for both.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image

from core_model.domain.errors import NafvError

MASK_LEVEL = 127  # an 8-bit mask pixel above this is lesion


def read_grey(path: str | Path, shape: tuple[int, int] | None = None) -> np.ndarray:
    """The 8-bit greyscale pixels of an image file; with ``shape`` (rows, columns), a file of another size is refused."""
    try:
        with Image.open(path) as im:
            a = np.asarray(im.convert("L"))
    except OSError as exc:
        raise NafvError(f"cannot read the image ({exc})", path) from None
    if shape is not None and a.shape != tuple(shape):
        raise NafvError(f"image is {a.shape[1]}x{a.shape[0]}, the analysis says {shape[1]}x{shape[0]}", path)
    return a


def read_mask_png(path: str | Path, shape: tuple[int, int] | None = None) -> np.ndarray:
    """The lesion mask in ``path`` (PNG or JPEG) as a bool array; ``shape`` as for :func:`read_grey`."""
    return read_grey(path, shape) > MASK_LEVEL
