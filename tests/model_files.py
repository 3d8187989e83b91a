"""Model files and model outputs the tests make: untrained tiny weights with their cards, hand-made Analyses.

Shared by the core and viewer tests (import as ``tests.model_files``), so each
test says only what is particular to it.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

# The result a hand-made analysis reports unless a test says otherwise: one scored left breast.
ANALYSIS_DEFAULTS: dict[str, Any] = dict(device="cpu", affected_side="L", affected_side_source="segmentation",
                                         malignancy_probability=0.73, classifier_mode="four-view")


def tiny_weights(folder: Path, trained_on: str = "untrained (test)") -> dict[str, Path]:
    """Untrained tiny segmentation ("seg") and classifier ("cls") weights with their cards, seeded (same every run)."""
    import torch

    from core_model.models.checkpoint import save_checkpoint
    from core_model.models.registry import create_model

    out = {}
    for key, name in (("seg", "nafv_seg_tiny"), ("cls", "nafv_cls_tiny")):
        torch.manual_seed(0)
        out[key] = Path(folder) / f"{name}.safetensors"
        save_checkpoint(create_model(name), out[key], {"architecture": {"name": name, "config": {}}, "trained_on": trained_on})
    return out


def analysis_of(views: dict, models: dict, **fields: Any):
    """An :class:`Analysis` of ``views`` by ``models``; other fields from :data:`ANALYSIS_DEFAULTS` unless given."""
    from core_model.domain.analysis import Analysis

    return Analysis(models=models, views=views, **{**ANALYSIS_DEFAULTS, **fields})
