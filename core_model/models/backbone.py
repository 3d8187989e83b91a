"""DINOv2 backbone through timm: never downloads, loads weights only from a local file.

``create_backbone`` builds a timm DINOv2 ViT (``vit_small_patch14_dinov2`` by
default; ``vit_base_patch14_dinov2`` / ``vit_large_patch14_dinov2`` and the
``*_reg4_*`` register variants are accepted) with ``pretrained=False``. A
local weights file is read here, never by timm's loader: ``.safetensors``
through safetensors, anything else through ``torch.load(weights_only=True)``
(no pickle code runs). The state dict then goes through timm's ViT checkpoint
filter, which converts the official Meta checkpoints
(``dinov2_vits14_pretrain.pth``: key names, position-embedding resize), and is
loaded strictly. No network access happens in either case.

``overrides`` (e.g. ``depth=6, embed_dim=192, num_heads=3``) shrink the ViT
for CPU work and for weights small enough to ship; official checkpoints only
fit the unmodified architecture.

``tokens(vit, x)`` returns the patch-token map [B, D, H/14, W/14] with all
prefix tokens (class + registers, ``num_prefix_tokens``) dropped; Grad-CAM's
reshape transform must drop the same number.
"""

from __future__ import annotations

from pathlib import Path

import torch

from core_model.domain.errors import ModelLoadError

DINOV2_BACKBONES = (
    "vit_small_patch14_dinov2",
    "vit_base_patch14_dinov2",
    "vit_large_patch14_dinov2",
    "vit_small_patch14_reg4_dinov2",
    "vit_base_patch14_reg4_dinov2",
    "vit_large_patch14_reg4_dinov2",
)
SHORT_NAMES = {"small": DINOV2_BACKBONES[0], "base": DINOV2_BACKBONES[1], "large": DINOV2_BACKBONES[2]}
# DINOv2 was trained on ImageNet-normalised RGB.
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


def resolve_name(name: str) -> str:
    name = SHORT_NAMES.get(name, name)
    if name not in DINOV2_BACKBONES:
        raise ValueError(f"unknown DINOv2 backbone {name!r}; choose one of {', '.join(DINOV2_BACKBONES)} (or small/base/large)")
    return name


def create_backbone(name: str = DINOV2_BACKBONES[0], img_size: int = 224, weights: str | Path | None = None,
                    **overrides) -> torch.nn.Module:
    """A timm DINOv2 ViT without classifier (num_classes=0) for ``img_size`` square inputs."""
    name = resolve_name(name)
    if img_size % 14:
        raise ValueError(f"input size must be a multiple of the 14-pixel patch, got {img_size}")
    # timm is imported here, not at module level: it costs seconds at start-up (torchvision,
    # torch._dynamo), and only a DINOv2 backbone needs it
    import timm

    kwargs = dict(num_classes=0, img_size=img_size, dynamic_img_size=False, **overrides)
    if weights is None:
        return timm.create_model(name, pretrained=False, **kwargs)
    weights = Path(weights)
    if not weights.is_file():
        raise ModelLoadError("DINOv2 backbone weights file not found", weights)
    state = read_state_dict(weights)
    model = timm.create_model(name, pretrained=False, **kwargs)
    try:
        from timm.models.vision_transformer import checkpoint_filter_fn

        model.load_state_dict(checkpoint_filter_fn(state, model), strict=True)
    except (RuntimeError, ValueError, KeyError, TypeError) as exc:
        raise ModelLoadError(f"cannot load these weights into {name} ({str(exc).splitlines()[0][:200]})", weights) from None
    return model


def read_state_dict(path: Path) -> dict[str, torch.Tensor]:
    """Tensors of a local weights file: safetensors, or a torch file read with weights_only=True."""
    try:
        if path.suffix.lower() == ".safetensors":
            from safetensors.torch import load_file

            state = load_file(str(path), device="cpu")
        else:
            state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # noqa: BLE001 - any reader failure: the file is not usable weights
        raise ModelLoadError(f"not a weights file this program reads safely ({str(exc).splitlines()[0][:200]})",
                             path) from None
    # Training checkpoints often wrap the weights: {"model": {...}} or {"state_dict": {...}}.
    for key in ("model", "state_dict", "teacher"):
        if isinstance(state, dict) and isinstance(state.get(key), dict):
            state = state[key]
    if not isinstance(state, dict) or not all(isinstance(v, torch.Tensor) for v in state.values()):
        raise ModelLoadError("the file holds no plain tensor state dict", path)
    return state


def tokens(vit: torch.nn.Module, x: torch.Tensor) -> torch.Tensor:
    """Patch-token map [B, D, h, w] from ImageNet-normalised images [B, 3, H, W]."""
    feats = vit.forward_features(x)  # [B, prefix + h*w, D], final norm applied
    grid = vit.patch_embed.grid_size
    patch = feats[:, vit.num_prefix_tokens :]
    b, n, d = patch.shape
    if n != grid[0] * grid[1]:
        raise ValueError(f"expected {grid[0]}x{grid[1]} patch tokens, got {n}")
    return patch.transpose(1, 2).reshape(b, d, grid[0], grid[1])
