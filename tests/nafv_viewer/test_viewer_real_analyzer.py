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
