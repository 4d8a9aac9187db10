"""Messages that name the right cause: one range per flag, the values not the format, a file not a folder,
an option that is suggested is accepted, the preprocessing used is said, no numpy noise."""

from __future__ import annotations

import logging

import numpy as np
import pytest
import torch
from PIL import Image

import poolswap
from poolswap.cli import main
from poolswap.errors import PoolswapError

DEMO = "poolswap.demo.model:digits_cnn"
RANGE = "must be a number in (0, 1], e.g. 0.995"


def _one_error(capsys) -> str:
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1, err
    return err


@pytest.mark.parametrize("value", ["0", "1.5", "-1"])
def test_min_agreement_states_one_range(value, capsys, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert main(["convert", "timm:resnet18", "--checkpoint", "nope.pth", "--data", ".", "--min-agreement", value,
                 "-o", "x.safetensors"]) == 2
    assert f"--min-agreement {RANGE}" in _one_error(capsys)
    with pytest.raises(SystemExit):
        main(["eval", "timm:resnet18", "--data", ".", "--against", "original", "--min-agreement", value])
    assert RANGE in _one_error(capsys)
    with pytest.raises(PoolswapError, match=rf"min_agreement {RANGE.replace('(', '[(]').replace(')', '[)]')}"):
        poolswap.convert(torch.nn.Sequential(torch.nn.MaxPool2d(2)), min_agreement=float(value), data=".")


def test_input_size_says_the_values_are_wrong(capsys):
    assert main(["inspect", DEMO, "--input-size", "0,16,16"]) == 2
    err = _one_error(capsys)
    assert "--input-size values must be positive, got 0,16,16" in err and "must look like" not in err
    assert main(["inspect", DEMO, "--input-size", "16;16"]) == 2
    assert "must look like C,H,W" in _one_error(capsys)


@pytest.mark.parametrize("argv", [
    ["eval", "timm:resnet18", "--data", "{file}"],
    ["finetune", "x.safetensors", "--data", "{file}", "-o", "run"],
    ["inspect", DEMO, "--data", "{file}"],
    ["validate", "{file}", "--data", "{file}"],
])
def test_data_given_a_file_says_so(argv, tmp_path, capsys):
    file = tmp_path / "images.txt"
    file.write_text("not a folder")
    (tmp_path / "x.safetensors").write_bytes(b"")
    argv = [a.replace("{file}", str(file)).replace("x.safetensors", str(tmp_path / "x.safetensors")) for a in argv]
    code = main(argv)
    err = _one_error(capsys)
    if argv[0] == "validate":  # its MODEL.onnx is that text file too: it says what the file is not
        assert code == 2 and "not a readable ONNX model" in err or "is a file" in err
        return
    assert code == 2 and f"{file} is a file; give the folder that holds the images" in err
    assert "does not exist" not in err


@pytest.fixture
def digits_with_a_bad_file(tmp_path):
    root = tmp_path / "digits"
    rng = np.random.default_rng(0)
    for cls in ("a", "b"):
        (root / cls).mkdir(parents=True)
        for i in range(2):
            Image.fromarray(rng.integers(0, 255, (8, 8), dtype=np.uint8)).save(root / cls / f"{i}.png")
    (root / "a" / "broken.png").write_bytes(b"\x89PNG not really")
    return root


@pytest.mark.parametrize("command", ["inspect", "convert"])
def test_inspect_and_convert_accept_the_skip_bad_images_they_suggest(command, digits_with_a_bad_file, tmp_path,
                                                                    capsys, caplog):
    weights = tmp_path / "w.pth"
    torch.save(poolswap.create_model(DEMO).state_dict(), weights)
    argv = [command, DEMO, "--checkpoint", str(weights), "--data", str(digits_with_a_bad_file), "--batches", "1",
            "--batch-size", "4"]
    if command == "convert":
        argv += ["--min-agreement", "0.5", "-o", str(tmp_path / "c.safetensors")]
    assert main(argv) == 2
    assert "--skip-bad-images" in _one_error(capsys)
    caplog.clear()
    with caplog.at_level(logging.INFO, logger="poolswap"):
        assert main([*argv, "--skip-bad-images"]) == 0
    # the images were read at the model's own input size (the demo CNN states 1x16x16), and it says so
    said = [r.getMessage() for r in caplog.records if "--data images read at" in r.getMessage()]
    assert len(said) == 1 and "read at 1x16x16 (the model's data config)" in said[0]
