"""Grad-CAM on the multi-view classifier: token reshape, view order, frozen backbones."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from core_model.inference.explain import (
    CAM_METHODS,
    MultiViewCamModel,
    gradcam_views,
    resolve_layer,
    vit_reshape_transform,
)
from core_model.models.backbone import create_backbone, tokens
from core_model.models.registry import create_model


def test_reshape_drops_all_prefix_tokens():
    # 1 class token + 4 registers, then a 3x2 grid whose values encode their position
    d = 5
    grid = torch.arange(6, dtype=torch.float32).reshape(1, 6, 1).expand(1, 6, d)
    prefix = torch.full((1, 5, d), -1.0)
    out = vit_reshape_transform(5, (3, 2))(torch.cat([prefix, grid], 1))
    assert out.shape == (1, d, 3, 2)
    assert out[0, 0].tolist() == [[0, 1], [2, 3], [4, 5]]
    assert (out >= 0).all()  # no prefix token leaked into the map
    sq = vit_reshape_transform(1)(torch.zeros(2, 1 + 16, 7))
    assert sq.shape == (2, 7, 4, 4)
    with pytest.raises(ValueError):
        vit_reshape_transform(1)(torch.zeros(1, 1 + 15, 7))


def test_resolve_layer_paths():
    m = torch.nn.Module()
    m.backbone = torch.nn.Module()
    m.backbone.blocks = torch.nn.ModuleList([torch.nn.Linear(1, 1), torch.nn.Linear(1, 2)])
    assert resolve_layer(m, "backbone.blocks[-1]") is m.backbone.blocks[1]


class _OneSpotClassifier(torch.nn.Module):
    """Stand-in classifier: the ViT runs on the contralateral views FIRST, and the
    malignant logit depends only on the affected CC view's token at grid (1, 2)."""

    def __init__(self):
        super().__init__()
        torch.manual_seed(0)
        self.backbone = create_backbone("vit_small_patch14_reg4_dinov2", img_size=56, depth=1, embed_dim=24, num_heads=2)
        self.mode = "four-view"
        # a fixed direction: the plain channel sum of a LayerNorm output is constant
        self.register_buffer("w", torch.randn(24))

    def forward(self, affected, contralateral=None):
        b = affected.shape[0]
        if contralateral is not None:
            tokens(self.backbone, contralateral.flatten(0, 1))  # computed, unused: only changes the call order
        t = tokens(self.backbone, affected.flatten(0, 1)).unflatten(0, (b, 2))  # [B, 2, D, 4, 4]
        malignant = (t[:, 0, :, 1, 2] * self.w).sum(1)
        return torch.stack([torch.zeros_like(malignant), malignant], 1)


def test_maps_land_on_the_view_that_drove_the_score_whatever_the_call_order():
    cls = _OneSpotClassifier().eval()
    for p in cls.parameters():
        p.requires_grad_(False)  # frozen backbone: the wrapper must still get gradients
    torch.manual_seed(1)
    views = torch.rand(4, 3, 56, 56)
    # Grad-CAM keeps only positive evidence; the two margins have opposite
    # signs, so one of them shows the spot
    tgt = "backbone.norm"
    maps = np.maximum(gradcam_views(cls, views, 1, target=tgt), gradcam_views(cls, views, 0, target=tgt))
    assert maps.shape == (4, 56, 56)
    assert maps[0].max() > 0.5  # affected CC: the only view the logit depends on
    assert np.all(maps[1:] == 0)  # no gradient reached the other views


@pytest.fixture(scope="module")
def tiny_cls():
    torch.manual_seed(0)
    return create_model("nafv_cls_tiny").eval()


def test_wrapper_repeats_the_study_prediction_per_view(tiny_cls):
    cls = tiny_cls
    views = torch.rand(4, 3, 56, 56)
    with torch.no_grad():
        out = MultiViewCamModel(cls)(views)
        ref = cls(views[:2][None], views[2:][None])
        dual = MultiViewCamModel(cls)(views[:2])
    assert out.shape == (4, 2) and torch.allclose(out, ref.expand(4, 2))
    assert dual.shape == (2, 2)


@pytest.mark.parametrize("method", sorted(CAM_METHODS))
@pytest.mark.parametrize("target", ["head.stage1", "backbone.blocks[-1].norm1"])
def test_every_method_gives_finite_maps_on_the_tiny_classifier(method, target, tiny_cls):
    cls = tiny_cls
    torch.manual_seed(0)
    views = torch.rand(4, 3, 56, 56)
    maps = gradcam_views(cls, views, category=1, method=method, target=target)
    assert maps.shape == (4, 56, 56)
    assert np.isfinite(maps).all() and maps.min() >= 0 and maps.max() <= 1.0 + 1e-6
    # no hook is left behind
    assert not any(m._forward_hooks or m._forward_pre_hooks for m in cls.modules())


def test_head_maps_follow_the_view_order(tiny_cls):
    """head.stage1 is per view (before views mix): with an activation-only method, changing
    one view's input changes that view's map and no other."""
    from core_model.inference.explain import explain_views

    torch.manual_seed(0)
    views = torch.rand(4, 3, 56, 56)
    base = explain_views(tiny_cls, views, 1, method="eigencam", target="head.stage1").maps
    changed = views.clone()
    changed[2] = torch.rand(3, 56, 56)  # contralateral CC only
    other = explain_views(tiny_cls, changed, 1, method="eigencam", target="head.stage1")
    assert not np.allclose(base[2], other.maps[2], atol=1e-3)
    for i in (0, 1, 3):
        assert np.allclose(base[i], other.maps[i], atol=1e-5)
    assert other.logits.shape == (2,) and other.category == 1


def test_unknown_method_is_refused(tiny_cls):
    with pytest.raises(ValueError, match="unknown CAM method"):
        gradcam_views(tiny_cls, torch.rand(2, 3, 56, 56), method="nope")


@pytest.mark.parametrize("target", ["head.stage1", "backbone.blocks[-1].norm1"])
def test_own_gradcam_equals_the_library_gradcam(target, tiny_cls, monkeypatch):
    """The default method is computed without importing pytorch-grad-cam; it must give the library's maps."""
    import pytorch_grad_cam

    from core_model.inference import explain

    torch.manual_seed(1)
    views = torch.rand(4, 3, 56, 56)
    ours = explain.explain_views(tiny_cls, views, 1, method="gradcam", target=target)
    monkeypatch.setitem(explain.CAM_METHODS, "gradcam", pytorch_grad_cam.GradCAM)
    lib = explain.explain_views(tiny_cls, views, 1, method="gradcam", target=target)
    assert ours.maps.shape == lib.maps.shape == (4, 56, 56)
    assert float(ours.maps.max()) > 0
    np.testing.assert_allclose(ours.maps, lib.maps, atol=1e-4)
    assert torch.allclose(ours.logits, lib.logits)


def test_analysis_modules_do_not_import_the_cam_library():
    import subprocess
    import sys

    code = ("import sys, core_model.inference.analyzer, core_model.cli.analyze; "
            "print(sorted(m for m in ('pytorch_grad_cam', 'sklearn', 'matplotlib', 'cv2') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"
