"""NaFV-Net four-view (and dual-view) benign/malignant classifier.

Paper: "NaFV-Net: An Adversarial Four-view Network for Mammogram
Classification", section "Multi-view Classification Network". The paper's
appendix with the block designs is not public; the blocks here are designed
after MedViT (Manzari et al. 2023), which the paper cites as their origin:

- **MedCB** (Medical Convolution Block) ~ MedViT's ECB: a residual
  multi-head *convolutional* attention (grouped 3x3 conv, one group per head,
  BatchNorm, activation, 1x1 projection) followed by a residual conv MLP with
  a depthwise 3x3 (MedViT's locally-feed-forward). No self-attention.
- **MedTB** (Medical Transformer Block) ~ MedViT's LTB: efficient multi-head
  self-attention (keys/values spatially reduced by ``sr_ratio``) in parallel
  with a convolutional-attention branch, concatenated and projected (mixing
  low and high frequencies), then the conv MLP.
- **MedCTB** (Medical Cross Transformer Block): multi-head cross-attention in
  both directions between two token maps (queries from one, keys/values from
  the other, shared weights), then the conv MLP on each.

Layout (Figure 2 and the text): every view's DINOv2 token map [D, h, w] is
projected to ``dims[0]`` channels; stage 1 = L1 x MedCB + MedTB; stage 2 =
L2 x MedCB + MedTB, then MedCTB between CC and MLO of each side; stage 3 =
L3 x MedCB + MedTB, then MedCTB between the affected and the contralateral
side (their CC+MLO tokens concatenated); BatchNorm, global average pooling
over the affected side's tokens, MLP -> 2 logits (index 1 = malignant).
Stages 2 and 3 halve the token grid (strided 3x3 conv). All views share the
weights of the per-view blocks (a siamese design: a lesion looks the same on
either side).

Default depths ``L1, L2, L3 = 2, 2, 2`` and widths ``(128, 192, 256)``: the
DINOv2 token grid is already small (16x16 at 224 px), so a short stack per
stage suffices, and the head stays ~5 M parameters so it trains on a CPU from
cached token maps. Both are configurable.

Contract used by the analyzer and Grad-CAM::

    logits = model(affected, contralateral=None)

``affected`` / ``contralateral``: float [B, 2, C, H, W], index 0 = CC, 1 = MLO,
values in [0, 1], already multiplied by the position mask (Eq. 8; build them
with ``core_model.transforms.model_inputs.study_inputs``); ``contralateral=None`` runs
the dual-view path (the bilateral MedCTB is skipped). ``model.channels`` says
which energies fill the C=3 input channels (default ("le", "le", "rc"): the
paper classifies LE images, the RC channel adds the enhancement);
``model.input_size`` the square side in pixels; ``model.mode`` what it was
trained as ("four-view" or "dual-view"); ``model.backbone`` the feature extractor (the
EfficientNet-Lite encoder by default; a timm DINOv2 ViT when chosen: drop its
``num_prefix_tokens`` when reshaping its tokens); Grad-CAM targets
``head.stage1``, the head's first per-view stage (see
:data:`core_model.inference.explain.DEFAULT_TARGET` for why); ``model.head_forward(tokens_affected, tokens_contralateral=None)``
runs the classifier on cached token maps [B, 2, D, h, w].
"""

from __future__ import annotations

from typing import Sequence

import torch
import torch.nn as nn
import torch.nn.functional as F

from core_model.models.backbone import DINOV2_BACKBONES, IMAGENET_MEAN, IMAGENET_STD, create_backbone, tokens
from core_model.models.pretrained import ENCODERS, LiteEncoder
from core_model.models.registry import register_model
from core_model.transforms.position_mask import DEFAULT_DECAY

MODES = ("four-view", "dual-view")
DEFAULT_CHANNELS = ("le", "le", "rc")


class ConvMlp(nn.Module):
    """1x1 expand -> depthwise 3x3 -> act -> 1x1 project (MedViT's locally-feed-forward MLP)."""

    def __init__(self, dim: int, mlp_ratio: float = 3.0, act_layer=nn.GELU, drop: float = 0.0):
        super().__init__()
        hidden = int(dim * mlp_ratio)
        self.fc1 = nn.Conv2d(dim, hidden, 1)
        self.dw = nn.Conv2d(hidden, hidden, 3, padding=1, groups=hidden)
        self.act = act_layer()
        self.fc2 = nn.Conv2d(hidden, dim, 1)
        self.drop = nn.Dropout(drop)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.drop(self.fc2(self.act(self.dw(self.fc1(x)))))


class ConvAttention(nn.Module):
    """MedViT's multi-head convolutional attention: grouped 3x3 conv (one group per head), norm, act, 1x1."""

    def __init__(self, dim: int, head_dim: int = 16, norm_layer=nn.BatchNorm2d, act_layer=nn.ReLU):
        super().__init__()
        groups = max(1, dim // head_dim)
        while dim % groups:
            groups -= 1
        self.conv = nn.Conv2d(dim, dim, 3, padding=1, groups=groups, bias=False)
        self.norm = norm_layer(dim)
        self.act = act_layer()
        self.proj = nn.Conv2d(dim, dim, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.proj(self.act(self.norm(self.conv(x))))


class MedCB(nn.Module):
    """Medical Convolution Block (after MedViT's ECB): residual conv attention + conv MLP, no self-attention."""

    def __init__(self, dim: int, head_dim: int = 16, mlp_ratio: float = 3.0, norm_layer=nn.BatchNorm2d,
                 act_layer=nn.GELU, drop: float = 0.0):
        super().__init__()
        self.attn = ConvAttention(dim, head_dim, norm_layer=norm_layer)
        self.norm = norm_layer(dim)
        self.mlp = ConvMlp(dim, mlp_ratio, act_layer, drop)

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # [N, C, h, w] -> same
        x = x + self.attn(x)
        return x + self.mlp(self.norm(x))


class EfficientAttention(nn.Module):
    """Multi-head attention whose keys/values are spatially reduced by ``sr_ratio`` (MedViT's E-MHSA).

    With ``context`` it is cross-attention: queries from ``x``, keys/values from ``context``.
    """

    def __init__(self, dim: int, num_heads: int, sr_ratio: int = 1, drop: float = 0.0):
        super().__init__()
        if dim % num_heads:
            raise ValueError(f"dim {dim} not divisible by {num_heads} heads")
        self.num_heads = num_heads
        self.q = nn.Linear(dim, dim)
        self.kv = nn.Linear(dim, 2 * dim)
        self.proj = nn.Linear(dim, dim)
        self.drop = drop
        self.sr = nn.AvgPool2d(sr_ratio, sr_ratio) if sr_ratio > 1 else nn.Identity()

    def forward(self, x: torch.Tensor, context: torch.Tensor | None = None) -> torch.Tensor:
        """x: [N, C, h, w]; context: [N, C, h', w'] or None; returns [N, C, h, w]."""
        n, c, h, w = x.shape
        ctx = x if context is None else context
        if min(ctx.shape[-2:]) >= 2:
            ctx = self.sr(ctx)
        q = self.q(x.flatten(2).transpose(1, 2))
        k, v = self.kv(ctx.flatten(2).transpose(1, 2)).chunk(2, dim=-1)
        split = lambda t: t.reshape(n, t.shape[1], self.num_heads, c // self.num_heads).transpose(1, 2)  # noqa: E731
        out = F.scaled_dot_product_attention(split(q), split(k), split(v),
                                             dropout_p=self.drop if self.training else 0.0)
        out = self.proj(out.transpose(1, 2).reshape(n, h * w, c))
        return out.transpose(1, 2).reshape(n, c, h, w)


class MedTB(nn.Module):
    """Medical Transformer Block (after MedViT's LTB): self-attention || conv attention, merged, then conv MLP."""

    def __init__(self, dim: int, num_heads: int = 4, sr_ratio: int = 1, head_dim: int = 16, mlp_ratio: float = 3.0,
                 norm_layer=nn.BatchNorm2d, act_layer=nn.GELU, drop: float = 0.0):
        super().__init__()
        self.norm1 = norm_layer(dim)
        self.attn = EfficientAttention(dim, num_heads, sr_ratio, drop)
        self.conv_attn = ConvAttention(dim, head_dim, norm_layer=norm_layer)
        self.merge = nn.Conv2d(2 * dim, dim, 1)  # mixes the global (attention) and local (conv) frequencies
        self.norm2 = norm_layer(dim)
        self.mlp = ConvMlp(dim, mlp_ratio, act_layer, drop)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.norm1(x)
        x = x + self.merge(torch.cat([self.attn(y), self.conv_attn(y)], dim=1))
        return x + self.mlp(self.norm2(x))


class MedCTB(nn.Module):
    """Medical Cross Transformer Block: cross-attention a<->b (shared weights), then conv MLP on each."""

    def __init__(self, dim: int, num_heads: int = 4, mlp_ratio: float = 3.0, norm_layer=nn.BatchNorm2d,
                 act_layer=nn.GELU, drop: float = 0.0):
        super().__init__()
        self.norm_q = norm_layer(dim)
        self.norm_kv = norm_layer(dim)
        self.attn = EfficientAttention(dim, num_heads, 1, drop)
        self.norm2 = norm_layer(dim)
        self.mlp = ConvMlp(dim, mlp_ratio, act_layer, drop)

    def forward(self, a: torch.Tensor, b: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        a2 = a + self.attn(self.norm_q(a), self.norm_kv(b))
        b2 = b + self.attn(self.norm_q(b), self.norm_kv(a))
        return a2 + self.mlp(self.norm2(a2)), b2 + self.mlp(self.norm2(b2))


class Downsample(nn.Module):
    def __init__(self, in_dim: int, out_dim: int, norm_layer=nn.BatchNorm2d):
        super().__init__()
        self.conv = nn.Conv2d(in_dim, out_dim, 3, stride=2, padding=1, bias=False)
        self.norm = norm_layer(out_dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.norm(self.conv(x))


def _stage(dim: int, depth: int, num_heads: int, sr_ratio: int, mlp_ratio: float, drop: float) -> nn.Sequential:
    blocks: list[nn.Module] = [MedCB(dim, mlp_ratio=mlp_ratio, drop=drop) for _ in range(depth)]
    blocks.append(MedTB(dim, num_heads=num_heads, sr_ratio=sr_ratio, mlp_ratio=mlp_ratio, drop=drop))
    return nn.Sequential(*blocks)


class FourViewHead(nn.Module):
    """The hybrid classifier on token maps: stem, three stages, two MedCTBs, BN + GAP + MLP."""

    def __init__(self, in_dim: int, dims: Sequence[int] = (128, 192, 256), depths: Sequence[int] = (2, 2, 2),
                 num_heads: Sequence[int] = (4, 4, 8), sr_ratios: Sequence[int] = (2, 1, 1), mlp_ratio: float = 3.0,
                 drop: float = 0.1, num_classes: int = 2):
        super().__init__()
        if not (len(dims) == len(depths) == len(num_heads) == len(sr_ratios) == 3):
            raise ValueError("dims, depths, num_heads and sr_ratios need three entries (stages 1-3)")
        self.stem = nn.Sequential(nn.Conv2d(in_dim, dims[0], 1, bias=False), nn.BatchNorm2d(dims[0]))
        self.stage1 = _stage(dims[0], depths[0], num_heads[0], sr_ratios[0], mlp_ratio, drop)
        self.down2 = Downsample(dims[0], dims[1])
        self.stage2 = _stage(dims[1], depths[1], num_heads[1], sr_ratios[1], mlp_ratio, drop)
        self.cross_views = MedCTB(dims[1], num_heads[1], mlp_ratio, drop=drop)  # CC <-> MLO of one side
        self.down3 = Downsample(dims[1], dims[2])
        self.stage3 = _stage(dims[2], depths[2], num_heads[2], sr_ratios[2], mlp_ratio, drop)
        self.cross_sides = MedCTB(dims[2], num_heads[2], mlp_ratio, drop=drop)  # affected <-> contralateral
        self.norm = nn.BatchNorm2d(dims[2])
        self.mlp = nn.Sequential(nn.Linear(dims[2], dims[2]), nn.GELU(), nn.Dropout(drop), nn.Linear(dims[2], num_classes))

    def forward(self, tokens_affected: torch.Tensor, tokens_contralateral: torch.Tensor | None = None) -> torch.Tensor:
        """[B, 2, D, h, w] (+ same or None) -> logits [B, num_classes]."""
        if tokens_affected.ndim != 5 or tokens_affected.shape[1] != 2:
            raise ValueError(f"expected affected token maps [B, 2 (CC, MLO), D, h, w], got {tuple(tokens_affected.shape)}")
        b = tokens_affected.shape[0]
        sides = [tokens_affected]
        if tokens_contralateral is not None:
            if tokens_contralateral.shape != tokens_affected.shape:
                raise ValueError(f"contralateral token maps {tuple(tokens_contralateral.shape)} differ from affected "
                                 f"{tuple(tokens_affected.shape)}")
            sides.append(tokens_contralateral)
        s = len(sides)
        x = torch.stack(sides, dim=1).flatten(0, 2)  # [B*S*2, D, h, w]; order (case, side, view)
        x = self.stage1(self.stem(x))
        x = self.stage2(self.down2(x))
        x = x.unflatten(0, (b * s, 2))
        cc, mlo = self.cross_views(x[:, 0], x[:, 1])
        x = torch.stack([cc, mlo], dim=1).flatten(0, 1)
        x = self.stage3(self.down3(x))
        c, h, w = x.shape[1:]
        # one token map per side: CC and MLO side by side along the width
        x = x.unflatten(0, (b, s, 2)).permute(0, 1, 3, 4, 2, 5).reshape(b, s, c, h, 2 * w)
        aff = x[:, 0]
        if s == 2:
            aff, _ = self.cross_sides(aff, x[:, 1])
        pooled = self.norm(aff).mean(dim=(2, 3))
        return self.mlp(pooled)


class NafvClassifier(nn.Module):
    """DINOv2 backbone + four-view hybrid classifier (see the module docstring for the contract)."""

    def __init__(self, backbone: str = DINOV2_BACKBONES[0], input_size: int = 224, backbone_weights: str | None = None,
                 backbone_overrides: dict | None = None, mode: str = "four-view",
                 channels: Sequence[str] = DEFAULT_CHANNELS, dims: Sequence[int] = (128, 192, 256),
                 depths: Sequence[int] = (2, 2, 2), num_heads: Sequence[int] = (4, 4, 8),
                 sr_ratios: Sequence[int] = (2, 1, 1), mlp_ratio: float = 3.0, drop: float = 0.1,
                 position_decay: float = DEFAULT_DECAY, crop: float = 0.0, source_side: int = 0):
        super().__init__()
        if mode not in MODES:
            raise ValueError(f"mode must be one of {MODES}, not {mode!r}")
        channels = tuple(channels)
        if len(channels) != 3 or any(c not in ("le", "rc") for c in channels):
            raise ValueError(f"channels must be three of 'le'/'rc', got {channels}")
        self.input_size = int(input_size)
        self.mode = mode
        self.channels = channels
        self.position_decay = float(position_decay)  # Eq. 8 decay used to build inputs
        # lesion-centred square inputs (core_model.transforms.model_inputs); 0 = whole views, as the paper
        self.crop = float(crop)
        # longest side of the views it was trained on (0: not recorded); larger views are shrunk to it
        self.source_side = int(source_side)
        self.backbone_name = backbone
        if backbone in ENCODERS:
            # A CNN's stride-16 map is the token map (14 x 14 at 224 px, like DINOv2's 16 x 16);
            # the encoder normalises its own input, and the trainer copies ImageNet weights in.
            if backbone_weights is not None or backbone_overrides:
                raise ValueError(f"{backbone} takes its ImageNet weights from its package (training only), "
                                 "not from backbone_weights / overrides")
            if self.input_size % 16:
                raise ValueError(f"input size must be a multiple of 16 for {backbone}, got {self.input_size}")
            self.backbone = LiteEncoder(backbone, 3, n_stages=4)
            mean, std = (0.0, 0.0, 0.0), (1.0, 1.0, 1.0)
        else:
            self.backbone = create_backbone(backbone, img_size=self.input_size, weights=backbone_weights,
                                            **dict(backbone_overrides or {}))
            mean, std = IMAGENET_MEAN, IMAGENET_STD
        self.head = FourViewHead(self.backbone.num_features, dims, depths, num_heads, sr_ratios, mlp_ratio, drop)
        self.register_buffer("pixel_mean", torch.tensor(mean).view(1, 3, 1, 1), persistent=False)
        self.register_buffer("pixel_std", torch.tensor(std).view(1, 3, 1, 1), persistent=False)

    @property
    def is_cnn(self) -> bool:
        return isinstance(self.backbone, LiteEncoder)

    @property
    def token_grid(self) -> tuple[int, int]:
        if self.is_cnn:
            n = self.input_size // self.backbone.reduction
            return (n, n)
        return tuple(self.backbone.patch_embed.grid_size)  # type: ignore[return-value]

    def embed(self, views: torch.Tensor) -> torch.Tensor:
        """Backbone token maps: [B, V, C, H, W] images in [0, 1] -> [B, V, D, h, w]."""
        if views.ndim != 5 or views.shape[2] != 3 or views.shape[-2:] != (self.input_size, self.input_size):
            raise ValueError(f"expected images [B, V, 3, {self.input_size}, {self.input_size}], got {tuple(views.shape)}")
        x = (views.flatten(0, 1) - self.pixel_mean) / self.pixel_std
        t = self.backbone(x)[-1] if self.is_cnn else tokens(self.backbone, x)
        return t.unflatten(0, views.shape[:2])

    def head_forward(self, tokens_affected: torch.Tensor, tokens_contralateral: torch.Tensor | None = None) -> torch.Tensor:
        return self.head(tokens_affected, tokens_contralateral)

    def forward(self, affected: torch.Tensor, contralateral: torch.Tensor | None = None) -> torch.Tensor:
        if contralateral is None:
            return self.head(self.embed(affected))
        both = self.embed(torch.cat([affected, contralateral], dim=1))
        return self.head(both[:, :2], both[:, 2:])


@register_model
def nafv_cls(**config) -> NafvClassifier:
    """Default: vit_small_patch14_dinov2 at 224 px, head widths (128, 192, 256), L1-L3 = 2."""
    return NafvClassifier(**config)


@register_model
def nafv_cls_tiny(**config) -> NafvClassifier:
    """Test variant: a 1-block 48-wide DINOv2-architecture ViT at 56 px (4x4 tokens) and a small head."""
    defaults = dict(input_size=56, backbone_overrides=dict(depth=1, embed_dim=48, num_heads=2),
                    dims=(16, 24, 32), depths=(1, 1, 1), num_heads=(2, 2, 2), sr_ratios=(1, 1, 1), mlp_ratio=2.0)
    defaults.update(config)
    return NafvClassifier(**defaults)
