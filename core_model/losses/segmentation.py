"""Segmentation loss: binary cross-entropy + soft Dice on the lesion class.

The paper does not give its segmentation loss. BCE alone lets the large
background (a lesion is a small part of a mammogram) dominate; soft Dice
optimises the reported metric directly but is noisy early; the sum is the
usual compromise. Views that do not exist (``valid`` False) add nothing, and
lesion-free views add only their BCE.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F


def soft_dice_loss(logits: torch.Tensor, target: torch.Tensor, valid: torch.Tensor | None = None,
                   eps: float = 1.0) -> torch.Tensor:
    """1 - soft Dice per image, averaged over valid images that contain a lesion. logits/target [N, 1, H, W].

    An image without a lesion is left to BCE: its soft Dice is eps / (sum p + eps), so any
    probability mass at all costs it the whole loss, and with many lesion-free images (both
    breasts of synthetic studies) that pushed training to predict nothing everywhere."""
    p = torch.sigmoid(logits).flatten(1)
    t = target.flatten(1).to(p.dtype)
    dice = (2 * (p * t).sum(1) + eps) / (p.sum(1) + t.sum(1) + eps)
    loss = 1 - dice
    w = (t.sum(1) > 0).to(loss.dtype)
    if valid is not None:
        w = w * valid.to(loss.dtype)
    return (loss * w).sum() / w.sum().clamp_min(1)


def bce_loss(logits: torch.Tensor, target: torch.Tensor, valid: torch.Tensor | None = None) -> torch.Tensor:
    per = F.binary_cross_entropy_with_logits(logits, target.to(logits.dtype), reduction="none").flatten(1).mean(1)
    if valid is None:
        return per.mean()
    w = valid.to(per.dtype)
    return (per * w).sum() / w.sum().clamp_min(1)


def seg_loss(logits: torch.Tensor, target: torch.Tensor, valid: torch.Tensor | None = None,
             dice_weight: float = 1.0) -> torch.Tensor:
    """BCE + dice_weight * soft Dice. Accepts [B, V, 1, H, W] (flattened to images) and
    ``valid`` [B, V] (or [N])."""
    if logits.dim() == 5:
        logits, target = logits.flatten(0, 1), target.flatten(0, 1)
        valid = valid.flatten() if valid is not None else None
    return bce_loss(logits, target, valid) + dice_weight * soft_dice_loss(logits, target, valid)
