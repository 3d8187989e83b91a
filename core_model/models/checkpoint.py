"""Weights as safetensors plus a JSON model card; nothing is ever unpickled.

A checkpoint is two files side by side: ``NAME.safetensors`` (tensors only)
and ``NAME.json`` (the model card: architecture name and config, what it was
trained on, split, seed, metrics, date, and whether it is validated for
clinical use). Loading rebuilds the model from the card through the registry,
so an architecture mismatch or a corrupted file is a clear :class:`ModelLoadError`.
The card must record the weights' sha256; weights are never loaded unchecked.
"""

from __future__ import annotations

import datetime as _dt
import hashlib
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from safetensors import SafetensorError
from safetensors.torch import load_file, save_file

from core_model.domain.errors import ModelLoadError
from core_model.domain.notice import NOT_FOR_CLINICAL_USE  # noqa: F401 - re-exported: the notice's old home
from core_model.io.atomic import atomic_path, write_text
from core_model.io.jsonsafe import dumps


def sha256_file(path: str | Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def card_path(weights: str | Path) -> Path:
    return Path(weights).with_suffix(".json")


def save_checkpoint(model: torch.nn.Module, weights: str | Path, card: dict[str, Any]) -> Path:
    """Write ``weights`` (.safetensors) and its model card; return the card path.

    ``card`` must contain ``architecture`` = {"name": registry name, "config": {...}}.
    ``date``, ``weights_sha256`` and the clinical-use notice are filled in here.
    """
    weights = Path(weights)
    if weights.suffix != ".safetensors":
        raise ValueError(f"weights file must end in .safetensors: {weights}")
    if "architecture" not in card or "name" not in card["architecture"]:
        raise ValueError("model card needs architecture.name")
    weights.parent.mkdir(parents=True, exist_ok=True)
    model = getattr(model, "module", model)  # unwrap DDP
    state = {k: v.detach().contiguous().cpu() for k, v in model.state_dict().items()}
    with atomic_path(weights) as tmp:
        save_file(state, str(tmp))
    full = dict(card)
    full.setdefault("date", _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"))
    full.setdefault("not_for_clinical_use", True)
    if full["not_for_clinical_use"]:
        full.setdefault("notice", NOT_FOR_CLINICAL_USE)
    full["weights_file"] = weights.name
    full["weights_sha256"] = sha256_file(weights)
    cp = card_path(weights)
    write_text(cp, dumps(full, label=f"model card {cp.name}", indent=2, default=str) + "\n")
    return cp


@dataclass
class LoadedModel:
    model: torch.nn.Module
    card: dict[str, Any]
    weights_path: Path
    sha256: str

    @property
    def identity(self) -> dict[str, Any]:
        """What every shown or exported output must carry."""
        return {
            "name": self.card.get("name", self.card["architecture"]["name"]),
            "architecture": self.card["architecture"]["name"],
            "weights_file": self.weights_path.name,
            "weights_sha256": self.sha256,
            "trained_on": self.card.get("trained_on", "unknown"),
            "not_for_clinical_use": bool(self.card.get("not_for_clinical_use", True)),
            "notice": self.card.get("notice", NOT_FOR_CLINICAL_USE),
        }


def read_card(weights: str | Path) -> dict[str, Any]:
    cp = card_path(weights)
    if not cp.is_file():
        raise ModelLoadError("model card (.json beside the weights) is missing", cp)
    try:
        # utf-8-sig: a card saved by a Windows editor starts with a BOM and is still UTF-8
        card = json.loads(cp.read_bytes().decode("utf-8-sig"))
    except UnicodeDecodeError as exc:
        raise ModelLoadError(f"model card is not UTF-8 text (byte {exc.start}); save it as UTF-8", cp) from None
    except (OSError, json.JSONDecodeError) as exc:
        raise ModelLoadError(f"model card is not valid JSON ({exc})", cp) from None
    if not isinstance(card, dict) or "name" not in card.get("architecture", {}):
        raise ModelLoadError("model card has no architecture.name", cp)
    return card


def load_checkpoint(weights: str | Path, map_location: str | torch.device = "cpu") -> LoadedModel:
    """Rebuild the model named in the card and load its safetensors weights strictly."""
    from core_model.models.registry import create_model

    weights = Path(weights)
    if not weights.is_file():
        raise ModelLoadError("weights file not found", weights)
    card = read_card(weights)
    digest = sha256_file(weights)
    expected = card.get("weights_sha256")
    # Without a recorded hash a corrupted or swapped file would load and quietly give other results.
    if not expected:
        raise ModelLoadError("the model card records no checksum (weights_sha256), so these weights cannot be "
                             "verified and are not used; re-export them with their card", weights)
    expected = str(expected)
    if expected != digest:
        raise ModelLoadError(
            f"weights do not match their model card (sha256 {digest[:12]}… vs {expected[:12]}…): file corrupted or replaced",
            weights,
        )
    try:
        state = load_file(str(weights), device=str(map_location))
    except (SafetensorError, OSError, ValueError) as exc:
        raise ModelLoadError(f"not a readable safetensors file ({exc})", weights) from None
    arch = card["architecture"]
    try:
        model = create_model(arch["name"], **arch.get("config", {}))
    except (KeyError, TypeError, ValueError) as exc:
        raise ModelLoadError(f"model card names an unknown or invalid architecture ({exc})", weights) from None
    missing, unexpected = model.load_state_dict(state, strict=False)
    if missing or unexpected:
        raise ModelLoadError(
            f"weights do not fit architecture {arch['name']!r}: "
            f"{len(missing)} missing tensors (e.g. {missing[:2]}), {len(unexpected)} unexpected (e.g. {unexpected[:2]})",
            weights,
        )
    model.to(map_location).eval()
    return LoadedModel(model=model, card=card, weights_path=weights, sha256=digest)
