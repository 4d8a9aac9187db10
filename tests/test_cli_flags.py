"""Bad flag values are refused in one line naming the flag; contradictory requests are refused, not guessed."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from poolswap.cli import main


@pytest.fixture(scope="module")
def images(tmp_path_factory):
    root = tmp_path_factory.mktemp("imgs")
    rng = np.random.default_rng(0)
    for cls in ("a", "b"):
        (root / cls).mkdir()
        for i in range(2):
            Image.fromarray(rng.integers(0, 255, (20, 20, 3), dtype=np.uint8)).save(root / cls / f"{i}.png")
    return root


@pytest.mark.parametrize("argv,flag", [
    (["inspect", "timm:resnet18", "--num-classes", "0"], "--num-classes"),
    (["eval", "timm:resnet18", "--data", ".", "--batch-size", "0"], "--batch-size"),
    (["eval", "timm:resnet18", "--data", ".", "--min-agreement", "1.5"], "--min-agreement"),
    (["eval", "timm:resnet18", "--data", ".", "--std", "0.2,0,0.2"], "--std"),
    (["eval", "timm:resnet18", "--data", ".", "--mean", "0.5,nan,0.5"], "--mean"),
    (["bench", "op", "--kernel", "0"], "--kernel"),
    (["demo", "--size", "4"], "--size"),
    (["demo", "--epochs", "0"], "--epochs"),
    (["bench", "op", "--min-run-time", "-1"], "--min-run-time"),
    (["bench", "op", "--kernel", "9", "--size", "4"], "kernel extent 9"),
    (["bench", "op", "--kernel", "3", "--padding", "2"], "larger than half the kernel"),
    (["finetune", "x.safetensors", "--data", ".", "-o", "run", "--lr", "0"], "--lr must be a finite number > 0"),
    (["convert", "timm:resnet18", "--checkpoint", "x", "-o", "y.safetensors", "--beta", "-1"], "--beta must be"),
])
def test_a_bad_value_is_one_line_naming_the_flag(argv, flag, capsys, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    with pytest.raises(SystemExit) as exit_info:
        raise SystemExit(main(argv))
    assert exit_info.value.code == 2
    err = capsys.readouterr().err
    assert flag in err and err.count("\n") == 1, err
    assert list(tmp_path.iterdir()) == []  # nothing written


def test_eval_against_original_refuses_a_model_that_is_its_own_original(images, capsys):
    assert main(["eval", "timm:resnet18", "--data", str(images), "--against", "original",
                 "--input-size", "3,32,32"]) == 2
    assert "not a converted model" in capsys.readouterr().err


def test_agreement_between_different_heads_is_refused(images):
    import torch
    from torch import nn

    from poolswap.errors import PoolswapError
    from poolswap.train import evaluate
    from poolswap.data.datasets import build_transform, image_dataset

    def head(classes: int) -> nn.Module:
        return nn.Sequential(nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(3, classes))

    data = image_dataset(images, build_transform({"input_size": (3, 16, 16), "interpolation": "bilinear",
                                                   "mean": (0.5,) * 3, "std": (0.5,) * 3, "crop_pct": 1.0}))
    torch.manual_seed(0)
    with pytest.raises(PoolswapError, match=r"outputs differ in shape \(\(2,\) and \(5,\)\)"):
        evaluate(head(2), data, against=head(5), batch_size=2)
