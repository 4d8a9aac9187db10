"""Distillation loss and the teacher: closed forms, labels optional, the original rebuilt from a converted model."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F

from poolswap.train import distillation_loss
from poolswap.train.distill import original_of


class TestDistillationLoss:
    def test_identical_logits_have_zero_kl(self):
        logits = torch.randn(4, 5)
        assert distillation_loss(logits, logits.clone(), alpha=1.0).item() == pytest.approx(0.0, abs=1e-6)

    def test_closed_form_two_classes(self):
        student = torch.tensor([[0.0, 0.0]])
        teacher = torch.tensor([[math.log(3.0), 0.0]])  # p = (3/4, 1/4) at T = 1
        t = 1.0
        expected = 0.75 * math.log(0.75 / 0.5) + 0.25 * math.log(0.25 / 0.5)
        got = distillation_loss(student, teacher, alpha=1.0, temperature=t)
        assert got.item() == pytest.approx(expected, rel=1e-6)

    def test_temperature_squared_scaling(self):
        student, teacher = torch.randn(8, 10), torch.randn(8, 10)
        t = 3.0
        kl = F.kl_div(F.log_softmax(student / t, 1), F.softmax(teacher / t, 1), reduction="batchmean")
        got = distillation_loss(student, teacher, alpha=1.0, temperature=t)
        torch.testing.assert_close(got, kl * t * t)

    def test_mix_with_cross_entropy(self):
        student, teacher = torch.randn(6, 4), torch.randn(6, 4)
        targets = torch.tensor([0, 1, 2, 3, 0, 1])
        kl = distillation_loss(student, teacher, alpha=1.0, temperature=2.0)
        ce = F.cross_entropy(student, targets)
        got = distillation_loss(student, teacher, targets, alpha=0.3, temperature=2.0)
        torch.testing.assert_close(got, 0.3 * kl + 0.7 * ce)

    def test_unlabelled_batch_is_pure_distillation(self):
        student, teacher = torch.randn(3, 4), torch.randn(3, 4)
        unlabelled = torch.full((3,), -1)
        torch.testing.assert_close(
            distillation_loss(student, teacher, unlabelled, alpha=0.2),
            distillation_loss(student, teacher, None, alpha=0.2),
        )

    def test_partly_labelled_batch_ignores_missing_labels(self):
        student, teacher = torch.randn(4, 3), torch.randn(4, 3)
        targets = torch.tensor([1, -1, 2, -1])
        kl = distillation_loss(student, teacher, alpha=1.0)
        ce = F.cross_entropy(student[[0, 2]], targets[[0, 2]])
        torch.testing.assert_close(distillation_loss(student, teacher, targets, alpha=0.5), 0.5 * kl + 0.5 * ce)

    def test_no_gradient_reaches_the_teacher(self):
        student = torch.randn(2, 3, requires_grad=True)
        teacher = torch.randn(2, 3, requires_grad=True)
        distillation_loss(student, teacher, alpha=1.0).backward()
        assert student.grad is not None and teacher.grad is None


class TestOriginal:
    def test_original_of_a_converted_model(self, converted):
        _, model, original = converted
        rebuilt = original_of(model)
        assert not any(type(m).__name__.startswith("SoftPool") for m in rebuilt.modules())
        x = torch.randn(2, 3, 16, 16)
        with torch.no_grad():
            torch.testing.assert_close(rebuilt(x), original(x))
        assert not rebuilt.training
