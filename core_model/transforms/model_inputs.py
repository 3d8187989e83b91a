"""What the models see: one input pipeline for training and inference, in reading orientation.

Both models were trained on images in *reading orientation* (the CDD-CESM
convention, docs/cem-primer.md, "Hanging"): a right breast with its chest wall on the
right-hand edge, a left breast with it on the left-hand edge, MLO axilla up.
Archives store mammograms either way (many DICOM archives put both chest walls
on the same edge), and the contralateral mirror of the segmentation fusion
(Eq. 1), the classifier's mirrored position prior and the adversarial paste
(Eq. 9) are only right when the two breasts face each other. So every image
is brought to reading orientation from the study's orientation
(PatientOrientation, else the pixel-based chest-wall detector of
:mod:`core_model.imaging.orientation`, LE and RC of a view decided together) before
any model sees it, and the results are mapped back to the image as stored.

Classifier inputs follow the paper: every view resized to a square (the
aspect is not kept, as in the 512x512 CDD-CESM release), the energies named
by ``channels`` in the three input channels, times the lesion position mask
(Eq. 8); the contralateral views get the affected lesion's mask mirrored onto
them (the paper's "symmetrical alignment of positional information").

With ``crop`` > 0 (the classifier card's ``inputs.crop``; a departure from the
paper's whole-view input, docs/classification.md) each view is first cut to a
square around its lesion, ``crop`` times the view's longer side (at least
twice the lesion's extent), and the contralateral view to the mirrored square:
at 224 px a whole view is about 1 mm per pixel, which leaves the margin of a
mass (spicules under 1 mm wide), the sign that separates the classes, unseen. A view without a lesion mask
stays whole. :func:`crop_boxes` is where each crop lies, so heatmaps map back.
Training (``core_model.train.cls_data``) and the analyzer call these same
functions.
"""

from __future__ import annotations

from dataclasses import replace
from typing import Sequence

import numpy as np
import torch
from PIL import Image
from scipy import ndimage

from core_model.domain.errors import NafvError
from core_model.domain.study import Study, contralateral, view_key
from core_model.imaging.orientation import Flips, flip_array, flip_points, orientation_flips
from core_model.imaging.preprocess import Letterbox
from core_model.transforms.position_mask import DEFAULT_DECAY, position_mask

VIEWS = ("CC", "MLO")  # index 0 / 1 of the view axis
# Longest side the classifier's training keeps a view at (core_model.train.cls_data): the source of
# its inputs, so the analysis reads lesion squares from a level at least this fine where it can.
SOURCE_MAX_SIDE = 1024


# Five lesion squares for one score: the square placed from the outline, and the same moved by an
# eighth of its side up, down, left and right. An outline a few pixels off (another decoded level,
# another threshold) moves the square; the mean over the five follows it less than one square's score
# does (benchmarks/square_stability.py; the analyzer's ``score_shifts``).
SCORE_SHIFTS: tuple[tuple[float, float], ...] = ((0.0, 0.0), (-0.125, 0.0), (0.125, 0.0), (0.0, -0.125), (0.0, 0.125))


def fit_long_side(a: np.ndarray, max_side: int) -> np.ndarray:
    """``a`` shrunk so its longer side is at most ``max_side`` (unchanged when it already fits or
    ``max_side`` is 0), aspect kept: the input pipeline's letterbox into a ``max_side`` square, without
    its padding. A bool mask stays a bool mask (its resampled coverage above one half)."""
    if max_side <= 0 or max(a.shape) <= max_side:
        return a
    lb = Letterbox.fit(a.shape, (max_side, max_side))
    (nh, nw), top, left = lb.new_shape, lb.top, lb.left
    out = lb.apply(a.astype(np.float32))[top:top + nh, left:left + nw]
    return out > 0.5 if a.dtype == bool else out


def source_long_side(input_size: int, crop: float) -> int:
    """The long side of the image a classifier's lesion squares should be cut from so that a square
    holds at least ``input_size`` pixels (shrunk, never enlarged, into the input, as in training from
    images kept at up to :data:`SOURCE_MAX_SIDE`); ``input_size`` itself for whole views."""
    if crop <= 0:
        return int(input_size)
    return min(SOURCE_MAX_SIDE, int(np.ceil(input_size / crop)))


# ----------------------------------------------------------------------------- orientation

def in_reading_orientation(study: Study) -> tuple[Study, dict[str, Flips]]:
    """A view of ``study`` with every image in reading orientation (pixels flipped, nothing else
    changed), and the flips applied per view key."""
    flips = orientation_flips(study)
    if not any(h or v for h, v in flips.values()):
        return study, flips
    out = Study(patient_id=study.patient_id, study_id=study.study_id, source=study.source,
                warnings=study.warnings, synthetic=study.synthetic, description=study.description)
    for (key, energy), im in study.images.items():
        f = flips.get(key, (False, False))
        # the tags described the stored pixels, not the flipped ones: dropped, so nothing flips them twice
        out.images[(key, energy)] = (replace(im, pixels=flip_array(im.pixels, f), orientation=None)
                                     if (f[0] or f[1]) else im)
    return out, flips


def map_views_back(views: dict, flips: dict[str, Flips]) -> None:
    """Bring analysis results (``ViewResult`` per view key, in reading orientation) back to the
    images as stored: masks, probability and heatmaps flipped, polygons and boxes mirrored."""
    for key, vr in views.items():
        f = flips.get(key, (False, False))
        if not (f[0] or f[1]):
            continue
        shape = vr.mask.shape
        vr.mask = flip_array(vr.mask, f)
        if vr.probability is not None:
            vr.probability = flip_array(vr.probability, f)
        if vr.heatmap is not None:
            vr.heatmap = flip_array(vr.heatmap, f)
        for les in vr.lesions:
            poly = flip_points(les.polygon, shape, f)
            les.polygon = poly[::-1].copy() if f[0] != f[1] else poly  # one mirror reverses the winding
            x0, y0, x1, y1 = les.bbox
            corners = flip_points(np.array([[x0, y0], [x1, y1]], float), shape, f)
            les.bbox = (float(corners[:, 0].min()), float(corners[:, 1].min()),
                        float(corners[:, 0].max()), float(corners[:, 1].max()))


# ----------------------------------------------------------------------------- classifier inputs

def resize_square(a: np.ndarray, size: int, nearest: bool = False) -> np.ndarray:
    if a.shape == (size, size):
        return a.astype(np.float32)
    im = Image.fromarray(a.astype(np.float32), mode="F")
    return np.asarray(im.resize((size, size), Image.NEAREST if nearest else Image.BILINEAR), dtype=np.float32)


def view_stack(images: dict[tuple[str, str], np.ndarray], view: str, channels: Sequence[str], size: int) -> np.ndarray:
    """[3, size, size]; a missing RC falls back to LE so a LE-only study still runs."""
    return np.stack([resize_square(images.get((view, e), images[(view, "le")]), size) for e in channels])


Box = tuple[int, int, int]  # (row0, col0, side) of a square crop; it may reach past the image (zero padding)


def _square_at(center: tuple[float, float], side: int, shape: tuple[int, int]) -> Box:
    """The ``side`` square centred on ``center``, shifted to lie inside ``shape`` along each axis that is
    long enough to hold it (centred, reaching past both edges, along one that is not)."""
    out = []
    for c, n in zip(center, shape):
        start = int(round(c - side / 2))
        out.append(min(max(start, 0), n - side) if side <= n else (n - side) // 2)
    return out[0], out[1], side


def _largest_component(mask: np.ndarray) -> np.ndarray:
    labels, n = ndimage.label(mask, structure=np.ones((3, 3), bool))
    if n <= 1:
        return mask
    return labels == 1 + int(np.argmax(ndimage.sum(mask, labels, index=np.arange(1, n + 1))))


def lesion_box(mask: np.ndarray, crop: float, shift: tuple[float, float] = (0.0, 0.0),
               grow: float = 1.0) -> Box | None:
    """The square the classifier reads of a view with lesion ``mask``: centred on the bounding box of
    its largest lesion (the analyzer passes its main lesion only; a training mask with several lesions
    gets the same rule), ``crop`` times the view's longer side or twice the lesion's extent, whichever
    is larger, times ``grow`` (never more than the longer side); ``shift`` moves its centre by that
    fraction of its side (rows, columns). ``grow`` > 1 gives the room around the square that the
    backbone fine-tune can move its windows in at the square's own scale. None for an empty mask
    (the view stays whole)."""
    mask = _largest_component(mask > 0)
    rows, cols = np.flatnonzero(mask.any(1)), np.flatnonzero(mask.any(0))
    if rows.size == 0:
        return None
    r0, r1, c0, c1 = rows[0], rows[-1] + 1, cols[0], cols[-1] + 1
    side = int(round(max(crop * max(mask.shape), 2 * max(r1 - r0, c1 - c0)) * grow))
    side = max(16, min(side, max(mask.shape)))
    return _square_at(((r0 + r1) / 2 + shift[0] * side, (c0 + c1) / 2 + shift[1] * side), side, mask.shape)


def carried_box(box: Box, shape: tuple[int, int], other: tuple[int, int], mirror: bool = False) -> Box:
    """``box`` of an image of ``shape`` carried to an image of shape ``other``: the same place scaled
    (another energy of the view stored at another size), or with ``mirror`` the mirrored place (the
    contralateral view: in reading orientation the breasts face each other, so the column mirrors).
    The side scales with the heights."""
    if tuple(other) == tuple(shape) and not mirror:
        return box
    r0, c0, side = box
    scale = other[0] / shape[0]
    col = (c0 + side / 2) * other[1] / shape[1]
    centre = ((r0 + side / 2) * scale, other[1] - col if mirror else col)
    return _square_at(centre, max(1, int(round(side * scale))), other)


def cut(a: np.ndarray, box: Box) -> np.ndarray:
    """The ``box`` square of ``a``, zero where it reaches past the image."""
    r0, c0, side = box
    out = np.zeros((side, side), dtype=a.dtype)
    rs, cs = max(r0, 0), max(c0, 0)
    re, ce = min(r0 + side, a.shape[0]), min(c0 + side, a.shape[1])
    if re > rs and ce > cs:
        out[rs - r0:re - r0, cs - c0:ce - c0] = a[rs:re, cs:ce]
    return out


def crop_boxes(masks: dict[str, np.ndarray], crop: float, shift: tuple[float, float] = (0.0, 0.0),
               grow: float = 1.0) -> dict[str, Box]:
    """view -> crop box of the affected views that have a lesion (none when ``crop`` is 0)."""
    if crop <= 0:
        return {}
    boxes = {v: lesion_box(m, crop, shift, grow) for v, m in masks.items()}
    return {v: b for v, b in boxes.items() if b is not None}


def crop_breasts(affected: dict[tuple[str, str], np.ndarray], masks: dict[str, np.ndarray],
                 contra: dict[tuple[str, str], np.ndarray] | None, crop: float,
                 shift: tuple[float, float] = (0.0, 0.0), grow: float = 1.0):
    """(affected, masks, contra) cut to the lesion squares (:func:`crop_boxes`), the contralateral
    views to the mirrored squares; unchanged when ``crop`` is 0 or no view has a lesion."""
    boxes = crop_boxes(masks, crop, shift, grow)
    if not boxes:
        return affected, masks, contra
    # every image is cut where the box lies in its own pixels (the LE and RC of a view may differ in size)
    aff = {(v, e): (cut(a, carried_box(boxes[v], masks[v].shape, a.shape)) if v in boxes else a)
           for (v, e), a in affected.items()}
    m = {v: (cut(a, boxes[v]) if v in boxes else a) for v, a in masks.items()}
    con = None
    if contra is not None:
        con = {(v, e): (cut(a, carried_box(boxes[v], masks[v].shape, a.shape, mirror=True)) if v in boxes else a)
               for (v, e), a in contra.items()}
    return aff, m, con


def lesion_masks_at(masks: dict[str, np.ndarray], size: int) -> dict[str, np.ndarray]:
    """view -> bool lesion mask resized to the square input."""
    return {v: resize_square(masks[v].astype(np.float32), size, nearest=True) > 0.5 for v in VIEWS}


def breast_inputs(affected: dict[tuple[str, str], np.ndarray], masks: dict[str, np.ndarray],
                  contra: dict[tuple[str, str], np.ndarray] | None, size: int, channels: Sequence[str],
                  decay: float = DEFAULT_DECAY, crop: float = 0.0,
                  shift: tuple[float, float] = (0.0, 0.0)) -> dict[str, np.ndarray]:
    """'affected' [2, 3, S, S] and, when ``contra`` is given, 'contralateral' [2, 3, S, S] (Eq. 8).

    ``affected`` / ``contra``: (view, energy) -> float32 [0, 1] in reading orientation;
    ``masks``: view -> lesion mask of the affected views (empty: an all-ones position mask);
    ``crop``, ``shift``: see the module docstring and :func:`lesion_box`."""
    affected, masks, contra = crop_breasts(affected, masks, contra, crop, shift)
    lesion = lesion_masks_at(masks, size)
    out = {"affected": np.stack([view_stack(affected, v, channels, size) * position_mask(lesion[v], decay)
                                 for v in VIEWS]).astype(np.float32)}
    if contra is not None:
        # symmetric position prior: the affected lesion mirrored onto the other breast
        out["contralateral"] = np.stack([view_stack(contra, v, channels, size) * position_mask(lesion[v][:, ::-1], decay)
                                         for v in VIEWS]).astype(np.float32)
    return out


def breast_images(study: Study, side: str) -> dict[tuple[str, str], np.ndarray]:
    """(view, energy) -> normalised image of one breast (what the classifier reads)."""
    out = {}
    for v in VIEWS:
        for e in ("le", "rc"):
            im = study.get(view_key(side, v), e)
            if im is not None:
                out[(v, e)] = im.normalized()
    return out


def study_inputs(study: Study, lesion_masks: dict[str, np.ndarray], affected_side: str, input_size: int,
                 channels: Sequence[str], decay: float = DEFAULT_DECAY,
                 crop: float = 0.0, source_side: int = 0,
                 shifts: Sequence[tuple[float, float]] = ((0.0, 0.0),)) -> tuple[torch.Tensor, torch.Tensor | None]:
    """(affected [K, 2, 3, S, S], contralateral [K, 2, 3, S, S] or None) for ``model(affected, contralateral)``,
    one row per lesion-square ``shifts`` entry (:func:`lesion_box`; K = 1 for whole views).

    ``study`` and ``lesion_masks`` (view key -> mask at the image's resolution) in reading
    orientation. The contralateral tensor is None when the other breast lacks CC or MLO LE.
    """
    side = affected_side.upper()
    aff = breast_images(study, side)
    masks = {}
    for v in VIEWS:
        if (v, "le") not in aff:
            raise NafvError(f"the {side} breast needs both CC and MLO low-energy images for classification "
                            f"({view_key(side, v)} LE is missing)")
        m = lesion_masks.get(view_key(side, v))
        masks[v] = (m > 0) if m is not None else np.zeros(aff[(v, "le")].shape, bool)
    con = breast_images(study, contralateral(side))
    if not all((v, "le") in con for v in VIEWS):
        con = None
    if source_side:  # the resolution the classifier was trained at (its card): a finer read is shrunk to it
        aff = {k: fit_long_side(a, source_side) for k, a in aff.items()}
        masks = {v: fit_long_side(m, source_side) for v, m in masks.items()}
        con = {k: fit_long_side(a, source_side) for k, a in con.items()} if con is not None else None
    rows = [breast_inputs(aff, masks, con, input_size, channels, decay, crop, shift)
            for shift in (shifts if crop > 0 else shifts[:1])]
    a = torch.from_numpy(np.stack([x["affected"] for x in rows]))
    c = torch.from_numpy(np.stack([x["contralateral"] for x in rows])) if con is not None else None
    return a, c
