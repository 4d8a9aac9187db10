"""Shift consistency against hand-computed cases, and ``poolswap eval --consistency``."""

from __future__ import annotations

import json
import math
import subprocess
import sys

import pytest
import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.data import TensorDataset

from poolswap.cli import main
from poolswap.errors import PoolswapError
from poolswap.train import shift_consistency
from poolswap.train.consistency import default_max_shift

SIZE = ["--input-size", "16,16", "--crop-pct", "1"]


class OffsetReader(nn.Module):
    """Predicts the crop's horizontal offset: its top-left pixel holds the column index of the uncropped image."""

    def __init__(self, classes: int) -> None:
        super().__init__()
        self.classes = classes
        self.anchor = nn.Parameter(torch.zeros(1))  # a parameter, so the device is found like any model's

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        offset = x[:, 0, 0, 0].round().long().clamp(0, self.classes - 1)
        return F.one_hot(offset, self.classes).float() + self.anchor


def _column_images(count: int, crop: int, shift: int) -> TensorDataset:
    side = crop + shift
    columns = torch.arange(side, dtype=torch.float32).expand(count, 1, side, side).clone()
    return TensorDataset(columns, torch.zeros(count, dtype=torch.long))


def test_a_model_reading_the_offset_agrees_one_time_in_s():
    # Two offsets drawn uniformly from [0, 4): the same class exactly when they are equal, probability 1/4.
    result = shift_consistency(OffsetReader(4), _column_images(400, 8, 4), crop=(8, 8), max_shift=4, passes=5)
    assert result.images == 400 and result.passes == 5 and result.max_shift == 4
    # the standard error over images: each image's mean of 5 Bernoulli(1/4) draws
    expected_se = math.sqrt(0.25 * 0.75 / 5 / 400)
    assert result.stderr == pytest.approx(expected_se, rel=0.25)
    assert abs(result.consistency - 0.25) < 4 * expected_se


def test_a_two_way_rule_gives_its_hand_computed_fraction():
    # class 0 at offset 0 and class 1 elsewhere (the one-hot of the offset clamped to 2 classes): offsets 1..5 all read
    # as class 1, so P(same) = (1/6)^2 + (5/6)^2 = 26/36.
    result = shift_consistency(OffsetReader(2), _column_images(600, 8, 6), crop=(8, 8), max_shift=6, passes=5, seed=3)
    assert abs(result.consistency - 26 / 36) < 4 * result.stderr
    assert 0 < result.stderr < 0.02


def test_no_shift_or_a_shift_invariant_model_is_perfectly_consistent():
    data = _column_images(20, 8, 4)
    assert shift_consistency(OffsetReader(4), data, crop=(8, 8), max_shift=1).consistency == 1.0
    pooled = nn.Sequential(nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(1, 3))
    result = shift_consistency(pooled, data, crop=(8, 8), max_shift=4, passes=2)
    assert result.consistency == 1.0 and result.stderr == 0.0


def test_the_seed_fixes_the_offsets():
    data = _column_images(50, 8, 4)
    a = shift_consistency(OffsetReader(4), data, crop=(8, 8), max_shift=4, seed=1)
    b = shift_consistency(OffsetReader(4), data, crop=(8, 8), max_shift=4, seed=1)
    assert a == b


def test_default_shift_is_the_papers_32_at_224():
    assert default_max_shift(224) == 32 and default_max_shift(16) == 2 and default_max_shift(2) == 1


def test_images_too_small_for_the_shift_are_refused():
    with pytest.raises(PoolswapError, match="too small"):
        shift_consistency(OffsetReader(4), _column_images(4, 8, 1), crop=(8, 8), max_shift=4)


def test_eval_consistency_from_the_cli(converted, data_dir, capsys):
    path, _, _ = converted
    assert main(["eval", "--trust-module", "tests.train.helpers", str(path), "--data", str(data_dir), *SIZE,
                 "--consistency", "--passes", "2",
                 "--max-shift", "3", "--json"]) == 0
    out = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert out["consistency"]["passes"] == 2 and out["consistency"]["max_shift"] == 3
    assert out["consistency"]["images"] == 9 and 0 <= out["consistency"]["consistency"] <= 1


def test_eval_refuses_shift_flags_without_consistency(converted, data_dir):
    path, _, _ = converted
    proc = subprocess.run([sys.executable, "-m", "poolswap.cli", "eval", "--trust-module", "tests.train.helpers", str(path),
                           "--data", str(data_dir), *SIZE,
                           "--passes", "3"], capture_output=True, text=True)
    assert proc.returncode == 2 and "--passes and --max-shift need --consistency" in proc.stderr
