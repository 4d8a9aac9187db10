"""Fixtures of the fine-tune tests: a tiny converted network, its original and tiny image folders."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from tests.train import helpers  # noqa: E402


@pytest.fixture
def data_dir(tmp_path: Path) -> Path:
    root = tmp_path / "data"
    helpers.write_image_folder(root / "train", seed=0)
    helpers.write_image_folder(root / "val", seed=1, per_class=3)
    return root


@pytest.fixture
def converted(tmp_path: Path):
    """(path of a converted TinyNet file, the converted model, its original)."""
    import torch

    from poolswap.model import create_model
    from poolswap.surgery import save
    from poolswap.surgery import convert

    torch.manual_seed(0)
    original = create_model("tests.train.helpers:TinyNet").eval()
    model = convert(original, learn_beta=True)
    path = save(model, tmp_path / "converted.safetensors")
    return path, model, original


@pytest.fixture
def subprocess_env() -> dict:
    """Environment for child processes: the helpers importable, one thread (deterministic and fair)."""
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join([str(ROOT), env.get("PYTHONPATH", "")]).rstrip(os.pathsep)
    env["OMP_NUM_THREADS"] = "1"
    env["MKL_NUM_THREADS"] = "1"
    return env
