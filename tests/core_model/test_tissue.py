"""The one breast mask: the box holds the breast up to the detector edge and leaves burnt-in labels out."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from core_model.imaging.tissue import on_tissue, tissue_bbox

DATA = Path(__file__).resolve().parents[1] / "data" / "nyu-ffdm-4view"


def _grey(name: str) -> np.ndarray:
    return np.asarray(Image.open(DATA / name).convert("L"))


@pytest.mark.parametrize("name, breast_ends", [("R-CC.png", 146), ("R-MLO.png", 158)])
def test_the_box_reaches_the_chest_wall_edge_and_leaves_the_view_label_out(name, breast_ends):
    px = _grey(name)  # chest wall on the left edge, "R CC" label at the right edge
    h, w = px.shape
    x0, y0, x1, y1 = tissue_bbox(px)
    assert x0 == 0 and y0 == 0  # cut by the detector: the box does not stop short of the edge
    assert breast_ends - 4 <= x1 <= breast_ends + 8 < w - 60  # the label is not breast
    assert not np.any(px[:, int(x1) + 4:200] > 40)  # beyond the box, up to the label (x >= 209): background


def test_points_on_and_off_the_breast():
    px = _grey("L-CC.png")
    x0, y0, x1, y1 = tissue_bbox(px)
    inside = [(x0 + 10, (y0 + y1) / 2), ((x0 + x1) / 2, (y0 + y1) / 2)]
    outside = [(px.shape[1] - 5, 5), (-3, 10), (px.shape[1] + 1, 10)]
    assert on_tissue(px, inside).tolist() == [True, True]
    assert on_tissue(px, outside).tolist() == [False, False, False]


def test_a_blank_image_gives_the_whole_frame():
    assert tissue_bbox(np.zeros((40, 30), np.uint16)) == (0.0, 0.0, 30.0, 40.0)
