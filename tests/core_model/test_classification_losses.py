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


def test_composite_loss_eq10_hand_computed():
    # p = (0.25, 0.75) against q = (0.5, 0.5); malignant target, alpha 0.5, gamma 2, beta 0.7
    lo = torch.tensor([[0.0, math.log(3.0)]])
    la = torch.tensor([[0.0, 0.0]])
    y = torch.tensor([1])
    focal = -0.5 * 0.25**2 * math.log(0.75)
    kl = 0.25 * math.log(0.5) + 0.75 * math.log(1.5)
    assert float(nafv_loss(lo, y, la, alpha=0.5, gamma=2.0, beta=0.7)) == pytest.approx(focal + 0.7 * kl, rel=1e-5)
    # no adversarial prediction, or beta 0: the focal term alone
    assert float(nafv_loss(lo, y, None, alpha=0.5, gamma=2.0)) == pytest.approx(focal, rel=1e-5)
    assert float(nafv_loss(lo, y, la, alpha=0.5, gamma=2.0, beta=0.0)) == pytest.approx(focal, rel=1e-5)


def test_confident_right_answer_costs_less_than_a_wrong_one():
    y = torch.tensor([1])
    right = torch.tensor([[0.0, 3.0]])  # p(malignant) = 0.95
    unsure = torch.tensor([[0.0, 0.0]])  # 0.5
    wrong = torch.tensor([[3.0, 0.0]])  # 0.05
    losses = [float(focal_loss(z, y, gamma=2.0)) for z in (right, unsure, wrong)]
    assert losses[0] < losses[1] < losses[2]
    # gamma = 2 down-weights the easy case far more than the hard one, relative to cross-entropy:
    # alpha_t (1 - p_t)^2 is 0.5 * 0.047^2 for the right answer and 0.5 * 0.953^2 for the wrong one
    ce = [float(torch.nn.functional.cross_entropy(z, y)) for z in (right, wrong)]
    assert losses[0] / ce[0] < 0.002 and losses[2] / ce[1] > 0.45


def test_robust_term_is_zero_only_when_the_predictions_agree():
    base = torch.tensor([[0.3, -1.2], [2.0, 0.5]])
    assert float(robust_kl(base, base.clone())) == pytest.approx(0.0, abs=1e-7)
    # shifting both logits by a constant is the same distribution
    assert float(robust_kl(base, base + 5.0)) == pytest.approx(0.0, abs=1e-6)
    closer, further = base + torch.tensor([0.0, 0.5]), base + torch.tensor([0.0, 2.0])
    assert 0 < float(robust_kl(base, closer)) < float(robust_kl(base, further))
    # the robust term pulls the adversarial prediction towards the original one
    adv = closer.clone().requires_grad_(True)
    robust_kl(base, adv).backward()
    assert (adv.grad[:, 1] > 0).all()  # gradient descent lowers the shifted logit back
