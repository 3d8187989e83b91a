"""The window with the real Analyzer on tiny untrained weights: overlays come from core_model, not a fake."""

import pytest
import torch

from core_model.models.checkpoint import save_checkpoint
from core_model.models.registry import create_model


@pytest.fixture(scope="module")
def tiny_weights(tmp_path_factory):
    d = tmp_path_factory.mktemp("weights")
    torch.manual_seed(0)
    seg = d / "seg.safetensors"
    save_checkpoint(create_model("nafv_seg_tiny"), seg, {"architecture": {"name": "nafv_seg_tiny", "config": {}}, "trained_on": "nothing (untrained test weights)"})
    cls = d / "cls.safetensors"
    save_checkpoint(create_model("nafv_cls_tiny"), cls, {"architecture": {"name": "nafv_cls_tiny", "config": {}}, "trained_on": "nothing (untrained test weights)"})
    return seg, cls


def test_real_analyzer_in_the_window(make_window, qtbot, demo_dir, tiny_weights):
    from core_model.inference.analyzer import Analyzer

    seg, cls = tiny_weights
    analyzer = Analyzer(seg_weights=seg, cls_weights=cls, device="cpu", num_threads=1)
    w = make_window(analyzer=analyzer)
    with qtbot.waitSignal(w.study_ready, timeout=10000):
        w.open_study(demo_dir)
    with qtbot.waitSignal(w.analysis_finished, timeout=60000) as blocker:
        w.run_analysis()
    analysis = blocker.args[0]
    assert analysis.models["segmentation"]["weights_sha256"][:12] in w.side.model_label.text()
    assert "untrained test weights" in w.side.model_label.text()
    assert w.side.notice_label.isVisible()  # untrained weights are never for clinical use
    for key, vr in analysis.views.items():
        p = w.grid.panels4[key]
        assert p.contour_count == (len(vr.lesions) if w.state.show_contours else 0)
        assert p.heatmap_visible == (vr.heatmap is not None)
    if analysis.malignancy_probability is not None:
        assert f"{analysis.malignancy_probability:.2f} on a 0–1 scale" in w.side.result_label.text()


def test_contours_and_score_first_then_the_heatmaps(make_window, qtbot, demo_dir, tiny_weights):
    """The reader sees the contours and the score without waiting for Grad-CAM; the heatmaps of the
    same run follow on the affected breast's LE views, at image size, and a new run is possible after."""
    from core_model.inference.analyzer import Analyzer

    seg, cls = tiny_weights
    w = make_window(analyzer=Analyzer(seg_weights=seg, cls_weights=cls, device="cpu", num_threads=1))
    with qtbot.waitSignal(w.study_ready, timeout=10000):
        w.open_study(demo_dir)
    w.side.set_affected_side_choice("R")  # the classifier runs whatever the untrained segmentation finds
    shown = []
    w.analysis_finished.connect(lambda a: shown.append(("analysis", [k for k, v in a.views.items() if v.heatmap is not None])))
    w.heatmaps_shown.connect(lambda a: shown.append(("heatmaps", None)))
    with qtbot.waitSignal(w.heatmaps_shown, timeout=60000) as blocker:
        w.run_analysis()
    assert shown[0] == ("analysis", []) and shown[1][0] == "heatmaps"  # first without, then with
    analysis = blocker.args[0]
    assert analysis is w.analysis and analysis.malignancy_probability is not None
    assert analysis.heatmap_method and analysis.heatmap_target in ("malignant", "benign")
    assert "explain" in analysis.timings_s
    for key in ("R_CC", "R_MLO"):
        heat = analysis.views[key].heatmap
        assert heat is not None and heat.shape == w.study.get(key, "le").shape
        assert w.grid.panels4[key].heatmap_visible == (w.grid.panels4[key].shown_energy == "le")
    assert all(analysis.views[k].heatmap is None for k in ("L_CC", "L_MLO") if k in analysis.views)
    assert not w.analyses.running
    with qtbot.waitSignal(w.analysis_finished, timeout=60000):
        w.run_analysis()  # the next run is not refused


def test_cancel_stays_offered_while_the_heatmaps_are_made(make_window, qtbot, demo_dir):
    """Between the result and its heatmaps the run is still going: Cancel is offered, and a cancel then
    keeps the result on screen and says that only the heatmaps were dropped."""
    from viewer_helpers import TwoStepAnalyzer

    fake = TwoStepAnalyzer()
    w = make_window(analyzer=fake)
    with qtbot.waitSignal(w.study_ready, timeout=10000):
        w.open_study(demo_dir)
    with qtbot.waitSignal(w.analysis_finished, timeout=10000):
        w.run_analysis()
    assert w.side.cancel_button.isEnabled() and not w.side.run_button.isEnabled()
    assert "heatmaps follow" in w.side.stage()
    with qtbot.waitSignal(w.analyses.heatmaps_dropped, timeout=10000):
        w.cancel_analysis()
    assert w.analysis is not None and w.side.run_button.isEnabled() and not w.side.cancel_button.isEnabled()
    assert "heatmaps cancelled" in w.side.stage() and "without heatmaps" in w.statusBar().currentMessage()
