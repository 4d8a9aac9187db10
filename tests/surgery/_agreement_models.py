"""Small models for the sensitivity and accuracy-targeted convert tests (specs: ``tests.surgery._agreement_models:NAME``)."""

from __future__ import annotations

import torch
from torch import nn
from torch.nn import functional as F


class HurtfulNet(nn.Module):
    """Two local pools: ``pool1`` (MaxPool) is harmless once calibrated; ``pool2`` (AvgPool) pools
    activations scaled by 1000, so SoftPool at any beta of the calibration grid (0.25 and up) acts like
    max pooling there, far from the average: swapping it alone changes many answers."""

    def __init__(self, num_classes: int = 4, in_chans: int = 3) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(in_chans, 8, 3, padding=1)
        self.pool1 = nn.MaxPool2d(2)
        self.conv2 = nn.Conv2d(8, 8, 3, padding=1)
        self.pool2 = nn.AvgPool2d(2)
        self.fc = nn.Linear(8 * 4 * 4, num_classes)

    def forward(self, x):
        x = self.pool1(F.relu(self.conv1(x)))
        x = self.pool2(self.conv2(x) * 1000.0) / 1000.0
        return self.fc(x.flatten(1))


def hurtful_net(num_classes: int = 4, in_chans: int = 3) -> HurtfulNet:
    return HurtfulNet(num_classes=num_classes, in_chans=in_chans)
