"""DINOv2 backbone + MedCB / MedTB / MedCTB classifier: shapes, gradients, local weights, a few steps that learn."""

import pytest
import torch
from safetensors.torch import save_file

from core_model.domain.errors import ModelLoadError
from core_model.losses.classification import nafv_loss
from core_model.models import create_model
from core_model.models.backbone import create_backbone, tokens
from core_model.models.checkpoint import load_checkpoint, save_checkpoint
from core_model.models.four_view import ConvAttention, Downsample, EfficientAttention, FourViewHead, MedCB, MedCTB, MedTB

torch.set_num_threads(1)

TINY_VIT = dict(depth=1, embed_dim=48, num_heads=2)


@pytest.mark.parametrize("block,args,inp,expected", [
    (MedCB, (16,), (3, 16, 5, 5), (3, 16, 5, 5)),
    (MedTB, (16, 2, 2), (3, 16, 6, 6), (3, 16, 6, 6)),
    (ConvAttention, (24,), (2, 24, 4, 4), (2, 24, 4, 4)),
    (Downsample, (16, 24), (2, 16, 5, 5), (2, 24, 3, 3)),
])
def test_block_shapes(block, args, inp, expected):
    m = block(*args).eval()
    assert tuple(m(torch.randn(*inp)).shape) == expected


def test_attention_and_cross_block_shapes():
    att = EfficientAttention(16, 4, sr_ratio=2)
    x, ctx = torch.randn(2, 16, 4, 6), torch.randn(2, 16, 3, 3)
    assert att(x).shape == x.shape  # self-attention, keys/values pooled 2x
    assert att(x, ctx).shape == x.shape  # cross-attention to another grid
    a, b = MedCTB(16, 2)(torch.randn(2, 16, 3, 4), torch.randn(2, 16, 3, 4))
    assert a.shape == b.shape == (2, 16, 3, 4)


@pytest.mark.parametrize("contra", [True, False])
def test_head_shapes(contra):
    head = FourViewHead(48, (16, 24, 32), (1, 1, 1), (2, 2, 2), (1, 1, 1)).eval()
    a = torch.randn(3, 2, 48, 6, 6)
    out = head(a, torch.randn(3, 2, 48, 6, 6) if contra else None)
    assert out.shape == (3, 2)
    with pytest.raises(ValueError):
        head(torch.randn(3, 4, 48, 6, 6))


def test_backbone_tokens_and_local_weights(tmp_path):
    vit = create_backbone("small", img_size=56, **TINY_VIT)
    x = torch.randn(2, 3, 56, 56)
    t = tokens(vit, x)
    assert t.shape == (2, 48, 4, 4)
    # our own timm-format safetensors load through timm's file overlay, without network
    path = tmp_path / "vit.safetensors"
    save_file({k: v.contiguous() for k, v in vit.state_dict().items()}, str(path))
    vit2 = create_backbone("vit_small_patch14_dinov2", img_size=56, weights=path, **TINY_VIT)
    vit.eval(), vit2.eval()
    assert torch.allclose(tokens(vit, x), tokens(vit2, x))
    with pytest.raises(ModelLoadError):
        create_backbone(img_size=56, weights=path)  # wrong architecture for these weights
    with pytest.raises(ModelLoadError):
        create_backbone(img_size=56, weights=tmp_path / "missing.pth", **TINY_VIT)
    with pytest.raises(ValueError):
        create_backbone(img_size=50)
    with pytest.raises(ValueError):
        create_backbone("resnet50")


def test_backbone_file_is_read_by_us_not_by_timm(tmp_path, monkeypatch):
    import timm.models._builder as builder

    def no_timm_loading(*a, **k):
        raise AssertionError("timm's own checkpoint loader must not read user files")

    monkeypatch.setattr(builder, "load_pretrained", no_timm_loading)
    vit = create_backbone("small", img_size=56, **TINY_VIT).eval()
    x = torch.randn(1, 3, 56, 56)
    pth = tmp_path / "vit.pth"
    torch.save({"model": vit.state_dict()}, pth)  # a wrapped training checkpoint
    for path in (pth,):
        again = create_backbone("small", img_size=56, weights=path, **TINY_VIT).eval()
        assert torch.allclose(tokens(vit, x), tokens(again, x))
    # A pickle that would run code on load is refused (weights_only=True), as a user message.
    evil = tmp_path / "evil.pth"
    torch.save({"model": vit.state_dict(), "cfg": _Unsafe()}, evil)
    with pytest.raises(ModelLoadError, match="not a weights file this program reads safely"):
        create_backbone("small", img_size=56, weights=evil, **TINY_VIT)


class _Unsafe:
    """Any class instance in a pickle: torch.load(weights_only=True) refuses it."""


def test_tiny_model_contract_and_gradients():
    m = create_model("nafv_cls_tiny")
    assert m.input_size == 56 and m.mode == "four-view" and m.channels == ("le", "le", "rc")
    assert m.backbone.num_prefix_tokens == 1 and hasattr(m.backbone.blocks[-1], "norm1")  # Grad-CAM target
    a, c = torch.rand(2, 2, 3, 56, 56), torch.rand(2, 2, 3, 56, 56)
    four = m(a, c)
    dual = m(a)
    assert four.shape == dual.shape == (2, 2)
    assert torch.isfinite(four).all() and torch.isfinite(dual).all()
    four.sum().backward()
    missing = [n for n, p in m.named_parameters() if p.grad is None]
    assert not missing, missing
    # head_forward on cached tokens equals the end-to-end forward
    m.eval()
    with torch.no_grad():
        ta, tc = m.embed(a), m.embed(c)
        assert ta.shape == (2, 2, 48, 4, 4)
        assert torch.allclose(m.head_forward(ta, tc), m(a, c), atol=1e-5)
    with pytest.raises(ValueError):
        m(torch.rand(2, 2, 3, 64, 64))


def test_config_validation():
    with pytest.raises(ValueError):
        create_model("nafv_cls_tiny", mode="three-view")
    with pytest.raises(ValueError):
        create_model("nafv_cls_tiny", channels=("le", "dm", "rc"))


def test_a_few_steps_lower_the_loss():
    torch.manual_seed(0)
    m = create_model("nafv_cls_tiny", drop=0.0)
    for p in m.backbone.parameters():
        p.requires_grad_(False)
    g = torch.Generator().manual_seed(1)
    y = torch.tensor([0, 1, 0, 1, 1, 0, 1, 0])
    # malignant cases are brighter in the affected views: a learnable signal
    a = torch.rand(8, 2, 3, 56, 56, generator=g) * 0.5 + y.view(8, 1, 1, 1, 1) * 0.4
    c = torch.rand(8, 2, 3, 56, 56, generator=g) * 0.5
    adv = torch.rand(8, 2, 3, 56, 56, generator=g) * 0.5
    with torch.no_grad():
        ta, tc, tv = m.embed(a), m.embed(c), m.embed(adv)
    opt = torch.optim.AdamW(m.head.parameters(), lr=1e-3, weight_decay=1e-2)

    def loss_now():
        logits = m.head_forward(torch.cat([ta, ta]), torch.cat([tc, tv]))
        return nafv_loss(logits[:8], y, logits[8:])

    m.train()
    first = float(loss_now().detach())
    for _ in range(15):
        loss = loss_now()
        opt.zero_grad()
        loss.backward()
        opt.step()
    assert float(loss_now().detach()) < 0.7 * first


def test_checkpoint_round_trip(tmp_path):
    m = create_model("nafv_cls_tiny").eval()
    path = tmp_path / "cls.safetensors"
    save_checkpoint(m, path, dict(architecture=dict(name="nafv_cls_tiny", config={}), trained_on="test tensors"))
    loaded = load_checkpoint(path)
    x = torch.rand(1, 2, 3, 56, 56)
    with torch.no_grad():
        assert torch.allclose(loaded.model(x, x), m(x, x))
    assert loaded.identity["trained_on"] == "test tensors" and loaded.identity["not_for_clinical_use"]


def test_efficientnet_lite_backbone_gives_a_token_map_and_scores():
    import torch

    from core_model.models.registry import create_model

    torch.manual_seed(0)
    m = create_model("nafv_cls", backbone="tf_efficientnet_lite0", input_size=64, dims=(16, 24, 32),
                     depths=(1, 1, 1), num_heads=(2, 2, 2)).eval()
    assert m.is_cnn and m.token_grid == (4, 4) and m.backbone.num_features == 112
    x = torch.rand(2, 2, 3, 64, 64)
    tokens = m.embed(x)
    assert tokens.shape == (2, 2, 112, 4, 4)
    with torch.no_grad():
        four, dual = m(x, x.flip(-1)), m(x)
    assert four.shape == dual.shape == (2, 2) and torch.isfinite(four).all() and not torch.equal(four, dual)
    with pytest.raises(ValueError, match="multiple of 16"):
        create_model("nafv_cls", backbone="tf_efficientnet_lite0", input_size=56)
