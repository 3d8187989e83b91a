"""The shipped demo classifier: small, honest card, loads and scores the bundled demo study."""

from pathlib import Path

import numpy as np
import torch

from core_model.io import load_study
from core_model.io.masks import read_mask_png
from core_model.models.checkpoint import load_checkpoint
from core_model.transforms.model_inputs import study_inputs

WEIGHTS = Path(__file__).resolve().parents[2] / "resources" / "weights" / "classifier" / "nafv_cls.safetensors"


def test_shipped_card_is_honest_and_weights_small():
    assert WEIGHTS.stat().st_size < 20 * 2**20
    lm = load_checkpoint(WEIGHTS)  # checks the sha256 recorded in the card
    ident = lm.identity
    assert "synthetic" in ident["trained_on"].lower()
    assert ident["not_for_clinical_use"] is True and "not for clinical use" in ident["notice"]
    assert "synthetic" in lm.card["status"] and "auc" in lm.card["metrics"]
    assert "ImageNet" in lm.card["backbone"] and lm.model.is_cnn
    # the score is temperature-scaled, and the card says on what
    cal = lm.card["calibration"]
    assert cal["method"] == "temperature scaling" and cal["temperature"] > 0 and "validation" in cal["fitted_on"]


def test_shipped_model_scores_demo_study(demo_dir):
    torch.set_num_threads(1)
    lm = load_checkpoint(WEIGHTS)
    m = lm.model
    assert m.mode == "four-view" and m.input_size == 224 and m.channels == ("le", "le", "rc")
    # lesion squares (a departure from the paper's whole views, docs/classification.md), cut from views
    # kept at the training resolution, through a backbone fine-tuned on such squares
    assert m.crop == 0.3 and m.source_side == 512 and "fine-tuned" in lm.card["backbone"]
    study = load_study(demo_dir)
    masks = {f"L_{v}": read_mask_png(demo_dir.parent / "demo_masks" / f"P66_L_DM_{v}.jpg")
             for v in ("CC", "MLO")}
    aff, con = study_inputs(study, masks, "L", m.input_size, m.channels, m.position_decay, m.crop)
    with torch.no_grad():
        p4 = m(aff, con).softmax(1)
        p4_again = m(aff, con).softmax(1)
        p2 = m(aff).softmax(1)
    assert p4.shape == p2.shape == (1, 2)
    assert torch.equal(p4, p4_again)  # eval mode: deterministic
    assert 0.0 < float(p4[0, 1]) < 1.0 and torch.isfinite(p2).all()
    assert abs(float(p4[0, 1]) - float(p2[0, 1])) > 1e-4  # the contralateral breast enters the four-view score
