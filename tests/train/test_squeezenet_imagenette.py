"""A reduced run of benchmarks/squeezenet_imagenette.py on the real SqueezeNet weights and Imagenette images."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


def _benchmark():
    spec = importlib.util.spec_from_file_location("squeezenet_imagenette", ROOT / "benchmarks" / "squeezenet_imagenette.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.mark.slow
def test_reduced_squeezenet_imagenette(shared_data, tmp_path):
    bench = _benchmark()
    data = shared_data
    if not (data / "squeezenet1_0_imagenet.pth").is_file() or not (data / "imagenette" / "val").is_dir():
        pytest.skip(f"no SqueezeNet/Imagenette material at {data}")
    out = tmp_path / "table.md"
    assert bench.main(["--data", str(data), "--val-limit", "10", "--train-limit", "8", "--batch-size", "4",
                       "--calibrate", "1", "--run-dir", str(tmp_path / "run"), "-o", str(out)]) == 0
    rows = [line for line in out.read_text().splitlines() if line.startswith("| ") and "---" not in line][1:]
    assert len(rows) == 4
    cells = [[c.strip() for c in row.strip("|").split("|")] for row in rows]
    original, swapped, calibrated = (float(c[3]) for c in cells[:3])
    assert original == 1.0
    assert calibrated >= 0.8 and swapped >= 0.8  # beta=1 is already close to max pooling in this network
    assert (tmp_path / "run" / "summary.csv").is_file()
