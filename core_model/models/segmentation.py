"""NaFV-Net breast-mass segmentation and the U-Net baseline.

Paper: "NaFV-Net", section "The Breast Mass Segmentation" (Eq. 1-7). One
breast at a time: its CC and MLO views go through a convolutional encoder,
are fused with the contralateral breast's same view (asymmetric-sensitive
fusion, Eq. 1-3), tokenised with a position embedding (Eq. 4), refined by
self-attention per view (Eq. 5-6) and cross-attention between CC and MLO,
the two streams mixed with learned lambda_S / lambda_C (Eq. 7), and decoded
back to H x W lesion logits.

Call contract (shared by every registered variant, U-Net included, so the
training, evaluation and analyzer code is one):

    logits = model(views, contra=None, present=None, contra_present=None)

- ``views``: float [B, 2, C, H, W]; index 0 = CC, 1 = MLO of ONE breast;
  C = len(model.channels) (``("rc",)`` or ``("le", "rc")``), each channel
  prepared by core_model.imaging.preprocess (normalize_image, then Letterbox).
- ``contra``: the contralateral breast's CC/MLO, same shape, as stored (not
  mirrored: the model mirrors it left-right so the same anatomy lines up), or
  None when missing. What stands in for a missing contralateral image is a
  learned spatial map (``no_contra_logit``, initialised to 0, i.e. M_s = 0.5
  everywhere): it carries no information about the other breast, only a
  learned prior over position, so the model never invents a comparison it
  cannot make, and the same weights serve both cases.
- ``present``: bool [B, 2], which of CC/MLO exists (default: both). A missing
  view is a zero image; it is excluded from cross-attention (the other view's
  cross-attention update is switched off) and its output should be ignored.
- ``contra_present``: bool [B, 2] (optional, additive to the contract): per
  sample and view, whether ``contra`` holds a real image, so a batch can mix
  breasts with and without a contralateral side. Default: all True when
  ``contra`` is given.
- Returns lesion logits [B, 2, 1, H, W] (sigmoid -> probability).

Attributes: ``model.input_size`` (H, W), ``model.channels``.
Registered: ``nafv_seg`` (default), ``nafv_seg_tiny`` (tests), ``unet``,
``unet_tiny``; flags ``asym_fusion`` and ``cross_attention`` rerun the
paper's Table 3 ablation.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field, fields
from typing import Callable

import torch
import torch.nn as nn
import torch.nn.functional as F

from core_model.models.pretrained import LiteEncoder
from core_model.models.registry import register_model


def _gn(ch: int) -> nn.GroupNorm:
    # groups of ~8 channels; GroupNorm because batches of a few breasts are too
    # small for BatchNorm statistics
    return nn.GroupNorm(max(1, min(8, ch // 4)), ch)


class ConvGnAct(nn.Sequential):
    """3x3 conv + GroupNorm + ReLU: the paper's encoder block unit."""

    def __init__(self, cin: int, cout: int, stride: int = 1,
                 norm_layer: Callable[[int], nn.Module] = _gn, act_layer: type[nn.Module] = nn.ReLU):
        super().__init__(nn.Conv2d(cin, cout, 3, stride, 1, bias=False), norm_layer(cout), act_layer(inplace=True))


class EncoderBlock(nn.Sequential):
    """One of the paper's three encoder blocks: a strided 3x3 conv-GN-ReLU (downsample by 2)
    followed by ``extra`` stride-1 conv-GN-ReLU units (depth where the paper is silent)."""

    def __init__(self, cin: int, cout: int, extra: int = 1):
        super().__init__(ConvGnAct(cin, cout, 2), *[ConvGnAct(cout, cout) for _ in range(extra)])


class UpBlock(nn.Module):
    """x2 bilinear upsample, concatenate the encoder skip, two conv-GN-ReLU."""

    def __init__(self, cin: int, cskip: int, cout: int):
        super().__init__()
        self.conv = nn.Sequential(ConvGnAct(cin + cskip, cout), ConvGnAct(cout, cout))

    def forward(self, x: torch.Tensor, skip: torch.Tensor | None) -> torch.Tensor:
        x = F.interpolate(x, size=skip.shape[-2:] if skip is not None else None,
                          scale_factor=None if skip is not None else 2.0, mode="bilinear", align_corners=False)
        if skip is not None:
            x = torch.cat([x, skip], 1)
        return self.conv(x)


class AsymmetricFusion(nn.Module):
    """Asymmetric-sensitive fusion with the contralateral breast, Eq. 1-3.

    M_s = Sig(Conv(AvgPool(Z_ua)))     (Eq. 1; AvgPool over channels -> one map)
    F   = Z_as * M_s                   (Eq. 2)
    Z   = Concat(Z_as, F)              (Eq. 3; 2*C1 channels)
    """

    def __init__(self, kernel: int = 7, feat_hw: tuple[int, int] = (32, 32)):
        super().__init__()
        self.conv = nn.Conv2d(1, 1, kernel, padding=kernel // 2)
        # stands in for Conv(AvgPool(Z_ua)) when there is no contralateral image
        self.no_contra_logit = nn.Parameter(torch.zeros(1, 1, *feat_hw))

    def attention_map(self, z_ua: torch.Tensor | None, like: torch.Tensor,
                      has_contra: torch.Tensor | None = None) -> torch.Tensor:
        fallback = self.no_contra_logit
        if fallback.shape[-2:] != like.shape[-2:]:
            fallback = F.interpolate(fallback, size=like.shape[-2:], mode="bilinear", align_corners=False)
        fallback = fallback.expand(like.shape[0], 1, *like.shape[-2:])
        if z_ua is None:
            return torch.sigmoid(fallback)
        logit = self.conv(z_ua.mean(1, keepdim=True))  # Eq. 1 before the sigmoid
        if has_contra is not None:
            logit = torch.where(has_contra.view(-1, 1, 1, 1), logit, fallback)
        return torch.sigmoid(logit)

    def forward(self, z_as: torch.Tensor, z_ua: torch.Tensor | None,
                has_contra: torch.Tensor | None = None) -> torch.Tensor:
        m_s = self.attention_map(z_ua, z_as, has_contra)
        return torch.cat([z_as, z_as * m_s], 1)  # Eq. 2-3


class Mlp(nn.Sequential):
    def __init__(self, dim: int, ratio: float):
        super().__init__(nn.Linear(dim, int(dim * ratio)), nn.GELU(), nn.Linear(int(dim * ratio), dim))


class SelfBlock(nn.Module):
    """Pre-norm transformer layer with multi-head self-attention, Eq. 5-6."""

    def __init__(self, dim: int, heads: int, mlp_ratio: float):
        super().__init__()
        self.norm1, self.norm2 = nn.LayerNorm(dim), nn.LayerNorm(dim)
        self.attn = nn.MultiheadAttention(dim, heads, batch_first=True)
        self.mlp = Mlp(dim, mlp_ratio)

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        h = self.norm1(z)
        z = z + self.attn(h, h, h, need_weights=False)[0]  # Eq. 5
        return z + self.mlp(self.norm2(z))  # Eq. 6


class CrossBlock(nn.Module):
    """The same layer with cross-attention: queries from one view, keys/values from the
    other view of the same breast. ``use_other`` [B] switches the attention update off
    where the other view is missing (its tokens are then excluded)."""

    def __init__(self, dim: int, heads: int, mlp_ratio: float):
        super().__init__()
        self.norm_q, self.norm_kv, self.norm2 = nn.LayerNorm(dim), nn.LayerNorm(dim), nn.LayerNorm(dim)
        self.attn = nn.MultiheadAttention(dim, heads, batch_first=True)
        self.mlp = Mlp(dim, mlp_ratio)

    def forward(self, z: torch.Tensor, other: torch.Tensor, use_other: torch.Tensor) -> torch.Tensor:
        kv = self.norm_kv(other)
        upd = self.attn(self.norm_q(z), kv, kv, need_weights=False)[0]
        z = z + upd * use_other.view(-1, 1, 1).to(upd.dtype)
        return z + self.mlp(self.norm2(z))


@dataclass
class NafvSegConfig:
    """NaFV-Net segmentation hyper-parameters. Where the paper is silent the values are
    chosen for training from scratch on a 2-core CPU in minutes per epoch:

    - input_size 160: sized for training from scratch on 2 CPU cores shared with
      other jobs (the shipped weights use 256 with a pretrained encoder); a small
      lesion must still cover a few dozen input pixels.
    - widths: stem + the paper's three encoder blocks (each halves the size, so the
      fused feature map is H/8); ``extra_convs`` stride-1 units per block.
    - patch 2 on the H/8 map -> P = 16 in image pixels, 10x10 = 100 tokens per view
      at 160 input, cheap enough for attention on a CPU.
    - dim 128, depth 2 per stream, 4 heads: a small transformer for ~100 training breasts.
    - skips: U-Net-style skip connections from the encoder to the decoder (the paper
      describes only a decoder); ``skips=False`` (``--no-skips``) removes them. The
      early run that compared the two on CDD-CESM-512 was not kept.
    """

    input_size: tuple[int, int] = (160, 160)
    channels: tuple[str, ...] = ("rc",)
    stem_width: int = 8
    widths: tuple[int, int, int] = (32, 64, 96)
    extra_convs: int = 1
    patch: int = 2
    dim: int = 128
    depth: int = 2
    heads: int = 4
    mlp_ratio: float = 2.0
    # thin at full resolution, where each channel costs the most
    decoder_widths: tuple[int, int, int, int] = (64, 32, 16, 8)
    asym_fusion: bool = True
    cross_attention: bool = True
    skips: bool = True
    mirror_contra: bool = True
    # "conv": the small GroupNorm encoder above, trained from scratch (the weights shipped before
    # pretrained encoders existed use it). An EfficientNet-Lite name ("tf_efficientnet_lite0")
    # uses its first four stages (strides 2-16) as the encoder, ImageNet-initialised by the
    # trainer unless --scratch: 114 annotated patients are too few to learn low-level features
    # from nothing, and Lite has no squeeze-excitation or swish, so it stays cheap on a CPU.
    # The fused map is then H/16, so ``patch`` 1 keeps the token grid at H/16.
    encoder: str = "conv"

    def __post_init__(self):
        # JSON model cards store tuples as lists
        self.input_size = tuple(int(v) for v in self.input_size)
        self.channels = tuple(self.channels)
        self.widths = tuple(self.widths)
        self.decoder_widths = tuple(self.decoder_widths)
        bad = set(self.channels) - {"le", "rc"}
        if bad or not self.channels:
            raise ValueError(f"channels must be from ('le', 'rc'), got {self.channels}")


def _defaults_present(views: torch.Tensor, present: torch.Tensor | None) -> torch.Tensor:
    if present is None:
        return torch.ones(views.shape[0], 2, dtype=torch.bool, device=views.device)
    return present.to(device=views.device, dtype=torch.bool)


class NafvSegNet(nn.Module):
    """NaFV-Net segmentation network (one breast: CC + MLO, optional contralateral)."""

    def __init__(self, cfg: NafvSegConfig):
        super().__init__()
        self.cfg = cfg
        self.input_size = cfg.input_size
        self.channels = cfg.channels
        cin = len(cfg.channels)
        if cfg.encoder == "conv":
            w0, (w1, w2, w3) = cfg.stem_width, cfg.widths
            self.stem = ConvGnAct(cin, w0)
            self.enc = nn.ModuleList([EncoderBlock(w0, w1, cfg.extra_convs), EncoderBlock(w1, w2, cfg.extra_convs),
                                      EncoderBlock(w2, w3, cfg.extra_convs)])
            self.backbone = None
            stride = 8
        else:
            self.backbone = LiteEncoder(cfg.encoder, cin, n_stages=4)
            w0, w1, w2, w3 = self.backbone.channels
            stride = 16
        fh, fw = cfg.input_size[0] // stride, cfg.input_size[1] // stride
        self.fusion = AsymmetricFusion(feat_hw=(fh, fw)) if cfg.asym_fusion else None
        c_fused = 2 * w3 if cfg.asym_fusion else w3
        self.patch_embed = nn.Conv2d(c_fused, cfg.dim, cfg.patch, cfg.patch)  # x_P^i E of Eq. 4
        self.grid = (fh // cfg.patch, fw // cfg.patch)
        self.pos_embed = nn.Parameter(torch.zeros(1, self.grid[0] * self.grid[1], cfg.dim))  # E_pos, Eq. 4
        nn.init.trunc_normal_(self.pos_embed, std=0.02)
        self.self_blocks = nn.ModuleList([SelfBlock(cfg.dim, cfg.heads, cfg.mlp_ratio) for _ in range(cfg.depth)])
        if cfg.cross_attention:
            self.cross_blocks = nn.ModuleList([CrossBlock(cfg.dim, cfg.heads, cfg.mlp_ratio) for _ in range(cfg.depth)])
            # lambda_S, lambda_C of Eq. 7, learned; start as an even mix
            self.lambdas = nn.Parameter(torch.tensor([0.5, 0.5]))
        else:
            self.cross_blocks = None
        self.norm = nn.LayerNorm(cfg.dim)
        d0, d1, d2, d3 = cfg.decoder_widths
        sk = cfg.skips
        self.up = nn.ModuleList([
            # each block upsamples to its skip's size: conv encoder H/16 -> H/8 -> H/4 -> H/2 -> H;
            # pretrained encoder: stays at H/16 (its skip is H/16 too) -> H/8 -> H/4 -> H/2, then a resize to H
            UpBlock(cfg.dim, c_fused if sk else 0, d0),
            UpBlock(d0, w2 if sk else 0, d1),
            UpBlock(d1, w1 if sk else 0, d2),
            UpBlock(d2, w0 if sk else 0, d3),
        ])
        self.head = nn.Conv2d(d3, 1, 1)

    def _encode(self, x: torch.Tensor) -> list[torch.Tensor]:
        if self.backbone is not None:
            return self.backbone(x)  # [H/2, H/4, H/8, H/16]
        feats = [self.stem(x)]
        for blk in self.enc:
            feats.append(blk(feats[-1]))
        return feats  # [H, H/2, H/4, H/8]

    def _encode_contra(self, c: torch.Tensor, has: torch.Tensor | None, like: torch.Tensor) -> torch.Tensor:
        """Deepest features of the contralateral images; only those that exist go through the
        encoder (most real breasts have none), the rest stay zero and the fusion ignores them."""
        if has is None or bool(has.all()):
            return self._encode(c)[-1]
        z = torch.zeros_like(like)
        if bool(has.any()):
            z[has] = self._encode(c[has])[-1].to(z.dtype)
        return z

    def _pos(self, n_hw: tuple[int, int]) -> torch.Tensor:
        if n_hw == self.grid:
            return self.pos_embed
        d = self.pos_embed.shape[-1]
        grid = self.pos_embed.reshape(1, *self.grid, d).permute(0, 3, 1, 2)
        grid = F.interpolate(grid, size=n_hw, mode="bicubic", align_corners=False)
        return grid.permute(0, 2, 3, 1).reshape(1, n_hw[0] * n_hw[1], d)

    def forward(self, views: torch.Tensor, contra: torch.Tensor | None = None,
                present: torch.Tensor | None = None, contra_present: torch.Tensor | None = None) -> torch.Tensor:
        B, V, C, H, W = views.shape
        present = _defaults_present(views, present)
        feats = self._encode(views.reshape(B * V, C, H, W))
        z_as = feats[-1]
        if self.fusion is not None:
            z_ua, has = None, None
            if contra is not None:
                c = contra.reshape(B * V, C, H, W)
                if self.cfg.mirror_contra:
                    c = torch.flip(c, dims=[-1])  # the other breast faces the other way
                has = (contra_present.reshape(B * V).to(torch.bool).to(views.device)
                       if contra_present is not None else None)
                z_ua = self._encode_contra(c, has, z_as)  # already aligned with the affected side
            z = self.fusion(z_as, z_ua, has)
        else:
            z = z_as
        t = self.patch_embed(z)
        gh, gw = t.shape[-2:]
        tokens = t.flatten(2).transpose(1, 2) + self._pos((gh, gw))  # Eq. 4
        z_s = tokens
        for blk in self.self_blocks:
            z_s = blk(z_s)  # Eq. 5-6, per view
        if self.cross_blocks is not None:
            z_c = tokens.reshape(B, V, gh * gw, -1)
            use = present[:, [1, 0]].reshape(B * V)  # CC attends to MLO and back, if it exists
            for blk in self.cross_blocks:
                other = z_c[:, [1, 0]].reshape(B * V, gh * gw, -1)
                z_c = blk(z_c.reshape(B * V, gh * gw, -1), other, use).reshape(B, V, gh * gw, -1)
            lam_s, lam_c = self.lambdas[0], self.lambdas[1]
            out = lam_s * z_s + lam_c * z_c.reshape(B * V, gh * gw, -1)  # Eq. 7
        else:
            out = z_s
        x = self.norm(out).transpose(1, 2).reshape(B * V, -1, gh, gw)
        skips = [z, feats[2], feats[1], feats[0]] if self.cfg.skips else [None] * 4
        for up, s in zip(self.up, skips):
            x = up(x, s)
        if x.shape[-2:] != (H, W):
            x = F.interpolate(x, size=(H, W), mode="bilinear", align_corners=False)
        return self.head(x).reshape(B, V, 1, H, W)


@dataclass
class UNetConfig:
    """Plain U-Net (Ronneberger et al. 2015) with GroupNorm, four downsamplings.
    Widths chosen so its parameter count is of the order of nafv_seg's."""

    input_size: tuple[int, int] = (160, 160)
    channels: tuple[str, ...] = ("rc",)
    widths: tuple[int, ...] = (16, 32, 64, 96, 192)
    # "conv": the plain U-Net encoder above; an EfficientNet-Lite name: its five stages
    # (strides 2-32) as the encoder, the decoder as wide as its stages (the same pretrained
    # encoder as nafv_seg, so the table compares the fusion and attention, not the encoder).
    encoder: str = "conv"

    def __post_init__(self):
        self.input_size = tuple(int(v) for v in self.input_size)
        self.channels = tuple(self.channels)
        self.widths = tuple(self.widths)


class UNet(nn.Module):
    """U-Net baseline behind the same call as NafvSegNet: each view segmented on its
    own; ``contra``, ``present`` and ``contra_present`` are accepted and ignored."""

    def __init__(self, cfg: UNetConfig):
        super().__init__()
        self.cfg = cfg
        self.input_size = cfg.input_size
        self.channels = cfg.channels
        if cfg.encoder == "conv":
            w = cfg.widths
            self.backbone = None
            self.inc = nn.Sequential(ConvGnAct(len(cfg.channels), w[0]), ConvGnAct(w[0], w[0]))
            self.down = nn.ModuleList([nn.Sequential(nn.MaxPool2d(2), ConvGnAct(w[i], w[i + 1]), ConvGnAct(w[i + 1], w[i + 1]))
                                       for i in range(len(w) - 1)])
        else:
            self.backbone = LiteEncoder(cfg.encoder, len(cfg.channels), n_stages=5)
            w = self.backbone.channels
        self.up = nn.ModuleList([UpBlock(w[i + 1], w[i], w[i]) for i in reversed(range(len(w) - 1))])
        self.head = nn.Conv2d(w[0], 1, 1)

    def forward(self, views: torch.Tensor, contra: torch.Tensor | None = None,
                present: torch.Tensor | None = None, contra_present: torch.Tensor | None = None) -> torch.Tensor:
        B, V, C, H, W = views.shape
        x = views.reshape(B * V, C, H, W)
        if self.backbone is not None:
            feats = list(self.backbone(x))  # strides 2..32
        else:
            feats = [self.inc(x)]
            for d in self.down:
                feats.append(d(feats[-1]))
        x = feats.pop()
        for up in self.up:
            x = up(x, feats.pop())
        x = self.head(x)
        if x.shape[-2:] != (H, W):  # a pretrained encoder's first stage is already at H/2
            x = F.interpolate(x, size=(H, W), mode="bilinear", align_corners=False)
        return x.reshape(B, V, 1, H, W)


def _build(cfg_cls, model_cls, defaults: dict, overrides: dict) -> nn.Module:
    known = {f.name for f in fields(cfg_cls)}
    unknown = set(overrides) - known
    if unknown:
        raise TypeError(f"unknown config keys for {model_cls.__name__}: {sorted(unknown)}")
    return model_cls(cfg_cls(**{**defaults, **overrides}))


def model_config(model: nn.Module) -> dict:
    """The JSON-able config that rebuilds ``model`` through the registry."""
    m = getattr(model, "module", model)
    return {k: list(v) if isinstance(v, tuple) else v for k, v in asdict(m.cfg).items()}


@register_model
def nafv_seg(**overrides) -> NafvSegNet:
    return _build(NafvSegConfig, NafvSegNet, {}, overrides)


@register_model
def nafv_seg_tiny(**overrides) -> NafvSegNet:
    tiny = dict(input_size=(64, 64), stem_width=4, widths=(8, 8, 16), extra_convs=0, dim=16, depth=1, heads=2,
                decoder_widths=(16, 8, 8, 4))
    return _build(NafvSegConfig, NafvSegNet, tiny, overrides)


@register_model
def unet(**overrides) -> UNet:
    return _build(UNetConfig, UNet, {}, overrides)


@register_model
def unet_tiny(**overrides) -> UNet:
    return _build(UNetConfig, UNet, dict(input_size=(64, 64), widths=(4, 8, 16)), overrides)


def lesion_probability(model: nn.Module, views: torch.Tensor, contra: torch.Tensor | None = None,
                       present: torch.Tensor | None = None, contra_present: torch.Tensor | None = None,
                       flip_tta: bool = False) -> torch.Tensor:
    """Sigmoid lesion probability [B, 2, H, W] of a batch of breasts ([B, 2, C, H, W] views).

    ``flip_tta`` also runs the mirrored breast (both views and the contralateral
    breast, as the training augmentation mirrors them) and averages the two
    probabilities mapped back; whether it helps is measured, not assumed
    (``nafv-train evaluate-seg --flip-tta``), and recorded in the weights' card.
    """
    def run(v: torch.Tensor, c: torch.Tensor | None) -> torch.Tensor:
        return torch.sigmoid(model(v, contra=c, present=present, contra_present=contra_present).float())[:, :, 0]

    prob = run(views, contra)
    if flip_tta:
        mirrored = run(views.flip(-1), contra.flip(-1) if contra is not None else None).flip(-1)
        prob = (prob + mirrored) / 2
    return prob
