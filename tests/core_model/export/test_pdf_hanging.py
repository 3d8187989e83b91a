"""The PDF hangs views like the viewer: R on the left, chest walls in the middle, contours flipped with the images."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from core_model.domain.study import Study, StudyImage
from core_model.export.pdf import ViewGrid, page_points
from core_model.imaging.orientation import flips_from_orientation, reading_flips
from core_model.review.model import Review


def _study(demo_dir, mirror_right: bool = False, orientation=None) -> Study:
    study = Study(patient_id="P66", study_id="P66", source=demo_dir)
    for energy, code in (("le", "DM"), ("rc", "CM")):
        for side in ("R", "L"):
            px = np.array(Image.open(demo_dir / f"P66_{side}_{code}_CC.jpg").convert("L"))
            if side == "R" and mirror_right:
                px = np.ascontiguousarray(px[:, ::-1])
            study.add(StudyImage(side, "CC", energy, px, demo_dir / f"P66_{side}_{code}_CC.jpg",
                                 orientation=orientation if side == "R" else None))
    return study


def test_views_stored_in_reading_position_are_not_flipped(demo_dir):
    grid = ViewGrid(Review(identity={}), _study(demo_dir), 500, "rc", None, "Helvetica")
    assert grid.flips("R_CC") == (False, False) and grid.flips("L_CC") == (False, False)


def test_mirrored_right_view_is_flipped_and_its_contour_with_it(demo_dir):
    study = _study(demo_dir, mirror_right=True)
    grid = ViewGrid(Review(identity={}), study, 500, "rc", None, "Helvetica")
    assert grid.flips("R_CC") == (True, False) and grid.flips("L_CC") == (False, False)
    h, w = study.get("R_CC", "rc").shape
    # A contour vertex at pixel centre (10, 20) of the stored image lands at column w - 1 - 10 when hung.
    (x, y), = page_points([(10.0, 20.0)], (h, w), (True, False), left=100.0, top=400.0, s=0.5)
    assert x == pytest.approx(100.0 + (w - 1 - 10 + 0.5) * 0.5) and y == pytest.approx(400.0 - 20.5 * 0.5)
    (x, y), = page_points([(10.0, 20.0)], (h, w), (False, False), left=100.0, top=400.0, s=0.5)
    assert x == pytest.approx(105.25) and y == pytest.approx(389.75)
    (x, y), = page_points([(10.0, 20.0)], (h, w), (False, True), left=0.0, top=0.0, s=1.0)
    assert y == pytest.approx(-(h - 1 - 20 + 0.5))


def test_tags_decide_over_the_pixels(demo_dir):
    # Tags say the rows of this R CC run anterior (chest wall on the left) and the columns toward the right:
    # both directions are the opposite of reading position.
    study = _study(demo_dir, orientation=("A", "R"))
    grid = ViewGrid(Review(identity={}), study, 500, "rc", None, "Helvetica")
    assert grid.flips("R_CC") == (True, True)
    assert flips_from_orientation("L", "MLO", ("A", "FR")) == (False, False)
    assert flips_from_orientation("L", "MLO", ("P", "HR")) == (True, True)
    assert flips_from_orientation("R", "CC", ("", "")) is None
    px = np.array(Image.open(demo_dir / "P66_L_DM_MLO.jpg").convert("L"))
    assert reading_flips("L", "MLO", px) == (False, False)
    assert reading_flips("L", "MLO", px[:, ::-1]) == (True, False)
