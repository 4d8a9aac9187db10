"""``poolswap inspect`` and ``poolswap convert`` through ``poolswap.cli.main`` and as a real process."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
import torch

import poolswap
from poolswap.cli import main
from poolswap.model import create_model
from poolswap.surgery import read_header

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def squeeze_ckpt(tmp_path_factory):
    torch.manual_seed(0)
    path = tmp_path_factory.mktemp("ck") / "squeeze.pth.tar"
    torch.save({"state_dict": create_model("torchvision:squeezenet1_0", num_classes=5).state_dict()}, path)
    return path


def test_inspect_json(capsys, squeeze_ckpt):
    assert main(["inspect", "torchvision:squeezenet1_0", "--checkpoint", str(squeeze_ckpt),
                 "--input-size", "3,64,64", "--json"]) == 0
    data = json.loads(capsys.readouterr().out)
    names = [s["name"] for s in data["sites"]]
    assert names == ["features.2", "features.6", "features.11", "classifier.3"]
    assert [s["action"] for s in data["sites"]] == ["swap", "swap", "swap", "skip"]
    assert {s["kind"] for s in data["sites"]} == {"max", "adaptive_avg"}
    assert all(s["reason"] for s in data["sites"])


def test_inspect_table(capsys):
    assert main(["inspect", "torchvision:resnet18", "--input-size", "3,32,32"]) == 0
    out = capsys.readouterr().out
    assert "maxpool" in out and "swap" in out and "2 sites: 1 to swap, 1 to skip" in out


def test_convert_writes_a_loadable_model(tmp_path, squeeze_ckpt, capsys):
    out = tmp_path / "sq.safetensors"
    rc = main(["convert", "torchvision:squeezenet1_0", "--checkpoint", str(squeeze_ckpt), "-o", str(out),
               "--beta", "4", "--learn-beta", "--exclude", "features.11", "--input-size", "3,64,64"])
    assert rc == 0 and out.exists()
    header = read_header(out)
    assert header["spec"]["kwargs"] == {"num_classes": 5}
    swapped = [s["name"] for s in header["manifest"]["sites"] if s["action"] == "swap"]
    assert swapped == ["features.2", "features.6"]
    model = poolswap.load(out)
    assert model.features[2].learn_beta == "scalar" and abs(float(model.features[2].beta) - 4.0) < 1e-5


def test_convert_dry_run_writes_nothing(tmp_path, squeeze_ckpt, capsys):
    out = tmp_path / "sq.safetensors"
    assert main(["convert", "torchvision:squeezenet1_0", "--checkpoint", str(squeeze_ckpt), "-o", str(out),
                 "--dry-run", "--kinds", "all", "--input-size", "3,64,64"]) == 0
    assert not out.exists()
    assert "4 sites: 4 to swap" in capsys.readouterr().out


@pytest.mark.parametrize("argv,needle", [
    (["convert", "torchvision:squeezenet1_0", "-o", "x.safetensors", "--checkpoint", "missing.pth"], "does not exist"),
    (["convert", "torchvision:squeezenet1_O", "--checkpoint", "CK", "-o", "x.safetensors"], "did you mean"),
    (["convert", "torchvision:squeezenet1_0", "--checkpoint", "CK", "-o", "x.safetensors", "--include", "nope*",
      "--strict"], "matches no site"),
    (["convert", "torchvision:resnet18", "--checkpoint", "CK", "-o", "x.safetensors"], "does not fit"),
    (["inspect", "torchvision:squeezenet1_0", "--model-kwargs", "{bad"], "not valid JSON"),
])
def test_errors_are_one_line_and_leave_nothing(tmp_path, squeeze_ckpt, capsys, monkeypatch, argv, needle):
    monkeypatch.chdir(tmp_path)
    argv = [str(squeeze_ckpt) if a == "CK" else a for a in argv]
    assert main(argv) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("poolswap: error:") and needle in err and "\n" not in err
    assert not (tmp_path / "x.safetensors").exists()
    assert [p.name for p in tmp_path.iterdir()] == []


def test_real_process_exit_status(tmp_path):
    out = subprocess.run([sys.executable, "cli.py", "convert", "timm:resnet_18", "--checkpoint", "none.pth",
                          "-o", str(tmp_path / "o.safetensors")], capture_output=True, text=True, cwd=ROOT)
    assert out.returncode == 2
    lines = out.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("poolswap: error:"), out.stderr
    assert not (tmp_path / "o.safetensors").exists()
