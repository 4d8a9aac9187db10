"""The demo's network: a small CNN with both max and average pooling, built from a spec.

``poolswap.demo.model:digits_cnn`` is a ``package.module:factory`` spec, so
``poolswap inspect/convert`` and :func:`poolswap.load` rebuild it like any
user's own architecture.
"""

from __future__ import annotations

from torch import nn

__all__ = ["DigitsCNN", "digits_cnn"]


class DigitsCNN(nn.Module):
    """Three conv blocks, pooled by MaxPool, AvgPool and MaxPool, then a global-average head."""

    def __init__(self, num_classes: int = 10, in_chans: int = 1, width: int = 16) -> None:
        super().__init__()
        self.num_classes = num_classes
        # the input it is made for (the demo's 8x8 digits upsampled to 16x16), stated the way timm models state
        # theirs, so that `poolswap inspect/convert --data` read images at this size
        self.pretrained_cfg = {"input_size": (int(in_chans), 16, 16)}
        w = int(width)

        def block(cin: int, cout: int) -> nn.Sequential:
            return nn.Sequential(nn.Conv2d(cin, cout, 3, padding=1, bias=False), nn.BatchNorm2d(cout), nn.ReLU(inplace=True))

        self.block1 = block(in_chans, w)
        self.pool1 = nn.MaxPool2d(2)
        self.block2 = block(w, 2 * w)
        self.pool2 = nn.AvgPool2d(2)
        self.block3 = block(2 * w, 4 * w)
        self.pool3 = nn.MaxPool2d(3, stride=2, padding=1)
        self.head_pool = nn.AdaptiveAvgPool2d(1)
        self.fc = nn.Linear(4 * w, num_classes)

    def forward(self, x):
        x = self.pool1(self.block1(x))
        x = self.pool2(self.block2(x))
        x = self.pool3(self.block3(x))
        return self.fc(self.head_pool(x).flatten(1))


def digits_cnn(num_classes: int = 10, in_chans: int = 1, width: int = 16) -> DigitsCNN:
    """The demo CNN (random weights); the spec is ``poolswap.demo.model:digits_cnn``."""
    return DigitsCNN(num_classes=num_classes, in_chans=in_chans, width=width)
