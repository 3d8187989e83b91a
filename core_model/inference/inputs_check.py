"""Whether a study holds what the segmentation reads, decided before any model is built.

Torch-free on purpose: ``nafv-analyze`` asks here first, so a study that
cannot be analysed (a single-energy exam, images without a view) is refused
in one sentence before seconds go into importing torch and loading weights.
:class:`core_model.inference.analyzer.Analyzer` raises the same error with
the same sentence for callers that skip the check.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Optional, Sequence

from core_model.domain.errors import NafvError
from core_model.domain.study import ENERGY_NAMES, VIEW_KEYS, Study


class AnalysisError(NafvError):
    """A study that cannot be analysed (no image the models can read)."""


def analysable_views(study: Study, channels: Sequence[str]) -> list[str]:
    """View keys that hold every energy in ``channels`` (the views the segmentation runs on)."""
    return [k for k in VIEW_KEYS if all(study.has(k, e) for e in channels)]


def missing_inputs_message(study: Study, channels) -> str:
    """One sentence: what the segmentation needs and this study lacks (e.g. a low-energy-only study)."""
    waiting = getattr(study, "unassigned", [])
    if waiting:
        return (f"the analysis needs images hung on their views, and {len(waiting)} image(s) of this study have no "
                "view in their files: place them in the viewer (drag each from the strip under the views), then "
                "analyse again.")
    absent = [e for e in channels if not any(study.has(k, e) for k in VIEW_KEYS)]
    if absent:
        words = " and ".join(f"{ENERGY_NAMES[e]} ({e.upper()})" for e in absent)
        kind = (" this is a single-energy study (digital mammography without contrast), so it can be read "
                "but not analysed") if absent == ["rc"] else " nothing was analysed"
        return f"the analysis needs the {words} images of a contrast-enhanced study and found none;{kind}."
    need = " and ".join(f"{ENERGY_NAMES[e]} ({e.upper()})" for e in channels)
    return f"the analysis needs the {need} images of one view together, and no view of this study has both; nothing was analysed."


def check_inputs(study: Study, channels: Sequence[str]) -> None:
    """Raise :class:`AnalysisError` with :func:`missing_inputs_message` when no view can be segmented."""
    if not analysable_views(study, channels):
        raise AnalysisError(missing_inputs_message(study, channels))


def card_channels(weights: str | Path) -> Optional[tuple[str, ...]]:
    """The energies the segmentation weights read, from their model card (``architecture.config.channels``).

    None when the card cannot be read or does not say: the check is then left
    to the model loader, which names what is wrong with the card.
    """
    try:
        card = json.loads(Path(weights).with_suffix(".json").read_bytes().decode("utf-8-sig"))
        channels = card["architecture"]["config"]["channels"]
    except (OSError, ValueError, KeyError, TypeError):
        return None
    if not isinstance(channels, list) or not channels or any(c not in ENERGY_NAMES for c in channels):
        return None
    return tuple(channels)
