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
Training (``core_model.train.cls_data``) and the analyzer call these same
functions.
"""

from __future__ import annotations

from dataclasses import replace
from typing import Sequence

import numpy as np
import torch
from PIL import Image

from core_model.domain.errors import NafvError
from core_model.domain.study import Study, contralateral, view_key
from core_model.imaging.orientation import Flips, flip_array, flip_points, orientation_flips
from core_model.transforms.position_mask import DEFAULT_DECAY, position_mask

VIEWS = ("CC", "MLO")  # index 0 / 1 of the view axis


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


def lesion_masks_at(masks: dict[str, np.ndarray], size: int) -> dict[str, np.ndarray]:
    """view -> bool lesion mask resized to the square input."""
    return {v: resize_square(masks[v].astype(np.float32), size, nearest=True) > 0.5 for v in VIEWS}


def breast_inputs(affected: dict[tuple[str, str], np.ndarray], masks: dict[str, np.ndarray],
                  contra: dict[tuple[str, str], np.ndarray] | None, size: int, channels: Sequence[str],
                  decay: float = DEFAULT_DECAY) -> dict[str, np.ndarray]:
    """'affected' [2, 3, S, S] and, when ``contra`` is given, 'contralateral' [2, 3, S, S] (Eq. 8).

    ``affected`` / ``contra``: (view, energy) -> float32 [0, 1] in reading orientation;
    ``masks``: view -> lesion mask of the affected views (empty: an all-ones position mask)."""
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
                 channels: Sequence[str], decay: float = DEFAULT_DECAY) -> tuple[torch.Tensor, torch.Tensor | None]:
    """(affected [1, 2, 3, S, S], contralateral [1, 2, 3, S, S] or None) for ``model(affected, contralateral)``.

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
    x = breast_inputs(aff, masks, con, input_size, channels, decay)
    a = torch.from_numpy(x["affected"])[None]
    c = torch.from_numpy(x["contralateral"])[None] if "contralateral" in x else None
    return a, c
