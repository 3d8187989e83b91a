"""Analyzer: study in -> masks, polygons, affected side, malignancy probability, heatmaps, timings."""

from __future__ import annotations

import json
import threading
import time
from pathlib import Path

import numpy as np
import pytest
import torch

from core_model.domain.errors import Cancelled, ModelLoadError, NafvError
from core_model.domain.jobs import CancelToken
from core_model.domain.study import VIEW_KEYS, Study, StudyImage
from core_model.inference import analyzer as analyze_mod
from core_model.inference.analyzer import Analyzer
from core_model.io import load_study
from core_model.io.analysis_json import analysis_to_dict, read_analysis, write_analysis
from core_model.models.checkpoint import save_checkpoint
from core_model.models.registry import create_model, register_model
from core_model.transforms.model_inputs import SCORE_SHIFTS


# ---------------------------------------------------------------- stand-ins
class _BrightSeg(torch.nn.Module):
    """Segmentation stand-in with the real call contract: 'lesion' = RC brighter than 0.5."""

    def __init__(self, input_size=(96, 96), delay_s: float = 0.0, n_steps: int = 1):
        super().__init__()
        self.input_size = tuple(input_size)
        self.channels = ("rc",)
        self.gain = torch.nn.Parameter(torch.tensor(40.0))
        self.steps = torch.nn.ModuleList([_Sleep(delay_s) for _ in range(n_steps)])

    def forward(self, views, contra=None, present=None, contra_present=None):
        for s in self.steps:
            views = s(views)
        return (self.gain * (views[:, :, -1:] - 0.5)).reshape(views.shape[0], 2, 1, *views.shape[-2:])


class _Sleep(torch.nn.Module):
    def __init__(self, delay_s: float):
        super().__init__()
        self.delay_s = delay_s

    def forward(self, x):
        time.sleep(self.delay_s)
        return x


@register_model
def _test_bright_seg(**cfg) -> _BrightSeg:
    return _BrightSeg(**cfg)


def _tiny_ckpt(tmp: Path, name: str, tag: str = "", **config) -> Path:
    torch.manual_seed(0)
    w = tmp / f"{name}{tag}.safetensors"
    save_checkpoint(create_model(name, **config), w,
                    {"architecture": {"name": name, "config": config}, "trained_on": "untrained (test)"})
    return w


@pytest.fixture(scope="module")
def weights(tmp_path_factory) -> dict[str, Path]:
    tmp = tmp_path_factory.mktemp("weights")
    return {
        "seg": _tiny_ckpt(tmp, "nafv_seg_tiny"),
        "cls": _tiny_ckpt(tmp, "nafv_cls_tiny"),
        "cls_dual": _tiny_ckpt(tmp, "nafv_cls_tiny", "_dual", mode="dual-view"),
        "cls_crop": _tiny_ckpt(tmp, "nafv_cls_tiny", "_crop", crop=0.2, source_side=200),
        "bright": _tiny_ckpt(tmp, "_test_bright_seg"),
    }


@pytest.fixture(scope="module")
def analyzer(weights) -> Analyzer:
    return Analyzer(weights["seg"], weights["cls"], device="cpu", num_threads=1)


@pytest.fixture(scope="module")
def demo(demo_dir) -> Study:
    return load_study(demo_dir)


def _study(images: dict[tuple[str, str], np.ndarray]) -> Study:
    st = Study(patient_id="T1", study_id="test")
    for (key, energy), px in images.items():
        side, view = key.split("_")
        st.add(StudyImage(side=side, view=view, energy=energy, pixels=px, source=Path(f"{key}_{energy}.png")))
    return st


# ---------------------------------------------------------------- tests
def test_demo_study_full_analysis(analyzer, demo):
    stages = []
    a = analyzer.analyze(demo, progress=lambda s, f: stages.append((s, f)))
    assert set(a.views) == set(VIEW_KEYS)
    for key, vr in a.views.items():
        img = demo.get(key, "rc")
        assert vr.mask.shape == img.shape and vr.mask.dtype == np.uint8
        assert vr.probability.shape == img.shape and 0 <= vr.probability.min() and vr.probability.max() <= 1
        for les in vr.lesions:  # polygons inside the original image
            assert les.polygon.shape[1] == 2 and 0 <= les.score <= 1
            assert les.polygon[:, 0].max() <= img.shape[1] and les.polygon[:, 1].max() <= img.shape[0]
    assert a.affected_side in ("L", "R") and a.affected_side_source == "segmentation"
    assert 0.0 <= a.malignancy_probability <= 1.0 and a.classifier_mode == "four-view"
    aff = [k for k in VIEW_KEYS if k.startswith(a.affected_side)]
    assert all(a.views[k].heatmap is not None and a.views[k].heatmap.shape == demo.get(k, "le").shape for k in aff)
    assert all(a.views[k].heatmap is None for k in VIEW_KEYS if k not in aff)
    # a heatmap is either non-empty or its emptiness is said
    empty = all(a.views[k].heatmap.max() == 0 for k in aff)
    assert empty == any("Grad-CAM found no image region" in w for w in a.warnings)
    assert {"preprocess", "segmentation", "contours", "classification", "explain", "total"} <= set(a.timings_s)
    assert a.timings_s["total"] >= sum(v for k, v in a.timings_s.items() if k != "total") * 0.99
    fr = [f for _, f in stages]
    assert fr == sorted(fr) and fr[-1] == 1.0
    assert {"segmentation", "classification", "explain"} <= {s for s, _ in stages}
    assert a.models["segmentation"]["weights_sha256"] and a.not_for_clinical_use
    # the side decided is the one with the most lesion evidence
    assert a.side_evidence[a.affected_side] == max(a.side_evidence.values())


def test_caller_sets_the_affected_side(analyzer, demo):
    a = analyzer.analyze(demo, affected_side="r", explain=False)
    assert a.affected_side == "R" and a.affected_side_source == "caller"
    assert all(v.heatmap is None for v in a.views.values()) and "explain" not in a.timings_s
    # the score from the forward pass shared with Grad-CAM is the inference-mode score
    b = analyzer.analyze(demo, affected_side="R", explain=True)
    assert b.malignancy_probability == pytest.approx(a.malignancy_probability, abs=1e-5)
    assert b.heatmap_target == ("malignant" if b.malignancy_probability >= 0.5 else "benign")
    with pytest.raises(NafvError):
        analyzer.analyze(demo, affected_side="X")


def test_heatmaps_after_the_result_are_the_heatmaps_of_one_call(analyzer, demo):
    """What the viewer shows first (contours, score, no heatmaps) and the heatmaps it adds after are
    what one call gives: same score, same maps at the same place."""
    whole = analyzer.analyze(demo, affected_side="R", explain=True)
    first, pending = analyzer.analyze_first(demo, affected_side="R", explain=True)
    assert pending is not None and all(v.heatmap is None for v in first.views.values())
    assert first.malignancy_probability == pytest.approx(whole.malignancy_probability, abs=1e-5)
    assert first.heatmap_method is None and "explain" not in first.timings_s
    heat = pending.compute()
    assert set(heat.maps) == {"R_CC", "R_MLO"}
    heat.apply(first)
    for key in ("R_CC", "R_MLO"):
        np.testing.assert_allclose(first.views[key].heatmap, whole.views[key].heatmap, atol=1e-4)
    assert (first.heatmap_target, first.heatmap_method) == (whole.heatmap_target, whole.heatmap_method)
    assert first.timings_s["explain"] > 0 and first.timings_s["total"] > first.timings_s["explain"]
    assert analyzer.analyze_first(demo, affected_side="R", explain=False)[1] is None


def test_non_square_image_maps_back_to_original_pixels(weights):
    """A bright rectangle drawn in a 300 x 700 image must come back where it was drawn."""
    h, w = 300, 700
    img = np.full((h, w), 20, np.uint16)
    img[100:160, 500:580] = 900  # rows 100..159, columns 500..579 (x = column)
    st = _study({("L_CC", "rc"): img, ("L_MLO", "rc"): img[:, ::-1].copy()})
    an = Analyzer(weights["bright"], weights["cls"], device="cpu", num_threads=1)
    a = an.analyze(st)
    vr = a.views["L_CC"]
    assert vr.mask.shape == (h, w)
    truth = np.zeros((h, w), bool)
    truth[100:160, 500:580] = True
    iou = (truth & (vr.mask > 0)).sum() / (truth | (vr.mask > 0)).sum()
    assert iou > 0.85
    (les,) = vr.lesions
    # one model pixel is 700/96 ~ 7.3 original pixels: the outline is within one of them
    tol = w / 96
    x0, y0 = les.polygon.min(0)
    x1, y1 = les.polygon.max(0)
    assert abs(x0 - 499.5) < tol and abs(x1 - 579.5) < tol
    assert abs(y0 - 99.5) < tol and abs(y1 - 159.5) < tol
    assert les.score > 0.9
    # mirrored MLO: mirrored rectangle
    mlo = a.views["L_MLO"].lesions[0].polygon
    assert abs(mlo[:, 0].min() - (w - 1 - 579.5)) < tol
    # only the left breast: dual-view classification, RC-only classifier input is missing LE -> reported
    assert a.affected_side == "L"


def test_a_smaller_but_more_certain_lesion_decides_the_breast_end_to_end(weights):
    img_l = np.full((200, 160), 10, np.uint8)
    img_l[50:100, 40:65] = 250
    img_l[50:100, 65:90] = 135  # half of the larger lesion only just above the model's threshold
    img_r = np.full((200, 160), 10, np.uint8)
    img_r[60:86, 70:96] = 250  # smaller, every pixel certain
    st = _study({("L_CC", "rc"): img_l, ("L_MLO", "rc"): img_l, ("R_CC", "rc"): img_r, ("R_MLO", "rc"): img_r})
    a = Analyzer(weights["bright"], weights["cls"], device="cpu", num_threads=1).analyze(st)
    area = {s: max(les.area_px for k, v in a.views.items() if k[0] == s for les in v.lesions) for s in "LR"}
    assert area["L"] > 1.5 * area["R"]  # the left outline is the larger ...
    assert a.affected_side == "R" and a.lesion_found  # ... the right one the more certain
    assert a.side_evidence["R"] > a.side_evidence["L"] + 0.05


def test_no_lesion_anywhere_means_no_breast_and_no_score(weights):
    from core_model.inference.affected_side import NO_LESION_FOUND

    flat = np.full((120, 100), 30, np.uint8)
    st = _study({(k, "rc"): flat for k in VIEW_KEYS})
    a = Analyzer(weights["bright"], weights["cls"], device="cpu", num_threads=1).analyze(st)
    assert all(v.mask.sum() == 0 and not v.lesions for v in a.views.values())
    assert a.affected_side is None and a.lesion_found is False
    assert a.malignancy_probability is None and a.classifier_mode is None and "classification" not in a.timings_s
    assert NO_LESION_FOUND in a.warnings
    doc = json.loads(json.dumps(analysis_to_dict(a)))
    assert doc["lesion_found"] is False and doc["affected_side"] is None


def test_missing_contralateral_side_runs_dual_view(analyzer, demo):
    left = _study({k: v.pixels for k, v in demo.images.items() if k[0].startswith("L_")})
    a = analyzer.analyze(left)
    assert set(a.views) == {"L_CC", "L_MLO"} and a.affected_side == "L"
    assert a.classifier_mode == "dual-view" and 0 <= a.malignancy_probability <= 1
    assert analyze_mod.DUAL_VIEW_ON_FOUR_VIEW_WARNING in a.warnings
    assert "the classifier was not trained for single-breast studies; treat this score as unreliable" in \
        analyze_mod.DUAL_VIEW_ON_FOUR_VIEW_WARNING


def test_missing_view_is_skipped_and_said(analyzer, demo):
    imgs = {k: v.pixels for k, v in demo.images.items() if k != ("R_MLO", "rc")}
    a = analyzer.analyze(_study(imgs), affected_side="R")
    assert "R_MLO" not in a.views and "R_CC" in a.views
    assert any("R_MLO" in w for w in a.warnings)
    # the classifier still scores the right breast (its MLO LE exists, so four-view inputs are complete)
    assert a.malignancy_probability is not None and a.classifier_mode == "four-view"
    assert a.views["R_CC"].heatmap is not None


def test_lesion_centred_classifier_maps_its_heatmaps_back_to_the_lesion_square(weights):
    """A classifier whose card reads lesion squares (inputs.crop) is fed those squares, and its
    Grad-CAM maps come back inside them, at the lesion, not stretched over the whole view."""
    rng = np.random.default_rng(3)
    images, rows, cols = {}, *np.ogrid[:400, :320]
    for key in VIEW_KEYS:
        for energy in ("le", "rc"):
            px = (0.3 + 0.01 * rng.random((400, 320))).astype(np.float32)
            px[0, 0] = 0.9  # every image spans the same range, so none is stretched to noise
            if key.startswith("L_") and energy == "rc":  # an enhancing 24 px lesion, left breast only
                px[(rows - 150) ** 2 + (cols - 100) ** 2 <= 12 ** 2] = 0.9
            images[(key, energy)] = px
    study = _study(images)
    # the bright-RC stand-in outlines the enhancing lesion (the tiny untrained one outlines everything)
    crop = Analyzer(weights["bright"], weights["cls_crop"], device="cpu", num_threads=1)
    whole = Analyzer(weights["bright"], weights["cls"], device="cpu", num_threads=1)
    a, pending = crop.analyze_first(study)
    b = whole.analyze(study, explain=False)
    assert a.affected_side == "L" and a.malignancy_probability is not None and a.classifier_mode == "four-view"
    assert a.malignancy_probability != pytest.approx(b.malignancy_probability, abs=1e-6)  # other inputs, same weights
    # with SCORE_SHIFTS the score is the mean over the moved squares, whether Grad-CAM shared its
    # forward pass or not; by default it is the outline's square alone
    single = a.malignancy_probability
    crop.score_shifts = SCORE_SHIFTS
    a5 = crop.analyze(study).malignancy_probability
    seen = []
    hook = crop.cls.model.register_forward_hook(lambda m, i, out: seen.append(out.detach().float()))
    c = crop.analyze(study, explain=False)
    hook.remove()
    assert c.malignancy_probability == pytest.approx(a5, abs=1e-5)
    assert len(seen) == 1 and seen[0].shape == (len(SCORE_SHIFTS), 2)  # one pass, one row per square
    probs = torch.softmax(seen[0] / crop.temperature, -1)[:, 1]
    assert c.malignancy_probability == pytest.approx(float(probs.mean()), abs=1e-6)
    assert float(probs.max() - probs.min()) > 1e-4  # the squares differ, so the mean is not one of them
    assert single == pytest.approx(float(probs[0]), abs=1e-5)
    pending.compute().apply(a)
    scale = 400 / pending.level_shapes["L_CC"][0]  # the squares are in the level the models read
    for key in ("L_CC", "L_MLO"):
        r0, c0, side = (round(v * scale) for v in pending.crop_boxes[key])
        assert side <= 200 and r0 < 150 < r0 + side and c0 < 100 < c0 + side  # a square around the lesion
        heat = a.views[key].heatmap
        assert heat.shape == (400, 320) and heat.max() > 0
        rows, cols = np.flatnonzero(heat.any(1)), np.flatnonzero(heat.any(0))
        # the map fills its square (clipped to the image) and nothing else
        assert abs(rows[0] - max(r0, 0)) <= 2 and abs(rows[-1] + 1 - min(r0 + side, 400)) <= 2
        assert abs(cols[0] - max(c0, 0)) <= 2 and abs(cols[-1] + 1 - min(c0 + side, 320)) <= 2


def test_dual_view_classifier_weights(weights, demo):
    a = Analyzer(weights["seg"], weights["cls_dual"], device="cpu", num_threads=1).analyze(demo, explain=False)
    assert a.classifier_mode == "dual-view"
    assert not any("dual-view classification" in w for w in a.warnings)  # by design, not by a missing side


def test_without_classifier_weights_segmentation_still_runs(weights, demo, monkeypatch, tmp_path):
    monkeypatch.setattr(analyze_mod, "DEFAULT_CLS_WEIGHTS", tmp_path / "none.safetensors")
    an = Analyzer(weights["seg"], None, device="cpu", num_threads=1)
    a = an.analyze(demo)
    assert a.malignancy_probability is None and a.classifier_mode is None
    assert any("no classifier weights" in w for w in a.warnings)
    assert "classifier" not in a.models and a.views


def test_identity_carries_interim_status_and_metrics(tmp_path):
    torch.manual_seed(0)
    w = tmp_path / "seg.safetensors"
    save_checkpoint(create_model("nafv_seg_tiny"), w, {"architecture": {"name": "nafv_seg_tiny", "config": {}},
                                                        "status": "interim: epoch 3", "metrics": {"val_dice": 0.51}})
    ident = Analyzer(w, None, device="cpu", num_threads=1).identity["segmentation"]
    assert ident["status"] == "interim: epoch 3" and ident["metrics"] == {"val_dice": 0.51}
    assert ident["not_for_clinical_use"] is True and len(ident["weights_sha256"]) == 64


def test_weights_errors(weights, monkeypatch, tmp_path):
    monkeypatch.setattr(analyze_mod, "DEFAULT_SEG_WEIGHTS", tmp_path / "none.safetensors")
    with pytest.raises(ModelLoadError, match="no default weights"):
        Analyzer(device="cpu")
    with pytest.raises(ModelLoadError, match="not segmentation weights"):
        Analyzer(weights["cls"], device="cpu")
    with pytest.raises(ModelLoadError, match="not classifier weights"):
        Analyzer(weights["seg"], weights["seg"], device="cpu")
    bad = tmp_path / "bad.safetensors"
    bad.write_bytes(weights["seg"].read_bytes()[:-100])
    (tmp_path / "bad.json").write_text(weights["seg"].with_suffix(".json").read_text())
    with pytest.raises(ModelLoadError):
        Analyzer(bad, device="cpu")


def test_study_without_usable_image_is_a_clear_error(analyzer):
    st = _study({("L_CC", "le"): np.zeros((64, 64), np.uint8)})
    with pytest.raises(NafvError, match=r"needs the recombined \(RC\) images .* found none"):
        analyzer.analyze(st)


def test_cancel_is_honoured_within_a_second(weights, tmp_path):
    # a segmentation that takes ~4 s in 40 steps; cancel 0.5 s in
    slow = _tiny_ckpt(tmp_path, "_test_bright_seg", delay_s=0.1, n_steps=40)
    an = Analyzer(slow, weights["cls"], device="cpu", num_threads=1)
    img = np.zeros((128, 128), np.uint8)
    st = _study({("L_CC", "rc"): img, ("L_MLO", "rc"): img})
    token = CancelToken()
    cancelled_at = {}

    def later():
        time.sleep(0.5)
        cancelled_at["t"] = time.perf_counter()
        token.cancel()

    threading.Thread(target=later, daemon=True).start()
    t0 = time.perf_counter()
    with pytest.raises(Cancelled):
        an.analyze(st, cancel=token)
    stopped = time.perf_counter()
    assert stopped - t0 < 3.0  # did not run to the end
    assert stopped - cancelled_at["t"] < 1.0
    # hooks are gone: the same analyzer works again afterwards
    assert not any(m._forward_pre_hooks for m in an.seg.model.modules())


def test_cancel_before_start(analyzer, demo):
    token = CancelToken()
    token.cancel()
    with pytest.raises(Cancelled):
        analyzer.analyze(demo, cancel=token)


def test_json_contract_and_round_trip(analyzer, demo, tmp_path):
    a = analyzer.analyze(demo)
    path = write_analysis(a, tmp_path / "out", study=demo)
    doc = json.loads(path.read_text())
    m = doc["model"]
    assert {"name", "weights_sha256", "trained_on", "not_for_clinical_use"} <= set(m)
    assert m["not_for_clinical_use"] is True and m["weights_sha256"]["segmentation"] == a.models["segmentation"]["weights_sha256"]
    assert doc["device"].startswith("cpu") and doc["affected_side"] in ("L", "R")
    assert 0 <= doc["malignancy_probability"] <= 1
    assert set(doc["views"]) == set(VIEW_KEYS)
    from PIL import Image

    for key, v in doc["views"].items():
        assert isinstance(v["lesions"], list)
        for les in v["lesions"]:
            assert set(les) >= {"polygon", "score"} and all(len(p) == 2 for p in les["polygon"])
        size = Image.open(path.parent / v["mask_png"]).size
        assert size == demo.get(key, "rc").shape[::-1]
        if key.startswith(doc["affected_side"]):
            assert Image.open(path.parent / v["heatmap_png"]).size == size
        else:
            assert v["heatmap_png"] is None
    assert doc["timings_s"]["total"] > 0
    back = read_analysis(path.parent)
    assert back.affected_side == a.affected_side and back.malignancy_probability == pytest.approx(a.malignancy_probability, abs=1e-4)
    for key, vr in a.views.items():
        assert np.array_equal(back.views[key].mask, vr.mask)
        assert len(back.views[key].lesions) == len(vr.lesions)
        if vr.lesions:
            assert np.allclose(back.views[key].lesions[0].polygon, vr.lesions[0].polygon, atol=0.01)
        if vr.heatmap is not None:
            assert np.abs(back.views[key].heatmap - vr.heatmap).max() <= 0.5 / 255 + 1e-6


def test_the_card_gives_the_contour_threshold(tmp_path):
    """The contours are drawn at the segmentation card's ``inference.threshold``: a lower one
    outlines more of the same probability map; a threshold outside (0, 1) is refused on load."""
    def ckpt(threshold):
        w = tmp_path / f"bright_{threshold}.safetensors"
        save_checkpoint(create_model("_test_bright_seg"), w, {
            "architecture": {"name": "_test_bright_seg", "config": {}}, "trained_on": "untrained (test)",
            "inference": {"threshold": threshold}})
        return w

    y, x = np.mgrid[0:128, 0:128]
    blob = np.exp(-((x - 64.0) ** 2 + (y - 64.0) ** 2) / (2 * 20.0 ** 2))
    images = {}
    for key in VIEW_KEYS:
        rc = (0.3 + 0.4 * blob) if key.startswith("R") else np.full((128, 128), 0.3) + 0.01 * (x % 2)
        images[(key, "rc")] = rc.astype(np.float32)
        images[(key, "le")] = np.full((128, 128), 0.4, np.float32) + 0.01 * (y % 2)
    study = _study(images)
    high = Analyzer(ckpt(0.5), device="cpu", num_threads=1).analyze(study, explain=False)
    low = Analyzer(ckpt(0.2), device="cpu", num_threads=1).analyze(study, explain=False)
    for key in ("R_CC", "R_MLO"):
        h, lo = high.views[key], low.views[key]
        np.testing.assert_array_equal(lo.probability, h.probability)
        assert lo.mask.sum() > h.mask.sum() > 0 and (lo.mask >= h.mask).all()
        assert lo.probability[lo.mask > 0].min() >= 0.2 - 1e-6 and h.probability[h.mask > 0].min() >= 0.5 - 1e-6
        assert lo.probability[(lo.mask > 0) & (h.mask == 0)].max() < 0.5
    with pytest.raises(ModelLoadError, match="threshold"):
        Analyzer(ckpt(1.5), device="cpu", num_threads=1)
