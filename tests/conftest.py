"""Shared fixtures: paths to the real files bundled in the repository."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")

REPO = Path(__file__).resolve().parents[1]

# pytest puts tests/ on sys.path, where tests/core_model/ (no __init__.py) would be
# imported as an empty namespace package shadowing the real one, and then
# tests/core_model/io/ would shadow core_model.io. Import the real packages first.
sys.path.insert(0, str(REPO))
import core_model  # noqa: E402,F401
import core_model.io  # noqa: E402,F401
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
