"""The plain-torch EfficientNet-Lite encoder: timm's numbers, the shipped weights, no timm at analysis time."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from core_model.models.checkpoint import load_checkpoint
from core_model.models.efficientnet_lite import EfficientNetLiteFeatures
from core_model.models.pretrained import LiteEncoder

REPO = Path(__file__).resolve().parents[2]
DEMO = REPO / "resources" / "demo"
WEIGHTS = REPO / "resources" / "weights"


def _timm_features(name: str, in_chans: int, n_stages: int) -> torch.nn.Module:
    """timm's features_only model as the encoder used to build it (tail blocks dropped)."""
    import timm

    net = timm.create_model(name, pretrained=False, features_only=True, in_chans=in_chans,
                            out_indices=tuple(range(n_stages)))
    net.blocks = net.blocks[: max(net._stage_out_idx)]
    return net


def _random_state(net: torch.nn.Module, seed: int) -> dict[str, torch.Tensor]:
    """Random weights and BatchNorm statistics (the defaults would make every BN nearly the identity)."""
    g = torch.Generator().manual_seed(seed)
    state = {}
    for k, v in net.state_dict().items():
        if not v.is_floating_point():
            state[k] = v.clone()
        elif k.endswith("running_var"):
            state[k] = torch.rand(v.shape, generator=g) + 0.5
        else:
            state[k] = torch.randn(v.shape, generator=g) * 0.3
    return state


@pytest.mark.parametrize("name, in_chans, n_stages", [
    ("tf_efficientnet_lite0", 1, 5), ("tf_efficientnet_lite0", 2, 4), ("tf_efficientnet_lite0", 3, 5),
    ("tf_efficientnet_lite1", 2, 4), ("tf_efficientnet_lite2", 3, 5),
])
def test_same_weights_give_timms_feature_maps(name, in_chans, n_stages):
    ref = _timm_features(name, in_chans, n_stages)
    ours = EfficientNetLiteFeatures(name, in_chans, n_stages)
    state = _random_state(ref, seed=in_chans)
    ref.load_state_dict(state, strict=True)
    ours.load_state_dict(state, strict=True)
    assert list(ours.state_dict()) == list(ref.state_dict())  # the same keys, in the same order
    assert ours.channels == tuple(ref.feature_info.channels())
    assert ours.reductions == tuple(ref.feature_info.reduction()) == (2, 4, 8, 16, 32)[:n_stages]
    # an odd size, not a multiple of 32: TF "SAME" padding pads one more pixel bottom/right
    x = torch.rand(2, in_chans, 250, 190, generator=torch.Generator().manual_seed(1)) * 2 - 1
    for train in (False, True):  # inference statistics, and batch statistics as in training
        ref.train(train)
        ours.train(train)
        with torch.no_grad():
            a, b = ref(x), ours(x)
        assert [t.shape for t in a] == [t.shape for t in b]
        assert b[0].shape[-2:] == (125, 95) and b[-1].shape[-2:] == {4: (16, 12), 5: (8, 6)}[n_stages]
        for i, (p, q) in enumerate(zip(a, b)):
            assert p.abs().max() > 0.1  # real activations, not a dead network
            assert torch.allclose(p, q, atol=1e-5), (i, train, float((p - q).abs().max()))


def test_unknown_variant_is_refused():
    with pytest.raises(ValueError, match="tf_efficientnet_lite0"):
        EfficientNetLiteFeatures("tf_efficientnet_lite4", 3)
    with pytest.raises(ValueError, match="n_stages"):
        EfficientNetLiteFeatures("tf_efficientnet_lite0", 3, n_stages=6)


def _breast(side: str, channels, size: tuple[int, int]) -> torch.Tensor:
    """[1, 2 (CC, MLO), C, H, W] demo images in [0, 1], simply resized."""
    files = {"le": "DM", "rc": "CM"}

    def img(c, v):
        im = Image.open(DEMO / f"P66_{side}_{files[c]}_{v}.jpg").convert("L").resize(size[::-1], Image.BILINEAR)
        return torch.from_numpy(np.asarray(im, dtype=np.float32) / 255.0)

    return torch.stack([torch.stack([img(c, v) for c in channels]) for v in ("CC", "MLO")])[None]


def test_shipped_weights_load_strictly_and_give_the_recorded_outputs():
    """The shipped weights load strictly (load_checkpoint) into this encoder and give the recorded
    values: the classifier's recorded through timm's encoder, which it was trained with."""
    from core_model.models.segmentation import lesion_probability

    torch.set_num_threads(1)
    seg = load_checkpoint(WEIGHTS / "segmentation" / "nafv_seg.safetensors").model
    cls = load_checkpoint(WEIGHTS / "classifier" / "nafv_cls.safetensors").model
    assert isinstance(seg.backbone, LiteEncoder) and isinstance(cls.backbone, LiteEncoder)
    assert seg.backbone.channels == (16, 24, 40, 112) and cls.backbone.reduction == 16
    size, s = tuple(seg.input_size), cls.input_size
    with torch.no_grad():
        p = lesion_probability(seg, _breast("L", seg.channels, size), _breast("R", seg.channels, size))
        p4 = cls(_breast("L", cls.channels, (s, s)), _breast("R", cls.channels, (s, s))).softmax(1)
        p2 = cls(_breast("L", cls.channels, (s, s))).softmax(1)
    assert p.shape == (1, 2, 256, 256)
    # the segmentation's: recorded with this encoder for the weights fine-tuned on more medium phantoms
    # (this encoder's equivalence with timm's is the feature test above)
    assert [float(p[0, i].mean()) for i in range(2)] == pytest.approx([0.1803475, 0.1835176], abs=1e-5)
    assert [float(p[0, i].max()) for i in range(2)] == pytest.approx([0.2901484, 0.8090623], abs=1e-5)
    # the classifier's (backbone fine-tuned on lesion squares): the same to 1e-7 with timm 1.0.31's
    # tf_efficientnet_lite0 (features_only) loaded with these weights as the encoder
    assert float(p4[0, 1]) == pytest.approx(0.6080762, abs=1e-5)
    assert float(p2[0, 1]) == pytest.approx(0.5963246, abs=1e-5)


def test_analysis_of_the_demo_imports_no_timm_and_gives_the_recorded_result(tmp_path):
    """``nafv-analyze`` on the demo study: timm (and with it torchvision, torch._dynamo: seconds at
    start-up) is never imported, and the findings are those recorded for the shipped weights."""
    out = subprocess.run([sys.executable, "-X", "importtime", "-m", "core_model.cli.analyze", str(DEMO),
                          "--out", str(tmp_path / "out")], cwd=REPO, capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr[-2000:]
    modules = {line.rsplit("|", 1)[-1].strip() for line in out.stderr.splitlines() if line.startswith("import time:")}
    assert "core_model.models.efficientnet_lite" in modules and "torch" in modules  # importtime was read
    heavy = sorted(m for m in modules if m.split(".")[0] in ("timm", "torchvision") or m.startswith("torch._dynamo"))
    assert heavy == [], heavy[:10]

    # the command ends without the interpreter's teardown: what it printed and wrote is all there
    assert "P66: affected breast right" in out.stdout and "not for clinical use" in out.stderr
    a = json.loads((tmp_path / "out" / "analysis.json").read_text())
    assert a["affected_side"] == "R" and a["lesion_found"] is True
    assert all((tmp_path / "out" / a["views"][k]["heatmap_png"]).stat().st_size > 0 for k in ("R_CC", "R_MLO"))
    assert a["malignancy_probability"] == pytest.approx(0.9909, abs=1e-4)
    assert a["side_evidence"] == pytest.approx({"R": 0.743567, "L": 0.66342}, abs=1e-5)
    found = {k: [(les["score"], les["area_px"]) for les in v["lesions"]] for k, v in a["views"].items()}
    recorded = {"R_CC": [(0.5357, 4669.0)], "L_CC": [(0.5972, 733.0)], "R_MLO": [(0.7436, 19881.0)],
                "L_MLO": [(0.6634, 1468.0), (0.5343, 595.0)]}
    assert found.keys() == recorded.keys() and all(len(found[k]) == len(recorded[k]) for k in recorded)
    for k, lesions in recorded.items():
        for (score, area), (got_score, got_area) in zip(lesions, found[k]):
            # a few pixels of slack for another CPU's rounding at the 0.5 threshold
            assert got_score == pytest.approx(score, abs=2e-4) and got_area == pytest.approx(area, rel=2e-3), k
