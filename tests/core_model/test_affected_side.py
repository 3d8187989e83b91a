"""The affected breast is decided from contour certainty, not area; a reader's choice is kept and questioned in words."""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest

from core_model.domain.analysis import Lesion, ViewResult
from core_model.inference.affected_side import NO_LESION_FOUND, decide_affected_side


def _vr(key: str, *scores: float):
    les = [Lesion(polygon=np.array([[0, 0], [4, 0], [4, 4]], float), score=sc, area_px=area, bbox=(0, 0, 4, 4))
           for sc, area in zip(scores, (900.0, 50.0, 20.0))]
    return ViewResult(key=key, mask=np.zeros((8, 8), np.uint8), lesions=les)


@pytest.mark.parametrize("left, right, side, close", [
    ((0.62,), (0.95,), "R", False),  # larger but uncertain outline on L (dense tissue), certain lesion on R
    ((0.90,), (0.84,), "L", True),  # both certain: a close call, said
    ((0.91, 0.99), (), "L", False),  # the most certain contour of a breast counts
    ((), (), None, False),  # nothing outlined anywhere: no lesion found
])
def test_affected_breast_is_decided_by_contour_certainty_not_area(left, right, side, close):
    views = {"L_CC": _vr("L_CC", *left), "L_MLO": _vr("L_MLO"), "R_CC": _vr("R_CC", *right), "R_MLO": _vr("R_MLO")}
    d = decide_affected_side(views)
    assert d.side == side and d.source == "segmentation" and d.lesion_found == (side is not None)
    assert d.confidence == {"L": max(left, default=0.0), "R": max(right, default=0.0)}
    assert any("both breasts" in n and "close call" in n for n in d.notes) == close
    assert (NO_LESION_FOUND in d.notes) == (side is None)


def test_the_readers_breast_is_kept_and_a_surer_other_breast_said():
    views = {"L_CC": _vr("L_CC", 0.7), "R_CC": _vr("R_CC", 0.95)}
    d = decide_affected_side(views, given="L")
    assert d.side == "L" and d.source == "caller"
    (note,) = d.notes
    assert "the right breast holds a more certain contour (contour AI score 0.95 vs 0.70)" in note
    d = decide_affected_side({"L_CC": _vr("L_CC"), "R_CC": _vr("R_CC")}, given="R")
    assert d.side == "R" and not d.lesion_found and any("no lesion was outlined on the right breast" in n for n in d.notes)


def test_the_decision_runs_no_model():
    """A pure step: deciding the side imports neither torch nor the analyzer."""
    code = ("import sys; import core_model.inference.affected_side; "
            "print(sorted(m for m in ('torch', 'core_model.inference.analyzer') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"
