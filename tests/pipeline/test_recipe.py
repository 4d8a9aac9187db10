"""``poolswap run RECIPE.yaml``: up-front validation, one run directory, done stages skipped."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
import yaml

from poolswap.cli import main
from poolswap.pipeline import check_recipe, load_recipe
from poolswap.errors import PoolswapError

ROOT = Path(__file__).resolve().parents[2]
SPEC = "poolswap.demo.model:digits_cnn"


def _write_folder(root: Path, n_per_class: int = 3) -> None:
    from PIL import Image

    gen = torch.Generator().manual_seed(0)
    for split in ("train", "val"):
        for c in range(10):
            folder = root / split / str(c)
            folder.mkdir(parents=True)
            for i in range(n_per_class):
                pixels = torch.randint(0, 256, (16, 16, 3), generator=gen, dtype=torch.uint8).numpy()
                Image.fromarray(pixels).save(folder / f"{i}.png")


@pytest.fixture
def recipe_dir(tmp_path) -> Path:
    from poolswap.demo import digits_cnn

    torch.manual_seed(0)
    torch.save(digits_cnn(in_chans=3, width=4).state_dict(), tmp_path / "tiny.pth")
    _write_folder(tmp_path / "data")
    recipe = {
        "model": SPEC, "checkpoint": "tiny.pth", "model_kwargs": {"in_chans": 3, "width": 4},
        "input_size": [3, 16, 16], "run_dir": "run",
        "convert": {"kinds": ["max", "avg"], "beta": 1.0},
        "finetune": {"data": "data", "epochs": 1, "batch_size": 10, "calibrate": 1, "device": "cpu",
                     "data_config": {"input_size": [3, 16, 16], "crop_pct": 1.0}},
        "export": {"body": "exact"},
        "validate": {"n": 4, "atol": 1e-4},
    }
    (tmp_path / "recipe.yaml").write_text(yaml.safe_dump(recipe))
    return tmp_path


def test_runs_every_stage_then_skips_them(recipe_dir, capsys):
    assert main(["run", str(recipe_dir / "recipe.yaml")]) == 0
    out = capsys.readouterr().out
    assert [l.split()[1] for l in out.splitlines() if l.split()[:1] and l.split()[0] in
            ("convert", "finetune", "export", "validate")] == ["done"] * 4
    run = recipe_dir / "run"
    for name in ("converted.safetensors", "finetuned.safetensors", "model.onnx", "stages.json", "finetune/summary.csv"):
        assert (run / name).exists(), name
    record = json.loads((run / "stages.json").read_text())
    assert record["convert"]["result"]["swapped"] == ["pool1", "pool2", "pool3"]
    assert record["validate"]["result"]["ok"] is True
    onnx_mtime = (run / "model.onnx").stat().st_mtime_ns

    assert main(["run", str(recipe_dir / "recipe.yaml")]) == 0
    out = capsys.readouterr().out
    assert out.count("skipped") == 4 and "done" not in out.replace("run directory", "")
    assert (run / "model.onnx").stat().st_mtime_ns == onnx_mtime

    # a changed export setting redoes export and what follows, not what comes before
    data = yaml.safe_load((recipe_dir / "recipe.yaml").read_text())
    data["export"]["opset"] = 19
    (recipe_dir / "recipe.yaml").write_text(yaml.safe_dump(data))
    assert main(["run", str(recipe_dir / "recipe.yaml")]) == 0
    lines = dict(l.split()[:2] for l in capsys.readouterr().out.splitlines() if len(l.split()) == 2)
    assert lines == {"convert": "skipped", "finetune": "skipped", "export": "done", "validate": "done"}


BASE = {"model": SPEC, "input_size": [1, 16, 16]}


@pytest.mark.parametrize("change,message", [
    ({"modle": "x"}, "unknown key 'modle'"),
    ({"input_size": "224"}, "'input_size' must be a list of integers"),
    ({"convert": {"beta": "one"}}, "'convert.beta' must be a number"),
    ({"convert": {"kinds": "max"}}, "'convert.kinds' must be a list of strings"),
    ({"convert": {"strict": 1}}, "'convert.strict' must be true or false"),
    ({"export": {"opset": True}}, "'export.opset' must be an integer"),
    ({"export": {"body": "slow"}}, "'export.body' must be one of fast, exact"),
    ({"validate": {"tolerance": 1}}, "unknown key 'validate.tolerance'"),
    ({"finetune": {"data": "d", "epoch": 2}}, "unknown key 'finetune.epoch'"),
    ({"finetune": {"data": "d", "epochs": "two"}}, "'finetune.epochs' must be an integer"),
    ({"finetune": {"epochs": 2}}, "'finetune.data' is missing"),
    ({"finetune": {"data": 3}}, "'finetune.data' must be a string"),
    ({"convert": {"beta": -1.0}}, "'convert.beta' must be a finite number > 0"),
    ({"convert": {"learn_beta": "layer"}}, "'convert.learn_beta' must be one of False, scalar, channel"),
    ({"input_size": [224, 224]}, "'input_size' must be three positive integers"),
    ({"export": {"opset": 12}}, "'export.opset' must be an integer between 19 and"),
    ({"validate": {"n": 0}}, "'validate.n' must be an integer >= 1"),
])
def test_errors_name_the_key(change, message):
    with pytest.raises(PoolswapError, match=message.replace("[", r"\[").replace("(", r"\(")):
        check_recipe({**BASE, **change})


def test_missing_model_and_not_a_mapping(tmp_path):
    with pytest.raises(PoolswapError, match="missing key 'model'"):
        check_recipe({"input_size": [1, 8, 8]})
    (tmp_path / "r.yaml").write_text("- a\n- b\n")
    assert main(["run", str(tmp_path / "r.yaml")]) == 2


def test_example_recipe_is_valid(tmp_path, capsys):
    # --check also wants the recipe's checkpoint and data folder: the user's own, stood in for here
    path = tmp_path / "recipe.yaml"
    path.write_text((ROOT / "examples" / "recipe.yaml").read_text())
    (tmp_path / "resnet18.pth").write_bytes(b"")
    (tmp_path / "data").mkdir()
    recipe = load_recipe(path)
    assert recipe.data["model"] == "timm:resnet18" and recipe.finetune.epochs == 2
    assert main(["run", str(path), "--check"]) == 0
    assert "ok" in capsys.readouterr().out


@pytest.mark.parametrize("change,message", [
    ({"checkpoint": "missing.pth"}, "'checkpoint' .*missing.pth does not exist"),
    ({"checkpoint": "."}, "'checkpoint' .* is a folder, not a file"),
    ({"finetune": {"data": "nowhere"}}, "'finetune.data' .*nowhere does not exist"),
    ({"validate": {"data": "r.yaml"}}, "'validate.data' .*r.yaml is a file, not a folder"),
])
def test_check_finds_missing_files_before_any_stage_runs(tmp_path, capsys, change, message):
    path = tmp_path / "r.yaml"
    path.write_text(yaml.safe_dump({**BASE, **change}))
    with pytest.raises(PoolswapError, match=message):
        load_recipe(path)
    assert main(["run", str(path), "--check"]) == 2
    assert "ok" not in capsys.readouterr().out
    assert sorted(p.name for p in tmp_path.iterdir()) == ["r.yaml"]  # nothing written
