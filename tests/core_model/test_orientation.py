"""Chest-wall side from the breast outline, on every real image in the repository."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from core_model.imaging.orientation import chest_wall_score, chest_wall_side, chest_wall_side_pair
from core_model.io.dicom_write import write_mg_dicom

REPO = Path(__file__).resolve().parents[2]
IMAGES = sorted((REPO / "tests" / "data" / "cdd-cesm" / "images").glob("*.jpg")) + sorted(
    (REPO / "resources" / "demo").glob("*.jpg")
)


def _load(path: Path) -> np.ndarray:
    return np.asarray(Image.open(path).convert("L"))


def _expected(path: Path) -> str:
    # CDD-CESM stores right breasts with the chest wall on the right edge, left breasts on the left.
    return "right" if path.stem.split("_")[1] == "R" else "left"


def test_all_eighteen_repo_images_are_covered():
    assert len(IMAGES) == 18


@pytest.mark.parametrize("path", IMAGES, ids=lambda p: p.stem)
def test_chest_wall_side_of_every_repo_image(path):
    px = _load(path)
    assert chest_wall_side(px) == _expected(path)
    # The mirrored image has its chest wall on the other edge.
    assert chest_wall_side(px[:, ::-1]) != _expected(path)


def test_black_padding_and_dense_nipple_side_do_not_fool_it(demo_dir):
    px = _load(demo_dir / "P66_L_DM_CC.jpg").astype(np.float32)
    h, w = px.shape
    # Dense, bright tissue at the nipple end (the right half of this left breast).
    tissue = px > 10
    bright = px.copy()
    bright[:, w // 2:][tissue[:, w // 2:]] = 255
    # Wide black padding beside the chest wall.
    padded = np.concatenate([np.zeros((h, w // 2), np.float32), bright], axis=1)
    assert chest_wall_side(padded) == "left"
    assert chest_wall_side(padded[:, ::-1]) == "right"


def test_works_on_16_bit_values(demo_dir):
    px = _load(demo_dir / "P66_R_CM_MLO.jpg").astype(np.uint16) * 16  # 12-bit range
    assert chest_wall_side(px) == "right"


def test_pair_combines_both_energies(demo_dir):
    le = _load(demo_dir / "P66_R_DM_CC.jpg")
    rc = _load(demo_dir / "P66_R_CM_CC.jpg")
    assert chest_wall_side_pair(le, rc) == "right"
    assert chest_wall_side_pair(le, None) == "right"
    assert chest_wall_side_pair(None, rc[:, ::-1]) == "left"
    # The pair's evidence is the sum of both images' scores.
    assert chest_wall_score(le) < 0 and chest_wall_score(rc) < 0


def test_blank_image_is_undecided_left():
    assert chest_wall_score(np.zeros((64, 64))) == 0.0
    assert chest_wall_side(np.zeros((64, 64))) == "left"


def test_dicom_writer_uses_the_detector_or_the_callers_side(tmp_path, demo_dir):
    import pydicom

    px = _load(demo_dir / "P66_L_DM_CC.jpg").astype(np.float32)
    h, w = px.shape
    tissue = px > 10
    px[:, w // 2:][tissue[:, w // 2:]] = 255
    padded = np.concatenate([np.zeros((h, w // 2), np.float32), px], axis=1).astype(np.uint8)
    p = write_mg_dicom(tmp_path / "a.dcm", padded, side="L", view="CC", energy="le", patient_id="X")
    assert pydicom.dcmread(p).PatientOrientation[0] == "A"  # chest wall on the left
    p = write_mg_dicom(tmp_path / "b.dcm", padded, side="L", view="CC", energy="le", patient_id="X",
                       chest_wall="right")
    assert pydicom.dcmread(p).PatientOrientation[0] == "P"
