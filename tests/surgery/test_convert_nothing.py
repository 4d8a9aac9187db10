"""A model with nothing to swap: convert warns from Python and the CLI refuses, writing nothing."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest
import torch

import poolswap
from poolswap.cli import main

HERE = Path(__file__).resolve().parent
if str(HERE) not in sys.path:
    sys.path.insert(0, str(HERE))


def no_pools() -> torch.nn.Module:
    """A factory for the CLI: convolutions only (spec ``test_convert_nothing:no_pools``)."""
    return torch.nn.Sequential(torch.nn.Conv2d(3, 4, 3), torch.nn.ReLU())


def test_convert_warns_when_it_swaps_nothing():
    with pytest.warns(UserWarning, match=r"^poolswap: convert swapped no pooling site \(0 found"):
        out = poolswap.convert(no_pools(), example_input=torch.randn(1, 3, 8, 8))
    assert not poolswap.softpool_modules(out)
    excluded = torch.nn.Sequential(torch.nn.Conv2d(3, 4, 3), torch.nn.MaxPool2d(2))
    with pytest.warns(UserWarning, match=r"\(1 found"):
        poolswap.convert(excluded, example_input=torch.randn(1, 3, 8, 8), exclude=["1"])


def test_the_cli_refuses_and_writes_nothing(tmp_path, capsys):
    weights = tmp_path / "w.pth"
    torch.save(no_pools().state_dict(), weights)
    out = tmp_path / "c.safetensors"
    argv = ["convert", "test_convert_nothing:no_pools", "--checkpoint", str(weights), "--input-size", "3,8,8"]
    assert main([*argv, "-o", str(out)]) == 2
    err = capsys.readouterr().err.strip()
    assert "no pooling site to swap (0 found" in err and "nothing written" in err and len(err.splitlines()) == 1
    assert not out.exists()
    assert main([*argv, "--dry-run"]) == 0  # a dry run shows the (empty) table
