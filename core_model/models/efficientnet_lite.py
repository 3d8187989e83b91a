"""EfficientNet-Lite feature encoder in plain torch: the encoder of the shipped weights, without timm.

Importing timm costs seconds (it imports torchvision, which imports
``torch._dynamo``), and analysing a study needs only this small CNN, so it is
written out here. It reproduces timm's ``tf_efficientnet_lite0/1/2`` built
with ``features_only=True`` exactly: the same modules under the same names
(``conv_stem``, ``bn1``, ``blocks.S.B.conv_dw`` ...), so a state dict of one
loads strictly into the other, and the same arithmetic, so the same weights
give the same feature maps (``tests/core_model/test_efficientnet_lite.py``
compares the two).

EfficientNet-Lite is EfficientNet without squeeze-excite, with ReLU6 and a
fixed 32-channel stem; lite1/lite2 only scale block widths and repeats. The
``tf_`` weights come from TensorFlow, whose "SAME" padding pads an odd
remainder on the bottom/right; stride-2 convolutions therefore pad from the
input size at run time, stride-1 ones symmetrically. BatchNorm uses
TensorFlow's eps 1e-3.

Feature stages (``out_indices`` 0-4): the ends of blocks 0, 1, 2, 4, 6, at
strides 2, 4, 8, 16, 32; blocks after the last stage asked for are not built.
"""

from __future__ import annotations

import math

import torch
import torch.nn as nn
import torch.nn.functional as F

# name -> (channel multiplier, depth multiplier), as in timm's _gen_efficientnet_lite
VARIANTS = {
    "tf_efficientnet_lite0": (1.0, 1.0),
    "tf_efficientnet_lite1": (1.0, 1.1),
    "tf_efficientnet_lite2": (1.1, 1.2),
}
# Per block group: (depthwise-separable?, repeats, kernel, stride, expansion, out channels).
ARCH = (
    (True, 1, 3, 1, 1, 16),
    (False, 2, 3, 2, 6, 24),
    (False, 2, 5, 2, 6, 40),
    (False, 3, 3, 2, 6, 80),
    (False, 3, 5, 1, 6, 112),
    (False, 4, 5, 2, 6, 192),
    (False, 1, 3, 1, 6, 320),
)
STEM_CHANNELS = 32
# Block group whose end is feature stage i (the group before the next stride-2 group, and the last).
STAGE_GROUPS = (0, 1, 2, 4, 6)
BN_EPS = 1e-3  # TensorFlow's default; the tf_ weights were trained with it


def make_divisible(v: float, divisor: int = 8) -> int:
    """Channels rounded to a multiple of 8, never more than 10 % below ``v`` (TF EfficientNet's rule)."""
    new_v = max(divisor, int(v + divisor / 2) // divisor * divisor)
    return new_v + divisor if new_v < 0.9 * v else new_v


def scaled_repeats(repeats: int, depth_multiplier: float, group: int) -> int:
    # the first and the last group keep their single block in every Lite variant
    if group in (0, len(ARCH) - 1):
        return repeats
    return int(math.ceil(repeats * depth_multiplier))


class Conv2dSame(nn.Conv2d):
    """Convolution with TensorFlow "SAME" padding (no bias). Stride 1: symmetric padding k // 2;
    stride 2: padded at run time from the input size, the odd pixel on the bottom/right."""

    def __init__(self, in_chs: int, out_chs: int, kernel: int, stride: int = 1, groups: int = 1):
        super().__init__(in_chs, out_chs, kernel, stride, padding=kernel // 2 if stride == 1 else 0,
                         groups=groups, bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.stride[0] == 1:
            return super().forward(x)
        pads = []
        for size in (x.shape[-1], x.shape[-2]):  # F.pad takes the last dimension first
            total = max((math.ceil(size / self.stride[0]) - 1) * self.stride[0] + self.kernel_size[0] - size, 0)
            pads += [total // 2, total - total // 2]
        return super().forward(F.pad(x, pads))


def batch_norm(channels: int) -> nn.BatchNorm2d:
    return nn.BatchNorm2d(channels, eps=BN_EPS)


class DepthwiseSeparableConv(nn.Module):
    """Depthwise k x k -> BN -> ReLU6 -> pointwise 1x1 -> BN (the first block; residual when shapes allow)."""

    def __init__(self, in_chs: int, out_chs: int, kernel: int, stride: int):
        super().__init__()
        self.conv_dw = Conv2dSame(in_chs, in_chs, kernel, stride, groups=in_chs)
        self.bn1 = batch_norm(in_chs)
        self.conv_pw = Conv2dSame(in_chs, out_chs, 1)
        self.bn2 = batch_norm(out_chs)
        self.has_skip = stride == 1 and in_chs == out_chs

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = F.relu6(self.bn1(self.conv_dw(x)))
        y = self.bn2(self.conv_pw(y))
        return y + x if self.has_skip else y


class InvertedResidual(nn.Module):
    """MobileNetV2 block: 1x1 expand -> BN -> ReLU6 -> depthwise k x k -> BN -> ReLU6 -> 1x1 project -> BN."""

    def __init__(self, in_chs: int, out_chs: int, kernel: int, stride: int, expansion: int):
        super().__init__()
        mid = make_divisible(in_chs * expansion)
        self.conv_pw = Conv2dSame(in_chs, mid, 1)
        self.bn1 = batch_norm(mid)
        self.conv_dw = Conv2dSame(mid, mid, kernel, stride, groups=mid)
        self.bn2 = batch_norm(mid)
        self.conv_pwl = Conv2dSame(mid, out_chs, 1)
        self.bn3 = batch_norm(out_chs)
        self.has_skip = stride == 1 and in_chs == out_chs

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = F.relu6(self.bn1(self.conv_pw(x)))
        y = F.relu6(self.bn2(self.conv_dw(y)))
        y = self.bn3(self.conv_pwl(y))
        return y + x if self.has_skip else y


class EfficientNetLiteFeatures(nn.Module):
    """The first ``n_stages`` feature maps of EfficientNet-Lite ``name`` on ``in_chans`` channels.

    ``channels`` / ``reductions``: channels and stride of each returned map. The input is
    expected already normalised (the Lite weights were trained on [-1, 1])."""

    def __init__(self, name: str = "tf_efficientnet_lite0", in_chans: int = 3, n_stages: int = 5):
        super().__init__()
        if name not in VARIANTS:
            raise ValueError(f"unknown EfficientNet-Lite {name!r}; choose one of {', '.join(VARIANTS)}")
        if not 1 <= n_stages <= len(STAGE_GROUPS):
            raise ValueError(f"n_stages must be 1-{len(STAGE_GROUPS)}, got {n_stages}")
        width, depth = VARIANTS[name]
        self.conv_stem = Conv2dSame(in_chans, STEM_CHANNELS, 3, 2)
        self.bn1 = batch_norm(STEM_CHANNELS)
        n_groups = STAGE_GROUPS[n_stages - 1] + 1
        groups, chs, stride = [], STEM_CHANNELS, 2
        channels, reductions = [], []
        for g, (ds, repeats, kernel, s, expansion, out) in enumerate(ARCH[:n_groups]):
            out = make_divisible(out * width)
            blocks = []
            for i in range(scaled_repeats(repeats, depth, g)):
                bs = s if i == 0 else 1
                blocks.append(DepthwiseSeparableConv(chs, out, kernel, bs) if ds
                              else InvertedResidual(chs, out, kernel, bs, expansion))
                chs = out
            stride *= s
            groups.append(nn.Sequential(*blocks))
            if g in STAGE_GROUPS:
                channels.append(out)
                reductions.append(stride)
        self.blocks = nn.Sequential(*groups)
        self.channels = tuple(channels)
        self.reductions = tuple(reductions)

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        x = F.relu6(self.bn1(self.conv_stem(x)))
        features = []
        for g, group in enumerate(self.blocks):
            x = group(x)
            if g in STAGE_GROUPS:
                features.append(x)
        return features
