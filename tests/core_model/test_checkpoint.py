"""Model cards: strict JSON (no NaN tokens), always checked against their weights, read as UTF-8."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from core_model.domain.errors import ModelLoadError
from core_model.models.checkpoint import card_path, load_checkpoint, save_checkpoint, sha256_file
from core_model.models.registry import create_model

REPO = Path(__file__).resolve().parents[2]


def strict_json(text: str):
    """json.loads that refuses NaN / Infinity, as every other JSON reader does."""
    def refuse(token):
        raise ValueError(f"non-standard JSON token {token}")

    return json.loads(text, parse_constant=refuse)


@pytest.fixture
def saved(tmp_path) -> Path:
    torch.manual_seed(0)
    w = tmp_path / "seg.safetensors"
    save_checkpoint(create_model("nafv_seg_tiny"), w, {"architecture": {"name": "nafv_seg_tiny", "config": {}},
                                                        "trained_on": "test"})
    return w


def test_card_metric_that_could_not_be_computed_is_written_as_null(tmp_path, capsys):
    w = tmp_path / "m.safetensors"
    card = {"architecture": {"name": "nafv_seg_tiny", "config": {}},
            "metrics": {"val_dice": 0.5, "val_auc": float("nan"), "ci95": [float("-inf"), 0.7]}}
    cp = save_checkpoint(create_model("nafv_seg_tiny"), w, card)
    doc = strict_json(cp.read_text(encoding="utf-8"))
    assert doc["metrics"] == {"val_dice": 0.5, "val_auc": None, "ci95": [None, 0.7]}
    assert "val_auc" in capsys.readouterr().err  # said, not silently dropped
    assert load_checkpoint(w).card["metrics"]["val_auc"] is None


def test_card_without_sha256_is_refused(saved):
    cp = card_path(saved)
    card = json.loads(cp.read_text())
    del card["weights_sha256"]
    cp.write_text(json.dumps(card))
    with pytest.raises(ModelLoadError, match="sha256"):
        load_checkpoint(saved)


def test_corrupted_tensor_under_a_card_without_hash_does_not_load(saved):
    cp = card_path(saved)
    card = json.loads(cp.read_text())
    del card["weights_sha256"]
    cp.write_text(json.dumps(card))
    data = bytearray(saved.read_bytes())
    data[-5] ^= 0xFF  # a flipped bit inside the last tensor: still a valid safetensors file
    saved.write_bytes(bytes(data))
    with pytest.raises(ModelLoadError):
        load_checkpoint(saved)


def test_card_in_invalid_utf8_is_a_clear_error(saved):
    cp = card_path(saved)
    cp.write_bytes(cp.read_bytes().replace(b'"test"', b'"t\xe9st"'))  # Latin-1 e-acute
    with pytest.raises(ModelLoadError, match="UTF-8"):
        load_checkpoint(saved)


def test_card_with_a_utf8_bom_still_reads(saved):
    cp = card_path(saved)
    cp.write_bytes(b"\xef\xbb\xbf" + cp.read_bytes())
    assert load_checkpoint(saved).card["trained_on"] == "test"


@pytest.mark.parametrize("card", sorted((REPO / "resources" / "weights").glob("*/nafv_*.json")), ids=lambda p: p.stem)
def test_shipped_cards_carry_the_sha256_of_their_weights(card):
    doc = strict_json(card.read_text(encoding="utf-8"))
    assert doc["weights_sha256"] == sha256_file(card.with_name(doc["weights_file"]))
