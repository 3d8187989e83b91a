"""Small real images (demo patient P66, shrunk to 256 x 200) and DICOM studies written from them."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from core_model.io.dicom_write import write_mg_dicom
from core_model.io.naming import parse_cdd_cesm_name

SMALL = (200, 256)  # PIL size (width, height): 256 rows x 200 columns keeps DICOM tests fast


@pytest.fixture(scope="session")
def demo_small(demo_dir) -> dict[tuple[str, str, str], np.ndarray]:
    """(side, view, energy) -> uint8 pixels of the real demo study, resized to 256 x 200."""
    out = {}
    for f in sorted(Path(demo_dir).glob("P66_*.jpg")):
        info = parse_cdd_cesm_name(f)
        with Image.open(f) as im:
            out[(info.side, info.view, info.energy)] = np.array(im.convert("L").resize(SMALL, Image.BILINEAR))
    assert len(out) == 8
    return out


def to12bit(px8: np.ndarray) -> np.ndarray:
    """Spread 8-bit values over 12 bits, as a detector's 12-bit output would be."""
    return (px8.astype(np.uint16) * 16 + 7).astype(np.uint16)


def write_dicom_study(folder: Path, images: dict, patient_id: str = "P66", suffix: str = ".dcm", **kw) -> dict:
    """Write every (side, view, energy) image as one MG file; returns slot -> path."""
    paths = {}
    for (side, view, energy), px in images.items():
        name = f"{patient_id}_{side}_{view}_{energy}{suffix}"
        paths[(side, view, energy)] = write_mg_dicom(
            folder / name, px, side=side, view=view, energy=energy, patient_id=patient_id, **kw)
    return paths


@pytest.fixture
def dicom_study(tmp_path, demo_small) -> tuple[Path, dict]:
    """An eight-image 12-bit DICOM study of the demo patient with 0.1 mm pixels."""
    images = {k: to12bit(v) for k, v in demo_small.items()}
    write_dicom_study(tmp_path / "study", images, pixel_spacing_mm=(0.1, 0.1))
    return tmp_path / "study", images


@pytest.fixture(scope="session")
def write_study():
    return write_dicom_study


@pytest.fixture(scope="session")
def make12():
    return to12bit
