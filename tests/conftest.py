"""Shared fixtures: paths to the real files bundled in the repository."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")

REPO = Path(__file__).resolve().parents[1]
DEMO_DIR = REPO / "resources" / "demo"
DEMO_MASKS = REPO / "resources" / "demo_masks"
CDD_TEST_DIR = REPO / "tests" / "data" / "cdd-cesm"


@pytest.fixture(scope="session")
def demo_dir() -> Path:
    return DEMO_DIR


@pytest.fixture(scope="session")
def cdd_test_dir() -> Path:
    """images/ + masks/ of three real CDD-CESM patients (P12, P102, P106)."""
    return CDD_TEST_DIR
