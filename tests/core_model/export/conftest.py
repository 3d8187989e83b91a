"""Fixtures for the export tests: a DICOM study written from real CDD-CESM images, and reviews on it."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from core_model.io import load_study, write_mg_dicom
from core_model.io.naming import parse_cdd_cesm_name
from core_model.review.model import review_from_analysis
from core_model.review.store import study_identity
from review_export_helpers import analysis_from_masks


@pytest.fixture
def dicom_study_dir(tmp_path, cdd_test_dir) -> Path:
    """Patient P12's left-breast images (CC/MLO, LE/RC) written as DICOM MG, file names kept as stems."""
    out = tmp_path / "dicom"
    for p in sorted((cdd_test_dir / "images").glob("P12_*.jpg")):
        info = parse_cdd_cesm_name(p)
        write_mg_dicom(out / (p.stem + ".dcm"), np.array(Image.open(p).convert("L")), side=info.side, view=info.view,
                       energy=info.energy, patient_id="P12", pixel_spacing_mm=(0.1, 0.1))
    return out


@pytest.fixture
def dicom_review(dicom_study_dir, cdd_test_dir):
    """(study, review): L_CC accepted, L_MLO edited, linked; one rejected and one reader finding."""
    study = load_study(dicom_study_dir)
    # masks are named like the JPEGs; the DICOM files keep the stems
    analysis = analysis_from_masks(study, cdd_test_dir / "masks")
    review = review_from_analysis(analysis, study, study_identity(study))
    return study, review
