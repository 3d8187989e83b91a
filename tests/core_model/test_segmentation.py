"""NaFV-Net segmentation and U-Net baseline: shapes, Eq. 1-3 arithmetic, view handling, save/load."""

from __future__ import annotations

import pytest
import torch

from core_model.losses.segmentation import seg_loss, soft_dice_loss
from core_model.models.checkpoint import load_checkpoint, save_checkpoint
from core_model.models.registry import create_model, list_models
from core_model.models.segmentation import AsymmetricFusion, lesion_probability, model_config

SEG_MODELS = ["nafv_seg", "nafv_seg_tiny", "unet", "unet_tiny"]


def test_all_variants_registered():
    assert set(SEG_MODELS) <= set(list_models())


@pytest.mark.parametrize("name,cfg,size,c", [
    ("nafv_seg", {}, (160, 160), 1),
    ("unet", {}, (160, 160), 1),
    ("nafv_seg_tiny", {}, (64, 64), 1),
    ("nafv_seg_tiny", {"channels": ("le", "rc")}, (64, 64), 2),
    ("nafv_seg_tiny", {"asym_fusion": False}, (64, 64), 1),
    ("nafv_seg_tiny", {"cross_attention": False}, (64, 64), 1),
    ("nafv_seg_tiny", {"asym_fusion": False, "cross_attention": False, "skips": False}, (64, 64), 1),
    ("unet_tiny", {"channels": ("le", "rc")}, (64, 64), 2),
])
def test_shapes_and_attributes(name, cfg, size, c):
    torch.manual_seed(0)
    m = create_model(name, **cfg).eval()
    assert tuple(m.input_size) == size and len(m.channels) == c
    x = torch.rand(2, 2, c, *size)
    with torch.no_grad():
        y = m(x, contra=torch.rand_like(x), present=torch.tensor([[True, True], [True, False]]))
        y2 = m(x)  # no contralateral, both views
    assert y.shape == (2, 2, 1, *size) and y2.shape == y.shape
    assert torch.isfinite(y).all() and torch.isfinite(y2).all()


@pytest.mark.parametrize("name", ["nafv_seg_tiny", "unet_tiny"])
def test_every_parameter_gets_a_gradient(name):
    torch.manual_seed(0)
    m = create_model(name)
    x = torch.rand(2, 2, 1, 64, 64)
    # one sample with a contralateral image, one without: both fusion paths are used
    y = m(x, contra=torch.rand_like(x), present=torch.ones(2, 2, dtype=torch.bool),
          contra_present=torch.tensor([[True, True], [False, False]]))
    y.square().mean().backward()
    missing = [n for n, p in m.named_parameters() if p.grad is None or not p.grad.abs().sum() > 0]
    assert not missing


def test_non_default_input_size_runs():
    m = create_model("nafv_seg_tiny").eval()
    with torch.no_grad():
        y = m(torch.rand(1, 2, 1, 96, 80))
    assert y.shape == (1, 2, 1, 96, 80)


def _fusion_with_known_conv() -> AsymmetricFusion:
    f = AsymmetricFusion(kernel=1, feat_hw=(2, 2))
    with torch.no_grad():
        f.conv.weight.fill_(2.0)
        f.conv.bias.fill_(-1.0)
    return f


def test_asymmetric_fusion_eq1_to_3_by_hand():
    f = _fusion_with_known_conv()
    z_as = torch.tensor([[[[1.0, 2.0], [3.0, 4.0]], [[-1.0, 0.0], [0.5, 2.0]]]])  # [1, 2, 2, 2]
    z_ua = torch.tensor([[[[0.0, 1.0], [2.0, 0.5]], [[0.0, 3.0], [0.0, 0.5]]]])
    # Eq. 1: AvgPool over channels -> [[0, 2], [1, 0.5]]; conv 1x1: 2x - 1 -> [[-1, 3], [1, 0]]
    m_s = torch.sigmoid(torch.tensor([[-1.0, 3.0], [1.0, 0.0]]))
    out = f(z_as, z_ua)
    assert out.shape == (1, 4, 2, 2)  # Eq. 3: Concat doubles the channels
    torch.testing.assert_close(out[:, :2], z_as)
    torch.testing.assert_close(out[0, 2:], z_as[0] * m_s)  # Eq. 2
    assert abs(float(m_s[0, 1]) - 0.9526) < 1e-3


def test_missing_contralateral_uses_learned_map_per_sample():
    f = _fusion_with_known_conv()
    z_as = torch.ones(2, 1, 2, 2)
    z_ua = torch.full((2, 1, 2, 2), 2.0)  # conv -> 3 -> sigmoid(3)
    out = f(z_as, z_ua, has_contra=torch.tensor([True, False]))
    torch.testing.assert_close(out[0, 1], torch.full((2, 2), torch.sigmoid(torch.tensor(3.0)).item()))
    torch.testing.assert_close(out[1, 1], torch.full((2, 2), 0.5))  # learned map starts at 0 -> 0.5
    torch.testing.assert_close(f(z_as, None)[:, 1], torch.full((2, 2, 2), 0.5))


def test_contralateral_changes_output_only_with_fusion():
    torch.manual_seed(0)
    x = torch.rand(1, 2, 1, 64, 64)
    for asym in (True, False):
        m = create_model("nafv_seg_tiny", asym_fusion=asym).eval()
        with torch.no_grad():
            a = m(x, contra=torch.rand_like(x))
            b = m(x, contra=torch.rand_like(x))
        assert (not torch.allclose(a, b)) == asym


def test_missing_view_is_excluded_from_cross_attention():
    torch.manual_seed(0)
    x = torch.rand(1, 2, 1, 64, 64)
    x2 = x.clone()
    x2[0, 1] = torch.rand(1, 64, 64)  # a different MLO image
    only_cc = torch.tensor([[True, False]])
    both = torch.ones(1, 2, dtype=torch.bool)
    m = create_model("nafv_seg_tiny").eval()
    with torch.no_grad():
        # MLO absent: CC's prediction cannot depend on what is in the MLO slot
        torch.testing.assert_close(m(x, present=only_cc)[0, 0], m(x2, present=only_cc)[0, 0])
        # MLO present: cross-attention makes CC depend on it
        assert not torch.allclose(m(x, present=both)[0, 0], m(x2, present=both)[0, 0])
    m = create_model("nafv_seg_tiny", cross_attention=False).eval()
    with torch.no_grad():
        torch.testing.assert_close(m(x, present=both)[0, 0], m(x2, present=both)[0, 0])


def test_unet_ignores_contra_and_views_are_independent():
    torch.manual_seed(0)
    m = create_model("unet_tiny").eval()
    x = torch.rand(1, 2, 1, 64, 64)
    with torch.no_grad():
        a = m(x)
        b = m(x, contra=torch.rand_like(x), present=torch.tensor([[True, False]]))
        single = m(x[:, [0, 0]])
    torch.testing.assert_close(a, b)
    torch.testing.assert_close(a[0, 0], single[0, 0])


def test_lambdas_are_learned_parameters():
    m = create_model("nafv_seg_tiny")
    names = dict(m.named_parameters())
    assert "lambdas" in names and names["lambdas"].requires_grad
    assert "lambdas" not in dict(create_model("nafv_seg_tiny", cross_attention=False).named_parameters())


def test_unknown_config_key_is_rejected():
    with pytest.raises(TypeError):
        create_model("nafv_seg_tiny", depthh=3)
    with pytest.raises(ValueError):
        create_model("nafv_seg_tiny", channels=("dm",))


@pytest.mark.parametrize("name,cfg", [("nafv_seg_tiny", {"channels": ("le", "rc"), "cross_attention": False}),
                                      ("unet_tiny", {})])
def test_save_load_round_trip(tmp_path, name, cfg):
    torch.manual_seed(1)
    m = create_model(name, **cfg).eval()
    w = tmp_path / "seg.safetensors"
    save_checkpoint(m, w, {"architecture": {"name": name, "config": model_config(m)}, "trained_on": "test"})
    loaded = load_checkpoint(w)
    x = torch.rand(1, 2, len(m.channels), *m.input_size)
    with torch.no_grad():
        torch.testing.assert_close(loaded.model(x), m(x))
    assert loaded.model.channels == m.channels
    assert loaded.identity["weights_sha256"] == loaded.sha256 and loaded.identity["not_for_clinical_use"]


def test_loss_prefers_the_right_mask_and_skips_invalid_views():
    target = torch.zeros(1, 2, 1, 8, 8)
    target[0, 0, 0, 2:5, 2:5] = 1
    good = (target * 2 - 1) * 8
    bad = -good
    assert seg_loss(good, target) < 0.1 < seg_loss(bad, target)
    # a view marked invalid does not count, however wrong it is
    mixed = good.clone()
    mixed[0, 1] = 8.0
    valid = torch.tensor([[True, False]])
    torch.testing.assert_close(seg_loss(mixed, target, valid), seg_loss(good[:, :1], target[:, :1]))
    assert float(soft_dice_loss(good.flatten(0, 1)[:1], target.flatten(0, 1)[:1])) < 0.01


def test_lesion_free_views_are_scored_by_bce_only():
    target = torch.zeros(2, 1, 8, 8)
    target[0, 0, 2:5, 2:5] = 1  # view 0 has a lesion, view 1 has none
    good = (target * 2 - 1) * 8
    speck = good.clone()
    speck[1, 0, 0, 0] = 8.0  # one false-positive pixel on the lesion-free view
    # soft Dice ignores the lesion-free view (its Dice would be ~0 for a single pixel)...
    torch.testing.assert_close(soft_dice_loss(speck, target), soft_dice_loss(good[:1], target[:1]))
    # ...while BCE still charges the false positive, in proportion to its size
    assert seg_loss(good, target) < seg_loss(speck, target) < seg_loss(good, target) + 0.2


def test_flip_tta_makes_the_prediction_mirror_consistent():
    torch.manual_seed(0)
    m = create_model("nafv_seg_tiny", channels=("le", "rc")).eval()
    v, c = torch.randn(1, 2, 2, 64, 64), torch.randn(1, 2, 2, 64, 64)
    with torch.no_grad():
        plain, plain_m = lesion_probability(m, v, c), lesion_probability(m, v.flip(-1), c.flip(-1))
        tta, tta_m = lesion_probability(m, v, c, flip_tta=True), lesion_probability(m, v.flip(-1), c.flip(-1), flip_tta=True)
    assert plain.shape == (1, 2, 64, 64) and 0 <= float(plain.min()) and float(plain.max()) <= 1
    assert not torch.allclose(plain_m.flip(-1), plain, atol=1e-4)  # an untrained net is not mirror-symmetric...
    torch.testing.assert_close(tta_m.flip(-1), tta, atol=1e-5, rtol=0)  # ...its flip-averaged output is
    torch.testing.assert_close(tta, (plain + plain_m.flip(-1)) / 2, atol=1e-5, rtol=0)
