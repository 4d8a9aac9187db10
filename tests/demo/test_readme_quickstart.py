"""The README's quick-start, run literally as a new user would: from a clean folder, through the shell."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def _quickstart_commands() -> list[str]:
    """The shell block right under the README's 'See it work' heading."""
    text = (ROOT / "README.md").read_text()
    section = text.split("## See it work", 1)[1]
    block = re.search(r"```bash\n(.*?)```", section, re.S).group(1)
    return [line for line in block.splitlines() if line.strip() and not line.startswith("#")]


def test_readme_quickstart_runs_from_a_clean_folder(tmp_path):
    commands = _quickstart_commands()
    assert commands == ["poolswap demo -o poolswap-demo"]
    env = dict(os.environ, OMP_NUM_THREADS="1")
    env["PATH"] = os.path.dirname(sys.executable) + os.pathsep + env.get("PATH", "")
    for command in commands:
        result = subprocess.run(command, shell=True, cwd=tmp_path, env=env, capture_output=True, text=True,
                                timeout=600)
        assert result.returncode == 0, result.stderr[-3000:]
    report = json.loads((tmp_path / "poolswap-demo" / "report.json").read_text())
    assert report["accuracy"]["finetuned"] > 0.5  # ten digits: chance is 0.1
    assert report["ort"]["max_abs_diff"] < 1e-4
    assert (tmp_path / "poolswap-demo" / "report.png").read_bytes()[:4] == b"\x89PNG"
    assert "poolswap convert MODEL --checkpoint" in result.stdout  # it ends with the way to one's own model
