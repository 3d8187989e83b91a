"""Classification losses: focal loss (Eq. 11) plus beta * KL robust term (Eq. 10).

    L = L_focal + beta * L_robust                                  # Eq. 10
    FL(p_t) = -alpha_t * (1 - p_t)^gamma * log(p_t)                # Eq. 11
    L_robust = KL(p(original) || p(adversarial))

Logits are [B, 2] (index 1 = malignant). ``alpha`` is the weight of the
malignant class (alpha_t = alpha for malignant, 1 - alpha for benign).

Defaults and why:
- ``gamma = 2``: the value Lin et al. found best and the usual choice; it
  down-weights easy cases without ignoring them.
- ``alpha = 0.5``: no class re-weighting by default. The paper's cohort is
  59 % malignant, close to balanced; set ``alpha`` to the benign fraction of
  the training set to up-weight the rarer class when the data are skewed.
- ``beta = 1``: the paper gives no value; 1 keeps the robust term on the same
  scale as the focal term early in training (both are O(0.1-1) nats).

The KL term follows TRADES: gradients flow through both predictions, so the
model is pulled to agree on the original and the adversarial sample.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

DEFAULT_GAMMA = 2.0
DEFAULT_ALPHA = 0.5
DEFAULT_BETA = 1.0


def focal_loss(logits: torch.Tensor, target: torch.Tensor, alpha: float = DEFAULT_ALPHA,
               gamma: float = DEFAULT_GAMMA, reduction: str = "mean") -> torch.Tensor:
    """Eq. 11 for two classes; ``target`` holds 0 (benign) / 1 (malignant)."""
    target = target.long()
    log_p = F.log_softmax(logits, dim=1)
    log_pt = log_p.gather(1, target[:, None]).squeeze(1)
    pt = log_pt.exp()
    alpha_t = torch.where(target == 1, torch.full_like(pt, alpha), torch.full_like(pt, 1.0 - alpha))
    loss = -alpha_t * (1.0 - pt).pow(gamma) * log_pt
    if reduction == "mean":
        return loss.mean()
    if reduction == "sum":
        return loss.sum()
    return loss


def robust_kl(logits_original: torch.Tensor, logits_adversarial: torch.Tensor) -> torch.Tensor:
    """KL(p_orig || p_adv), summed over classes and averaged over the batch (the robust term of Eq. 10)."""
    log_p = F.log_softmax(logits_original, dim=1)
    log_q = F.log_softmax(logits_adversarial, dim=1)
    return (log_p.exp() * (log_p - log_q)).sum(dim=1).mean()


def nafv_loss(logits_original: torch.Tensor, target: torch.Tensor, logits_adversarial: torch.Tensor | None = None,
              alpha: float = DEFAULT_ALPHA, gamma: float = DEFAULT_GAMMA, beta: float = DEFAULT_BETA) -> torch.Tensor:
    """Eq. 10; without an adversarial prediction it is the focal loss alone."""
    loss = focal_loss(logits_original, target, alpha=alpha, gamma=gamma)
    if logits_adversarial is not None and beta > 0:
        loss = loss + beta * robust_kl(logits_original, logits_adversarial)
    return loss
