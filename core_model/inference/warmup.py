"""One analysis of a small made-up study, so the reader's first analysis runs at warm speed.

A fresh process pays several seconds on its first analysis beyond the weights:
the first forward pass of each model sets up its kernels and memory, the first
backward pass (Grad-CAM) its autograd machinery. The viewer runs
:func:`warm_up` in a background thread while the reader looks at the images,
so pressing A costs what a warm analysis costs. Nothing of the made-up study
is kept or shown.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from core_model.domain.study import ENERGIES, VIEW_KEYS, Study, StudyImage

_SIZE = (256, 208)  # rows, cols: a mammogram's aspect at the segmentation's input size


def warm_up_study() -> Study:
    """Eight smooth images with a bright spot in each right view: enough for every stage to run."""
    rows, cols = _SIZE
    y, x = np.mgrid[0:rows, 0:cols].astype(np.float32)
    study = Study(patient_id="warm-up", study_id="warm-up", synthetic=True, description="warm-up (not shown)")
    for key in VIEW_KEYS:
        side, view = key.split("_")
        wall = 0 if side == "L" else cols - 1  # chest wall on the edge reading orientation puts it
        breast = np.clip(1.0 - np.abs(x - wall) / (0.8 * cols), 0, 1) * 180
        for energy in ENERGIES:
            px = breast.copy()
            if side == "R":
                px += 60 * np.exp(-((y - rows / 2) ** 2 + (x - (wall - 0.4 * (wall - cols / 2))) ** 2) / 200)
            study.add(StudyImage(side=side, view=view, energy=energy, pixels=np.clip(px, 0, 255).astype(np.uint8),
                                 source=Path(f"warm-up/{key}_{energy}")))
    return study


def warm_up(analyzer) -> None:
    """One full analysis (segmentation, classifier and Grad-CAM) of :func:`warm_up_study`."""
    analyzer.analyze(warm_up_study(), affected_side="R", explain=True)
