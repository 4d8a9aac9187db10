"""The scripts in examples/ run as a user would run them (small sizes), so they cannot rot."""

from __future__ import annotations

import os
import re
import shlex
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import torch

ROOT = Path(__file__).resolve().parents[2]
EXAMPLES = ROOT / "examples"


def _run(script: str, *args: str, cwd: Path) -> subprocess.CompletedProcess:
    env = {**os.environ, "OMP_NUM_THREADS": "1"}  # tiny models: threads only contend
    proc = subprocess.run([sys.executable, str(EXAMPLES / script), *args], cwd=cwd, env=env, capture_output=True,
                          text=True, timeout=600)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    return proc


def test_convert_timm(tmp_path):
    proc = _run("convert_timm.py", "--model", "resnet18", "--input-size", "64", "--out-dir", "out", cwd=tmp_path)
    assert "maxpool" in proc.stdout and "reloaded model gives identical outputs: True" in proc.stdout
    assert (tmp_path / "out" / "resnet18.pth").is_file()
    assert (tmp_path / "out" / "resnet18_softpool.safetensors").is_file()


def test_inception_v3_functional_pools(tmp_path):
    proc = _run("inception_v3_functional.py", "--input-size", "75", "--num-classes", "10", "--out", "inc.safetensors",
                cwd=tmp_path)
    found = re.search(r"sites by how they are called: \{(.*)\}", proc.stdout)
    assert found and "'function'" in found.group(1), proc.stdout
    assert "reloaded model gives identical outputs: True" in proc.stdout
    assert (tmp_path / "inc.safetensors").is_file()


def test_deploy_onnxruntime(tmp_path):
    pytest.importorskip("onnxruntime")
    from PIL import Image

    import poolswap
    from poolswap.demo import digits_cnn

    model = poolswap.convert(digits_cnn(width=4).eval(), example_input=torch.zeros(1, 1, 16, 16))
    onnx_path = poolswap.export_onnx(model, tmp_path / "m.onnx", input_size=(1, 16, 16),
                                     class_names=[f"digit{i}" for i in range(10)])
    Image.fromarray((torch.arange(256).reshape(16, 16) % 256).to(torch.uint8).numpy(), mode="L").save(tmp_path / "a.png")
    proc = _run("deploy_onnxruntime.py", str(onnx_path), "a.png", "--providers", "cpu", "--top-k", "3", cwd=tmp_path)
    line = next(l for l in proc.stdout.splitlines() if l.startswith("a.png:"))
    assert len(re.findall(r"digit\d \d\.\d{3}", line)) == 3
    proc = _run("deploy_onnxruntime.py", str(onnx_path), "--providers", "cpu", cwd=tmp_path)
    assert proc.stdout.count("random-") == 2


def _torchrun_command(text: str) -> list[str]:
    joined = text.replace("\\\n", " ")
    line = next(l for l in joined.splitlines() if l.strip().startswith("torchrun "))
    return shlex.split(line)


def test_finetune_torchrun_script_is_valid():
    script = EXAMPLES / "finetune_torchrun.sh"
    if shutil.which("bash"):
        subprocess.run(["bash", "-n", str(script)], check=True)
    tokens = _torchrun_command(script.read_text())
    assert tokens[tokens.index("-m") + 1] == "poolswap.cli"
    args = tokens[tokens.index("finetune"):]
    from poolswap.cli import build_parser

    parsed = build_parser().parse_args(args)  # every flag the script uses exists (argparse exits otherwise)
    assert parsed.command == "finetune" and parsed.epochs == 3 and parsed.calibrate == 8
