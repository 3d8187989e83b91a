"""The shipped default segmentation weights: card, provenance, and behaviour on the demo study."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from core_model.models.checkpoint import load_checkpoint
from core_model.train.seg_data import read_mask, scan_folder
from core_model.train.seg_eval import predict_breast

REPO = Path(__file__).resolve().parents[2]
WEIGHTS = REPO / "resources" / "weights" / "segmentation" / "nafv_seg.safetensors"


@pytest.fixture(scope="module")
def shipped():
    return load_checkpoint(WEIGHTS)


def test_card_states_data_split_and_validation_dice(shipped):
    card = shipped.card
    assert card["architecture"]["name"] == "nafv_seg"  # NaFV-Net, not the U-Net baseline
    assert card["not_for_clinical_use"] is True and "CDD-CESM" in card["trained_on"]
    split = card["split"]
    assert "P66" in split["val"] and "P66" not in split["train"]  # the demo patient was never trained on
    assert not set(split["train"]) & set(split["val"])
    m = card["metrics"]
    assert 0.3 < m["training_validation"]["val_dice"] < 1.0 and 0.3 < m["val_dice_source_resolution"] < 1.0
    assert m["val_patients"] <= len(split["val"]) and m["evaluated_on"].startswith("cdd-cesm-512")
    assert card["encoder"]["init"].startswith("ImageNet") and card["inference"]["flip_tta"] is True
    pre = card["preprocessing"]
    assert pre["input_size"] == list(shipped.model.input_size) and pre["channels"] == list(shipped.model.channels)
    assert WEIGHTS.stat().st_size < 20e6


def test_demo_lesions_are_found(shipped, demo_dir, tmp_path):
    # the demo study in the CDD-CESM layout; P66 is a validation patient of these weights
    (tmp_path / "images").mkdir()
    for f in demo_dir.glob("*.jpg"):
        shutil.copy(f, tmp_path / "images" / f.name)
    shutil.copytree(demo_dir.parent / "demo_masks", tmp_path / "masks")
    breasts = scan_folder(tmp_path)
    model = shipped.model
    dice, hit = {}, {}
    for side, other in (("L", "R"), ("R", "L")):
        preds = predict_breast(model, breasts[("P66", side)], breasts[("P66", other)], model.channels)
        assert set(preds) == {"CC", "MLO"}
        for view, (prob, _) in preds.items():
            mask = read_mask(breasts[("P66", side)].masks[view])
            assert prob.shape == mask.shape
            inside, outside = float(prob[mask].mean()), float(prob[~mask].mean())
            # measured: 0.44-0.84 inside vs 0.18-0.23 outside, except R-CC, which this model misses (0.20 vs 0.18)
            assert inside > outside + (0.01 if side + view == "RCC" else 0.2), (side, view, inside, outside)
            pred = prob > 0.5
            dice[side + view] = 2 * float((pred & mask).sum()) / float(pred.sum() + mask.sum())
            hit[side + view] = bool((pred & mask).any())
    # measured: the left masses at Dice 0.71 (CC) and 0.30 (MLO; 0.52 before the medium fine-tune); the
    # right breast's small lesions (0.3-0.4 % of the image) are hit on MLO only (R-CC is missed)
    assert dice["LCC"] > 0.6 and dice["LMLO"] > 0.2 and hit["RMLO"]


def test_demo_scores_the_breast_with_the_surer_lesion_and_says_when_both_are_close(demo_dir):
    """P66 has cancers in both breasts: the breast holding the most certain contour is scored, a lesion
    is found in each, and a close call between them is said, not silently made."""
    from core_model.inference.affected_side import CLOSE_CALL_MARGIN
    from core_model.inference.analyzer import Analyzer
    from core_model.io import load_study
    from core_model.domain.resources import DEFAULT_CLS_WEIGHTS

    a = Analyzer(WEIGHTS, DEFAULT_CLS_WEIGHTS, device="cpu", num_threads=1).analyze(load_study(demo_dir))
    best = {s: max((les.score for k, v in a.views.items() if k[0] == s for les in v.lesions), default=0.0)
            for s in "LR"}
    assert a.lesion_found and min(best.values()) > 0.5  # both cancers outlined
    assert best[a.affected_side] == max(best.values()) and a.side_evidence == best
    assert a.malignancy_probability is not None and a.views[f"{a.affected_side}_CC"].heatmap is not None
    # the shipped classifier never saw a patient, and says so beside its score on one
    from core_model.inference.analyzer import SYNTHETIC_CLASSIFIER_WARNING

    assert SYNTHETIC_CLASSIFIER_WARNING in a.warnings
    close = abs(best["L"] - best["R"]) < CLOSE_CALL_MARGIN
    assert any("lesions were outlined in both breasts" in w for w in a.warnings) == close, (best, a.warnings)
