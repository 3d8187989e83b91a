"""Mammography hanging: which flips put an image in reading position (pure numpy, no Qt).

Reading position (docs/cem-primer.md, "Hanging"): right breast on the viewer's left, left
breast on the right, each pair hung back to back as mirror images, so an R
image has its chest wall on the right-hand edge of its panel and an L image on
the left-hand edge (nipples point outward); MLO with the axilla at the top, CC
with the lateral side at the top.

The rules live in :mod:`core_model.imaging.orientation` (shared with the PDF report
and the DICOM writer); this module wraps them for display. The flips come
from DICOM PatientOrientation when the file gives it (per file: each file's
tags describe that file). Otherwise the chest-wall side is judged from the
pixels, decided once per view from both energies
(:func:`view_flips`): the LE and RC images of a view share their geometry, so
they always hang the same way and pressing E never mirrors a view. Without
tags the vertical direction is left as stored: nothing in the pixels says
reliably which end is lateral on a CC view.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from core_model.imaging.orientation import chest_wall_side, chest_wall_side_pair, flips_from_orientation

__all__ = ["Flips", "NO_FLIPS", "chest_wall_side", "flips_for_image", "hanging_flips", "mirrored", "view_flips"]


@dataclass(frozen=True)
class Flips:
    horizontal: bool
    vertical: bool
    source: str  # "tags", "content" or "none"; shown to the reader on request

    def apply(self, array: np.ndarray) -> np.ndarray:
        """A flipped *view* of ``array`` (no copy)."""
        if self.horizontal:
            array = array[:, ::-1]
        if self.vertical:
            array = array[::-1, :]
        return array

    def to_display(self, xy: np.ndarray, shape: tuple[int, int]) -> np.ndarray:
        """Original (x, y) pixel-centre coordinates -> scene coordinates of the displayed image.

        The displayed image covers [0, w] x [0, h]; pixel (i, j) covers
        [i, i+1] x [j, j+1], so its centre is at i + 0.5 (or w - i - 0.5 when flipped).
        """
        h, w = shape
        out = np.array(xy, dtype=np.float64, copy=True).reshape(-1, 2) + 0.5
        if self.horizontal:
            out[:, 0] = w - out[:, 0]
        if self.vertical:
            out[:, 1] = h - out[:, 1]
        return out

    def pixel_at(self, x: float, y: float, shape: tuple[int, int]) -> tuple[int, int] | None:
        """Scene position -> original (column, row) of the pixel under it, or None outside."""
        h, w = shape
        if not (0 <= x < w and 0 <= y < h):
            return None
        col, row = int(x), int(y)
        if self.horizontal:
            col = w - 1 - col
        if self.vertical:
            row = h - 1 - row
        return col, row


NO_FLIPS = Flips(False, False, "none")


def hanging_flips(side: str, view: str, pixels: np.ndarray, orientation: tuple[str, str] | None = None,
                  partner: np.ndarray | None = None) -> Flips:
    """The flips that put one image of ``side``/``view`` in reading position.

    ``partner`` is the other energy's image of the same view: without tags the
    chest-wall side is decided from both together, so both get the same flip.
    """
    side, view = side.upper(), view.upper()
    if orientation is not None:
        flips = flips_from_orientation(side, view, orientation)
        if flips is not None:
            return Flips(flips[0], flips[1], "tags")
    wanted = "right" if side == "R" else "left"
    return Flips(chest_wall_side_pair(pixels, partner) != wanted, False, "content")


def _outline_pixels(image) -> np.ndarray:
    # The chest wall is found on a few hundred pixels: a JPEG 2000 image gives a reduced level (no full decode).
    from core_model.io.pyramid import LevelledStudyImage, pixels_for

    return pixels_for(image, 512)[0] if isinstance(image, LevelledStudyImage) else image.pixels


def flips_for_image(image, partner=None) -> Flips:
    """:func:`hanging_flips` for a :class:`core_model.domain.study.StudyImage` (``partner``: the other energy's)."""
    return hanging_flips(image.side, image.view, _outline_pixels(image), image.orientation,
                         None if partner is None else _outline_pixels(partner))


def view_flips(study, key: str) -> dict[str, Flips]:
    """Flips of the LE and RC images of view ``key`` of ``study``, decided together (energy -> Flips)."""
    images = {e: study.get(key, e) for e in ("le", "rc")}
    out = {}
    for energy, image in images.items():
        if image is not None:
            out[energy] = flips_for_image(image, images["rc" if energy == "le" else "le"])
    return out


def mirrored(side_a: str, side_b: str) -> bool:
    """Whether two views are hung as mirror images (pan/zoom sync mirrors x between them)."""
    return side_a.upper() != side_b.upper()
