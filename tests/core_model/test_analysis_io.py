"""analysis.json: strict JSON (no NaN tokens), a non-finite result said in the warnings."""

from __future__ import annotations

import json

import numpy as np

from core_model.domain.analysis import Analysis, Lesion, ViewResult
from core_model.io.analysis_json import read_analysis, write_analysis


def _strict(text: str):
    def refuse(token):
        raise ValueError(f"non-standard JSON token {token}")

    return json.loads(text, parse_constant=refuse)


def _analysis(**kw) -> Analysis:
    mask = np.zeros((32, 32), np.uint8)
    mask[8:16, 8:16] = 1
    les = Lesion(polygon=np.array([[8, 8], [15, 8], [15, 15], [8, 15]], float), score=0.8, area_px=64.0, bbox=(8, 8, 15, 15))
    models = {"segmentation": {"name": "t", "weights_sha256": "ab" * 32, "not_for_clinical_use": True,
                               "metrics": {"val_dice": 0.6, "val_auc": float("nan")}}}
    base = dict(models=models, device="cpu", affected_side="L", affected_side_source="segmentation",
                malignancy_probability=0.4, classifier_mode="four-view",
                views={"L_CC": ViewResult("L_CC", mask, np.full((32, 32), 0.5, np.float32), None, [les])},
                side_evidence={"L": 0.1, "R": 0.0})
    base.update(kw)
    return Analysis(**base)


def test_non_finite_numbers_are_null_and_a_lost_result_is_said(tmp_path):
    a = _analysis(malignancy_probability=float("nan"), side_evidence={"L": float("inf"), "R": 0.0})
    path = write_analysis(a, tmp_path / "out")
    doc = _strict(path.read_text(encoding="utf-8"))
    assert doc["models"]["segmentation"]["metrics"] == {"val_dice": 0.6, "val_auc": None}
    assert doc["malignancy_probability"] is None and doc["side_evidence"]["L"] is None
    assert any("classifier score" in w for w in doc["warnings"])
    assert any("side" in w for w in doc["warnings"])
    back = read_analysis(path)
    assert back.malignancy_probability is None and back.views["L_CC"].lesions[0].score == 0.8


def test_finite_results_add_no_warning(tmp_path):
    doc = _strict(write_analysis(_analysis(), tmp_path / "out").read_text(encoding="utf-8"))
    assert doc["warnings"] == [] and doc["malignancy_probability"] == 0.4


def test_maps_of_a_full_size_view_are_stored_small_and_read_back_at_full_size(tmp_path):
    from PIL import Image

    rows, cols = 2600, 2100  # a full-size view: the maps go to disk at most 1024 px on the long side
    yy, xx = np.mgrid[0:rows, 0:cols].astype(np.float32)
    smooth = np.exp(-(((xx - 1200) / 500) ** 2 + ((yy - 900) / 600) ** 2)).astype(np.float32)  # a model's map
    mask = (smooth > 0.5).astype(np.uint8)
    vr = ViewResult("L_CC", mask, smooth, smooth[::-1].copy(), [])
    path = write_analysis(_analysis(views={"L_CC": vr}), tmp_path / "out")
    doc = _strict(path.read_text())
    v = doc["views"]["L_CC"]
    assert max(Image.open(path.parent / v["probability_png"]).size) <= 1024
    assert max(Image.open(path.parent / v["heatmap_png"]).size) <= 1024
    assert Image.open(path.parent / v["mask_png"]).size == (cols, rows)  # the lesion raster stays exact
    back = read_analysis(path).views["L_CC"]
    assert back.probability.shape == back.heatmap.shape == (rows, cols)
    assert np.abs(back.probability - smooth).max() < 0.02  # 8-bit steps and a 3 px grid on a smooth map
    assert np.abs(back.heatmap - smooth[::-1]).max() < 0.02
    assert np.array_equal(back.mask, mask)
