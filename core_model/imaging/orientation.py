"""Which image edge holds the chest wall, judged from the breast itself.

One detector for the whole project (DICOM writer, PDF report, the viewer's
hanging). Pure numpy and scipy, no model: mammograms stored without usable
orientation tags (converted JPEGs, the CDD-CESM collection) still have to be
hung with the chest walls in the middle.

How: the breast is the largest bright connected region
(:mod:`core_model.imaging.tissue`). Within its bounding
box (so black padding beside the breast is ignored), the height of the breast
in each column is measured. At the chest wall the breast is cut by the
detector edge and is tall; towards the nipple its outline tapers to a point.
Intensity is deliberately not used: a dense nipple region or a bright
enhancing lesion does not move the decision.
"""

from __future__ import annotations

import numpy as np

from core_model.domain.study import Study
from core_model.imaging.tissue import tissue_mask

Flips = tuple[bool, bool]  # (horizontal, vertical)

# Fraction of the breast's width examined at each end of its bounding box.
_END_FRACTION = 0.15


def chest_wall_score(pixels: np.ndarray) -> float:
    """Signed evidence for the chest-wall side: > 0 left, < 0 right, 0 undecided.

    The value is the difference of the mean breast height (as a fraction of the
    image height) in the leftmost and rightmost ends of the breast, so scores of
    two images of the same view (low energy and recombined) can be added.
    """
    mask, _ = tissue_mask(pixels)
    cols = np.flatnonzero(mask.any(axis=0))
    if cols.size < 4:
        return 0.0
    a, b = int(cols[0]), int(cols[-1])
    # Extent (first to last tissue row) rather than count: dark fat inside the
    # outline near the chest wall must not make the breast look thin there.
    box = mask[:, a:b + 1]
    rows = np.arange(mask.shape[0])[:, None]
    top = np.where(box, rows, mask.shape[0]).min(axis=0)
    bottom = np.where(box, rows, -1).max(axis=0)
    heights = np.maximum(bottom - top + 1, 0).astype(np.float32) / mask.shape[0]
    k = max(1, int(round((b - a + 1) * _END_FRACTION)))
    return float(heights[:k].mean() - heights[-k:].mean())


def chest_wall_side(pixels: np.ndarray) -> str:
    """``"left"`` or ``"right"``: the image edge that holds the chest wall.

    ``pixels`` is one 2-D mammogram as stored (any numeric dtype, MONOCHROME2
    sense: tissue brighter than background). An image with no breast found
    answers ``"left"``.
    """
    return "left" if chest_wall_score(pixels) >= 0 else "right"


def chest_wall_side_pair(le: np.ndarray | None, rc: np.ndarray | None) -> str:
    """The chest-wall side of one view decided once from both energies.

    The low-energy and recombined images of a view share their geometry, so
    their evidence is added; either may be None (a missing image).
    """
    score = sum(chest_wall_score(p) for p in (le, rc) if p is not None)
    return "left" if score >= 0 else "right"


# Reading position (docs/cem-primer.md, "Hanging"): right breast on the reader's left,
# left breast on the right, back to back, so an R image has its chest wall on
# the right-hand edge and an L image on the left-hand edge; MLO with the axilla
# at the top, CC with the lateral side at the top. As DICOM PatientOrientation
# (row direction, column direction):
_WANTED_ROW = {"R": "P", "L": "A"}
_WANTED_COL = {("R", "CC"): "L", ("L", "CC"): "R", ("R", "MLO"): "F", ("L", "MLO"): "F"}
_OPPOSITE = {"A": "P", "P": "A", "L": "R", "R": "L", "H": "F", "F": "H"}


def flips_from_orientation(side: str, view: str, orientation) -> tuple[bool, bool] | None:
    """(horizontal, vertical) flips into reading position from DICOM PatientOrientation, or None if it does not say."""
    try:
        row, col = (str(v).upper().strip() for v in orientation)
    except (TypeError, ValueError):
        return None
    if not row or not col or row[0] not in ("A", "P"):
        return None
    side, view = side.upper(), view.upper()
    horizontal = row[0] != _WANTED_ROW[side]
    # The column direction may be compound ("FL"); compare the component that matters.
    letters = "HF" if view == "MLO" else "LR"
    comp = next((c for c in col if c in letters), None)
    vertical = comp is not None and comp == _OPPOSITE[_WANTED_COL[(side, view)]]
    return horizontal, vertical


def reading_flips(side: str, view: str, pixels: np.ndarray, orientation=None,
                  partner: np.ndarray | None = None) -> tuple[bool, bool]:
    """(horizontal, vertical) flips that put one image of ``side``/``view`` in reading position.

    PatientOrientation decides when the file gives it; otherwise the chest-wall
    side is judged from the pixels, together with ``partner`` (the other
    energy's image of the same view) so both energies hang alike. Without tags
    the vertical direction is left as stored.
    """
    if orientation is not None:
        flips = flips_from_orientation(side, view, orientation)
        if flips is not None:
            return flips
    wanted = "right" if side.upper() == "R" else "left"
    return chest_wall_side_pair(pixels, partner) != wanted, False


# Real mammograms score 0.5 to 0.8 in magnitude (the demo and CDD-CESM test patients);
# below this the outline does not say which edge holds the chest wall.
DECISIVE_SCORE = 0.2
_ROW_SIDE = {row: side for side, row in _WANTED_ROW.items()}  # "A" -> "L", "P" -> "R"


def side_as_stored(pixels: np.ndarray, orientation=None) -> tuple[str | None, str | None]:
    """The breast an image is stored as: (by its pixels, by its PatientOrientation), each "L", "R" or None.

    Mammograms are normally stored the way they are hung: a right breast with
    its chest wall on the right edge (PatientOrientation row direction P), a
    left breast on the left edge (row direction A). None where the outline is
    not clear or the tag is absent or unreadable. This is the storage, not
    proof of the side: see :func:`laterality_doubts`.
    """
    score = chest_wall_score(pixels)
    by_pixels = None if abs(score) < DECISIVE_SCORE else ("L" if score > 0 else "R")
    try:
        row = str(orientation[0]).strip().upper()[:1] if orientation is not None else ""
    except (TypeError, IndexError):
        row = ""
    by_tags = _ROW_SIDE.get(row)
    return by_pixels, by_tags


def laterality_doubts(images) -> list[tuple[int, str, bool]]:
    """Images whose side label the way they are stored contradicts: (index, side stored as, tags agree).

    ``images`` holds (labelled side, pixels, PatientOrientation or None) per
    image of one study. An image is in doubt when its pixels show the other
    breast's storage and its PatientOrientation, if it gives one, says the
    same (when the two disagree the geometry is in question, not the side).
    Only a study that is itself stored as hung can say so: when every clear
    image is stored alike (a vendor storing all chest walls on one edge), or
    most clear images do not follow the convention, nothing is in doubt.
    """
    evidence: list[tuple[int, str, str, bool]] = []
    for i, (side, pixels, orientation) in enumerate(images):
        by_pixels, by_tags = side_as_stored(pixels, orientation)
        if by_pixels is None or (by_tags is not None and by_tags != by_pixels):
            continue
        evidence.append((i, side.upper(), by_pixels, by_tags is not None))
    if len({stored for _, _, stored, _ in evidence}) < 2:
        return []
    odd = [(i, stored, tags) for i, side, stored, tags in evidence if stored != side]
    if len(odd) * 2 >= len(evidence):
        return []
    return odd


def flip_points(xy, shape: tuple[int, int], flips: tuple[bool, bool]) -> np.ndarray:
    """Pixel-centre (x, y) coordinates of the stored image -> the same points in the flipped image.

    Pixel i spans [i - 0.5, i + 0.5], so in an image ``w`` wide a horizontal flip
    maps x to w - 1 - x (and likewise y with the height).
    """
    h, w = shape
    out = np.array(xy, dtype=np.float64, copy=True).reshape(-1, 2)
    if flips[0]:
        out[:, 0] = (w - 1) - out[:, 0]
    if flips[1]:
        out[:, 1] = (h - 1) - out[:, 1]
    return out


def orientation_flips(study: Study) -> dict[str, Flips]:
    """Per view key, the flips that bring its images (both energies alike) to reading orientation."""
    out: dict[str, Flips] = {}
    for key in study.views_present():
        le, rc = study.get(key, "le"), study.get(key, "rc")
        first = le if le is not None else rc
        side, view = key.split("_")
        out[key] = reading_flips(side, view, first.pixels, first.orientation,
                                 partner=rc.pixels if (le is not None and rc is not None) else None)
    return out


def flip_array(a: np.ndarray, flips: Flips) -> np.ndarray:
    """``a`` (..., H, W) flipped; the same call maps back (a flip is its own inverse)."""
    if flips[0]:
        a = a[..., ::-1]
    if flips[1]:
        a = a[..., ::-1, :]
    return np.ascontiguousarray(a) if (flips[0] or flips[1]) else a
