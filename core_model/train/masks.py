"""Lesion masks for training: the one rule for which energy's mask is the lesion.

Both trainers read masks here (files through :func:`core_model.io.masks.read_mask_png`, the one threshold). The rule: a view's lesion is the outline drawn
on its recombined (RC) image; the low-energy (LE) outline stands in only where
the view has no RC one. LE and RC of a view share the geometry, so both
outlines mark the same pixels where they agree; where they differ, the RC
outline is the extent of the enhancing lesion (docs/cem-primer.md: cancers
usually enhance; LE shows morphology such as calcifications around it). The
segmentation learns the RC extent (the paper segments on RC), and at analysis
time the classifier's position mask (Eq. 8) is drawn from that segmentation,
so a classifier trained on the union of LE and RC would learn from lesion
extents the analysis never gives it.
"""

from __future__ import annotations

from pathlib import Path
from typing import Callable, Mapping, TypeVar

import numpy as np

from core_model.io.masks import read_mask_png

T = TypeVar("T")


def lesion_source(by_energy: Mapping[str, T]) -> T | None:
    """The mask (file, drawing or array) that is a view's lesion, given its masks per energy: RC, else LE."""
    return by_energy.get("rc", by_energy.get("le"))


def read_mask(source: str | Path | Callable[[], np.ndarray]) -> np.ndarray:
    """A mask file, or the mask a callable draws (the collection's outlines), as a bool array."""
    if callable(source):
        return np.asarray(source(), dtype=bool)
    return read_mask_png(source)
