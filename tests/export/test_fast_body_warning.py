"""``--body fast`` where a calibrated beta makes its float32 exp underflow: a warning naming the sites."""

from __future__ import annotations

import warnings

import pytest
import torch

import poolswap
from poolswap.cli import main

DEMO = "poolswap.demo.model:digits_cnn"


def _converted(beta: float):
    torch.manual_seed(0)
    return poolswap.convert(poolswap.create_model(DEMO).eval(), example_input=torch.randn(1, 1, 16, 16), beta=beta)


def test_a_large_beta_warns_for_the_fast_body_only(tmp_path):
    model = _converted(128.0)
    with pytest.warns(RuntimeWarning, match=r"fast body gives NaN .* pool1 \(beta 128\): \d+ of \d+ windows.*--body exact"):
        poolswap.export_onnx(model, tmp_path / "fast.onnx", body="fast")
    for body, beta in (("exact", 128.0), ("fast", 1.0)):
        with warnings.catch_warnings():
            warnings.simplefilter("error", RuntimeWarning)
            poolswap.export_onnx(_converted(beta) if beta != 128.0 else model, tmp_path / f"{body}.onnx", body=body)


def test_the_cli_export_warns_too(tmp_path):
    """A one-line warning (the CLI prints warnings that start with 'poolswap:' as the line they are)."""
    path = tmp_path / "m.safetensors"
    poolswap.save(_converted(128.0), path)
    with pytest.warns(RuntimeWarning, match=r"^poolswap: the fast body gives NaN") as caught:
        assert main(["export", str(path), "-o", str(tmp_path / "m.onnx"), "--body", "fast"]) == 0
    assert all("\n" not in str(w.message) for w in caught)
