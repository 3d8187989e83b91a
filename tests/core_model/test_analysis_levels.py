"""The analysis reads a reduced level of a full-size study and gives what the full-size read gives."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from core_model.inference.analyzer import Analyzer
from core_model.inference.levels import study_at_level
from core_model.io import load_study, write_mg_dicom
from core_model.io.naming import parse_cdd_cesm_name
from core_model.io.pyramid import LevelledStudyImage

J2K = "1.2.840.10008.1.2.4.90"
ROWS, COLS = 2048, 1664


@pytest.fixture(scope="module")
def big_j2k_study(demo_dir, tmp_path_factory) -> Path:
    """The demo patient as eight 2048 x 1664 12-bit JPEG 2000 MG files."""
    folder = tmp_path_factory.mktemp("j2k")
    rng = np.random.default_rng(0)
    for f in sorted(Path(demo_dir).glob("P66_*.jpg")):
        info = parse_cdd_cesm_name(f)
        with Image.open(f) as im:
            big = np.asarray(im.convert("F").resize((COLS, ROWS), Image.BILINEAR), dtype=np.float32) * 16
        px = np.clip(big + rng.normal(0, 8, big.shape), 0, 4095).astype(np.uint16)
        write_mg_dicom(folder / f"{f.stem}.dcm", px, side=info.side, view=info.view, energy=info.energy,
                       patient_id="P66", pixel_spacing_mm=0.07, transfer_syntax=J2K)
    return folder


@pytest.fixture(scope="module")
def analyzer() -> Analyzer:
    return Analyzer(device="cpu")  # the shipped weights: agreement is only meaningful on a trained model


def test_study_at_level_keeps_small_images_and_scales_spacing(demo_dir, big_j2k_study):
    demo = load_study(demo_dir)
    same, reduced = study_at_level(demo, 512)
    assert same is demo and reduced == {}  # the 512 px demo is read as it is
    study = load_study(big_j2k_study)
    lv, full = study_at_level(study, 512)
    im = lv.get("R_CC", "le")
    assert im.shape == (512, 416) and full["R_CC"] == (ROWS, COLS)
    assert im.pixel_spacing_mm == pytest.approx((0.28, 0.28))
    assert not any(i.pyramid.decoded(0) for i in study.images.values() if isinstance(i, LevelledStudyImage))


@pytest.mark.slow
def test_reduced_level_analysis_agrees_with_full_size(analyzer, big_j2k_study, monkeypatch):
    study = load_study(big_j2k_study)
    reduced = analyzer.analyze(study)
    # nothing decoded the full resolution for the analysis
    assert not any(i.pyramid.decoded(0) for i in study.images.values())
    monkeypatch.setattr(Analyzer, "level_long_side", property(lambda self: 10 ** 6))
    full = analyzer.analyze(study)

    assert reduced.affected_side == full.affected_side
    assert reduced.malignancy_probability == pytest.approx(full.malignancy_probability, abs=0.05)
    for key, vr in full.views.items():
        r = reduced.views[key]
        assert r.mask.shape == vr.mask.shape == (ROWS, COLS)
        assert r.probability.shape == (ROWS, COLS)
        assert float(np.abs(r.probability - vr.probability).mean()) < 0.01
        if vr.heatmap is not None:
            assert r.heatmap is not None and r.heatmap.shape == (ROWS, COLS)
    side = full.affected_side
    for view in ("CC", "MLO"):
        a, b = reduced.views[f"{side}_{view}"].mask > 0, full.views[f"{side}_{view}"].mask > 0
        dice = 2 * (a & b).sum() / max(1, a.sum() + b.sum())
        # the probabilities agree (above); a contour barely above the threshold (the R-CC one: mean
        # probability 0.54) moves its edge with differences of a hundredth, so its outline agrees less
        sure = max((les.score for les in full.views[f"{side}_{view}"].lesions), default=0.0) >= 0.6
        assert dice > (0.9 if sure else 0.8), (view, dice)


def test_models_location_and_overlays_read_one_level(analyzer, big_j2k_study, tmp_path):
    """The models, the location of the findings and the quick-look overlays all read the one level
    the models need: each image of a full-size study is decoded at that level only (1/4 here)."""
    from core_model.io.analysis_json import write_analysis

    study = load_study(big_j2k_study)
    before = {k: set(i.pyramid.decoded_levels()) for k, i in study.images.items()}
    analysis = analyzer.analyze(study, explain=False)
    analysed = {k: set(i.pyramid.decoded_levels()) for k, i in study.images.items()}
    write_analysis(analysis, tmp_path, study=study)
    assert {k: set(i.pyramid.decoded_levels()) for k, i in study.images.items()} == analysed  # overlays: no decode
    assert all(analysed[k] - before[k] <= {2} for k in analysed) and any(2 in v for v in analysed.values())
    assert any(vr.lesions and vr.lesions[0].location is not None for vr in analysis.views.values())
    with Image.open(tmp_path / "R_CC_overlay.png") as im:
        assert im.size == (COLS // 4, ROWS // 4)
