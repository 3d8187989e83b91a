"""Eq. 10-11: focal and KL robust terms against hand-computed values."""

import math

import pytest
import torch

from core_model.losses.classification import focal_loss, nafv_loss, robust_kl


def test_focal_loss_hand_computed():
    # logits (0, ln 3) -> p(malignant) = 0.75; logits (ln 4, 0) -> p(benign) = 0.8
    logits = torch.tensor([[0.0, math.log(3.0)], [math.log(4.0), 0.0]])
    target = torch.tensor([1, 1])
    alpha, gamma = 0.25, 2.0
    # case 1: p_t = 0.75 -> -0.25 * 0.25^2 * ln 0.75 ; case 2: p_t = 0.2 -> -0.25 * 0.8^2 * ln 0.2
    e1 = -0.25 * 0.25**2 * math.log(0.75)
    e2 = -0.25 * 0.8**2 * math.log(0.2)
    per = focal_loss(logits, target, alpha=alpha, gamma=gamma, reduction="none")
    assert per.tolist() == pytest.approx([e1, e2], rel=1e-5)
    assert float(focal_loss(logits, target, alpha=alpha, gamma=gamma)) == pytest.approx((e1 + e2) / 2, rel=1e-5)
    # benign target uses alpha_t = 1 - alpha: p_t = 0.8 for the second row
    b = focal_loss(logits[1:], torch.tensor([0]), alpha=alpha, gamma=gamma, reduction="none")
    assert float(b) == pytest.approx(-0.75 * 0.2**2 * math.log(0.8), rel=1e-5)


def test_focal_with_gamma_zero_is_weighted_cross_entropy():
    logits = torch.randn(6, 2, generator=torch.Generator().manual_seed(0))
    y = torch.tensor([0, 1, 1, 0, 1, 0])
    ce = torch.nn.functional.cross_entropy(logits, y)
    assert float(focal_loss(logits, y, alpha=0.5, gamma=0.0)) == pytest.approx(0.5 * float(ce), rel=1e-5)


def test_robust_kl_hand_computed():
    lo = torch.tensor([[0.0, math.log(3.0)]])  # p = (0.25, 0.75)
    la = torch.tensor([[0.0, 0.0]])  # q = (0.5, 0.5)
    expected = 0.25 * math.log(0.25 / 0.5) + 0.75 * math.log(0.75 / 0.5)
    assert float(robust_kl(lo, la)) == pytest.approx(expected, rel=1e-5)
    assert float(robust_kl(lo, lo)) == pytest.approx(0.0, abs=1e-7)
    # batch mean
    both = robust_kl(torch.cat([lo, lo]), torch.cat([la, lo]))
    assert float(both) == pytest.approx(expected / 2, rel=1e-5)


def test_composite_loss_eq10():
    lo = torch.tensor([[0.0, math.log(3.0)]])
    la = torch.tensor([[0.0, 0.0]])
    y = torch.tensor([1])
    total = nafv_loss(lo, y, la, alpha=0.5, gamma=2.0, beta=0.7)
    assert float(total) == pytest.approx(float(focal_loss(lo, y, 0.5, 2.0)) + 0.7 * float(robust_kl(lo, la)), rel=1e-6)
    assert float(nafv_loss(lo, y, None)) == pytest.approx(float(focal_loss(lo, y)), rel=1e-6)
