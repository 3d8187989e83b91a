"""`nafv-train evaluate-seg` on real CDD-CESM images, with values checked against the masks."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from core_model.cli.train import main as nafv_train
from core_model.models.checkpoint import save_checkpoint
from core_model.models.registry import create_model
from core_model.models.segmentation import model_config
from core_model.train.seg_data import read_mask
from core_model.train.seg_eval import dice_iou


def _constant_model(tmp_path, logit: float, split: dict | None = None):
    """A tiny NaFV-Net whose head predicts the same logit everywhere."""
    m = create_model("nafv_seg_tiny")
    with torch.no_grad():
        m.head.weight.zero_()
        m.head.bias.fill_(logit)
    w = tmp_path / f"const{logit:+.0f}.safetensors"
    card = {"architecture": {"name": "nafv_seg_tiny", "config": model_config(m)}, "trained_on": "nothing (test)"}
    if split:
        card["split"] = split
    save_checkpoint(m, w, card)
    return w


def test_dice_iou_definition():
    a = np.zeros((4, 4), bool)
    b = np.zeros((4, 4), bool)
    assert dice_iou(a, b) == (1.0, 1.0)  # nothing to find, nothing found
    a[:2, :2] = True
    b[:2, :] = True
    d, u = dice_iou(a, b)
    assert d == pytest.approx(2 * 4 / 12) and u == pytest.approx(4 / 8)


def test_all_lesion_prediction_gives_mask_fraction_dice(cdd_test_dir, tmp_path, capsys):
    w = _constant_model(tmp_path, +20.0)
    out = tmp_path / "eval.json"
    assert nafv_train(["evaluate-seg", "--data", str(cdd_test_dir), "--weights", str(w), "--json", str(out)]) == 0
    res = json.loads(out.read_text())
    # P12 L CC+MLO, P102 R CC+MLO, P106 L MLO: 5 annotated RC views of 3 patients
    assert res["n_images"] == 5 and res["n_patients"] == 3
    expected_d, expected_u = [], []
    for name in ["P12_L_CM_CC", "P12_L_CM_MLO", "P102_R_CM_CC", "P102_R_CM_MLO", "P106_L_CM_MLO"]:
        m = read_mask(cdd_test_dir / "masks" / f"{name}.jpg")
        frac = m.mean()  # predicting everything: Dice = 2|M| / (|M| + N), IoU = |M| / N
        expected_d.append(2 * frac / (1 + frac))
        expected_u.append(frac)
    assert res["dice"] == pytest.approx(np.mean(expected_d), abs=1e-6)
    assert res["miou"] == pytest.approx(np.mean(expected_u), abs=1e-6)
    assert 0.0 < res["dice"] < 0.5
    assert res["model"]["not_for_clinical_use"] is True and len(res["weights_sha256"]) == 64
    assert "Dice" in capsys.readouterr().out


def test_empty_prediction_scores_zero_and_split_filter(cdd_test_dir, tmp_path):
    w = _constant_model(tmp_path, -20.0, split={"train": ["P12", "P106"], "val": ["P102"]})
    out = tmp_path / "eval.json"
    assert nafv_train(["evaluate-seg", "--data", str(cdd_test_dir), "--weights", str(w), "--json", str(out),
                       "--split", "val"]) == 0
    res = json.loads(out.read_text())
    assert res["dice"] == 0.0 and res["miou"] == 0.0
    assert res["n_images"] == 2 and res["n_patients"] == 1
    assert {r["image"] for r in res["images"]} == {"P102_R_CC", "P102_R_MLO"}


def test_missing_weights_is_a_user_error(cdd_test_dir, tmp_path, capsys):
    rc = nafv_train(["evaluate-seg", "--data", str(cdd_test_dir), "--weights", str(tmp_path / "none.safetensors"),
                     "--json", str(tmp_path / "x.json")])
    assert rc == 2 and "not found" in capsys.readouterr().err


def test_export_to_writes_weights_with_the_evaluated_card(cdd_test_dir, tmp_path):
    from core_model.models.checkpoint import load_checkpoint

    w = _constant_model(tmp_path, +20.0)
    out, shipped = tmp_path / "eval.json", tmp_path / "ship" / "seg.safetensors"
    assert nafv_train(["evaluate-seg", "--data", str(cdd_test_dir), "--weights", str(w), "--json", str(out),
                       "--export-to", str(shipped)]) == 0
    res = json.loads(out.read_text())
    loaded = load_checkpoint(shipped)  # sha256 in the card matches the file
    m = loaded.card["metrics"]
    assert m["val_dice_source_resolution"] == pytest.approx(res["dice"])
    assert m["val_patients"] == 3 and m["evaluated_split"] == "all"
    assert "--export-to" in loaded.card["reproduce"]["evaluate_and_export"]
    assert any("not a clinical validation" in x for x in loaded.card["limitations"])
    assert f"Dice {res['dice']:.2f}" in loaded.card["status"] and "not validated clinically" in loaded.card["status"]
    assert res["flip_tta"] is False and loaded.card["inference"] == {"flip_tta": False}
    # evaluated with flip TTA: the card tells the analyzer to run the weights the same way
    again = tmp_path / "ship" / "seg_tta.safetensors"
    assert nafv_train(["evaluate-seg", "--data", str(cdd_test_dir), "--weights", str(w), "--json", str(out),
                       "--flip-tta", "--export-to", str(again)]) == 0
    assert json.loads(out.read_text())["flip_tta"] is True
    assert load_checkpoint(again).card["inference"] == {"flip_tta": True}
    # same tensors as the evaluated weights
    src = load_checkpoint(w).model.state_dict()
    assert all(torch.equal(src[k], v) for k, v in loaded.model.state_dict().items())


def test_input_size_reads_at_another_side_and_is_not_exported(cdd_test_dir, tmp_path, capsys):
    """--input-size measures the weights read finer or coarser than their card says; the figures say
    which side they were read at, and such a reading cannot become the shipped card's."""
    w = _constant_model(tmp_path, +20.0)
    out = tmp_path / "eval.json"
    assert nafv_train(["evaluate-seg", "--data", str(cdd_test_dir), "--weights", str(w), "--json", str(out)]) == 0
    card_side = json.loads(out.read_text())["input_size"]
    other = card_side[0] + 32
    assert nafv_train(["evaluate-seg", "--data", str(cdd_test_dir), "--weights", str(w), "--json", str(out),
                       "--input-size", str(other)]) == 0
    res = json.loads(out.read_text())
    assert res["input_size"] == [other, other] != card_side
    assert res["n_images"] == 5 and 0.0 < res["dice"] < 0.5  # everything predicted: the mask fractions again
    rc = nafv_train(["evaluate-seg", "--data", str(cdd_test_dir), "--weights", str(w), "--json", str(out),
                     "--input-size", str(other), "--export-to", str(tmp_path / "x.safetensors")])
    assert rc == 2 and "measurement" in capsys.readouterr().err and not (tmp_path / "x.safetensors").exists()
