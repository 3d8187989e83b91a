"""Fixtures shared by the core-model tests."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from core_model.models.checkpoint import save_checkpoint
from core_model.models.registry import create_model


@pytest.fixture(scope="module")
def weights(tmp_path_factory) -> dict[str, Path]:
    """Untrained tiny segmentation and classifier weights with their cards (CLI plumbing, not figures)."""
    tmp = tmp_path_factory.mktemp("cli_weights")
    out = {}
    for key, name in (("seg", "nafv_seg_tiny"), ("cls", "nafv_cls_tiny")):
        torch.manual_seed(0)
        out[key] = tmp / f"{name}.safetensors"
        save_checkpoint(create_model(name), out[key], {"architecture": {"name": name, "config": {}},
                                                       "trained_on": "untrained (test)"})
    return out
