"""benchmarks/gpu_check.sh, the one-go GPU check, runs end to end (small shapes, on the CPU).

Sessions with a GPU get a few minutes of it: the script must not fail there for a
reason a CPU run could have shown.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tarfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
SCRIPT = ROOT / "benchmarks" / "gpu_check.sh"


@pytest.mark.slow
@pytest.mark.skipif(shutil.which("bash") is None, reason="no bash")
def test_gpu_check_runs_every_step_and_packs_the_results(tmp_path):
    env = {**os.environ, "GPU_CHECK_QUICK": "1", "PYTHON": sys.executable}
    result = subprocess.run(["bash", str(SCRIPT), str(tmp_path / "out")], cwd=ROOT, env=env, capture_output=True,
                            text=True, timeout=900)  # fmt: skip
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    log = (tmp_path / "out" / "log.txt").read_text()
    steps = [line for line in log.splitlines() if line.startswith("=== ") and ": exit " in line]
    assert len(steps) == 9, steps  # build, doctor, tests, four op runs, model, ort
    assert all(line.endswith(" s") and ": exit 0 after " in line for line in steps), steps
    with tarfile.open(tmp_path / "out" / "results.tgz") as archive:
        names = {Path(n).name for n in archive.getnames()}
    expected = {f"op_{shape}_{dtype}.json" for shape in ("stem", "wide") for dtype in ("float32", "bfloat16")}
    assert expected | {"model.json", "ort.json", "doctor.txt", "pytest_cuda.xml"} <= names
