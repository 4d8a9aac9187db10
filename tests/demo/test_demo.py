"""``poolswap demo``: one small run through the CLI, then its report, plot and files are checked."""

from __future__ import annotations

import contextlib
import io
import json
import sys
from pathlib import Path

import pytest
import torch

from poolswap.cli import main
from poolswap.demo import DemoConfig, MODEL_SPEC, digits_cnn, load_digits_data, require_demo_extras
from poolswap.errors import PoolswapError

pytest.importorskip("sklearn")
pytest.importorskip("matplotlib")
pytest.importorskip("onnxruntime")

TRAIN_EPOCHS, FT_EPOCHS = 3, 1


@pytest.fixture(scope="module")
def demo_run(tmp_path_factory) -> tuple[int, str, Path]:
    out = tmp_path_factory.mktemp("demo") / "out"
    stdout = io.StringIO()
    with contextlib.redirect_stdout(stdout):
        rc = main(["demo", "-o", str(out), "--train-epochs", str(TRAIN_EPOCHS), "--epochs", str(FT_EPOCHS),
                   "--latency-runs", "3"])
    return rc, stdout.getvalue(), out


@pytest.fixture(scope="module")
def report(demo_run) -> dict:
    return json.loads((demo_run[2] / "report.json").read_text())


def test_cli_exits_zero_and_prints_the_report(demo_run):
    rc, text, _ = demo_run
    assert rc == 0
    for needle in ("test top-1", "after fine-tune", "ORT vs PyTorch max abs diff", "ORT latency",
                   "poolswap convert MODEL --checkpoint", "poolswap validate model.onnx"):
        assert needle in text


def test_accuracy_is_well_above_chance(report):
    acc = report["accuracy"]
    assert acc["original"] > 0.5
    assert acc["finetuned"] > 0.5
    assert acc["finetuned_ort"] == pytest.approx(acc["finetuned"], abs=1 / report["data"]["test"] + 1e-9)
    for key in ("converted", "calibrated", "finetuned"):
        assert 0.0 <= report["agreement"][key] <= 1.0
    # calibration never makes the fit on its own batches worse
    assert report["calibration"]["kl_after"] <= report["calibration"]["kl_before"]


def test_ort_matches_pytorch(report):
    ort = report["ort"]
    assert ort["max_abs_diff"] < 1e-4
    assert ort["max_abs_diff_body"] < 1e-4
    assert ort["max_abs_diff_original"] < 1e-4
    assert ort["save_load_max_abs_diff"] == 0.0


def test_report_describes_the_run(report):
    assert report["model_spec"] == MODEL_SPEC
    assert report["sites"]["swapped"] == ["pool1", "pool2", "pool3"]
    assert "head_pool" in report["sites"]["skipped"]
    assert len(report["history"]["original"]) == TRAIN_EPOCHS
    assert [row["epoch"] for row in report["history"]["finetune"]] == list(range(1, FT_EPOCHS + 1))
    for values in report["latency_ms"].values():
        assert set(values) == {"batch_1", "batch_64"} and all(v > 0 for v in values.values())
    assert report["data"]["train"] + report["data"]["test"] == 1797


def test_plot_is_a_png(demo_run):
    from PIL import Image

    path = demo_run[2] / "report.png"
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    with Image.open(path) as image:
        image.verify()
    with Image.open(path) as image:
        assert image.format == "PNG" and image.size[0] > 200 and image.size[1] > 200


def test_files_are_complete_and_reload(demo_run, report):
    import poolswap

    out = demo_run[2]
    for name in report["files"].values():
        assert (out / name).exists(), name
    assert not list(out.glob(".*.tmp")), "a temporary file of an atomic write was left behind"
    state = torch.load(out / report["files"]["checkpoint"], weights_only=True)
    assert "fc.weight" in state  # an ordinary state_dict
    model = poolswap.load(out / report["files"]["finetuned"])
    assert sorted(name for name, m in model.named_modules() if type(m).__name__.startswith("SoftPool")) == \
        ["pool1", "pool2", "pool3"]


def test_data_split_is_seeded():
    a, b, c = load_digits_data(seed=0), load_digits_data(seed=0), load_digits_data(seed=1)
    assert a.train.tensors[0].shape[1:] == (1, 16, 16)
    assert torch.equal(a.test.tensors[1], b.test.tensors[1])
    assert not torch.equal(a.test.tensors[1], c.test.tensors[1])
    assert len(a.train) + len(a.test) == 1797


def test_factory_is_a_model_spec():
    from poolswap.model import create_model, spec_of

    model = create_model(MODEL_SPEC, width=8)
    assert spec_of(model).text == MODEL_SPEC
    assert model(torch.zeros(2, 1, 16, 16)).shape == (2, 10)
    assert isinstance(digits_cnn(), torch.nn.Module)


@pytest.mark.parametrize("field,value", [("train_epochs", 0), ("size", 4), ("seed", -1), ("threads", 1.5)])
def test_config_errors_name_the_field(field, value):
    with pytest.raises(PoolswapError, match=field):
        DemoConfig(**{field: value}).validate()


def test_missing_extra_names_the_install_command(monkeypatch, capsys, tmp_path):
    monkeypatch.setitem(sys.modules, "sklearn", None)  # import sklearn now raises ImportError
    with pytest.raises(PoolswapError, match=r"pip install 'poolswap\[demo\]'"):
        require_demo_extras()
    assert main(["demo", "-o", str(tmp_path / "x")]) == 2
    err = capsys.readouterr().err
    assert "scikit-learn" in err and "poolswap[demo]" in err and len(err.strip().splitlines()) == 1
    assert not (tmp_path / "x").exists()


def test_training_is_deterministic():
    from poolswap.demo import train_original

    data = load_digits_data(seed=0)
    config = DemoConfig(train_epochs=1, width=4, threads=1)
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        (a, ha), (b, hb) = train_original(data, config), train_original(data, config)
    finally:
        torch.set_num_threads(threads)
    assert ha == hb
    assert all(torch.equal(v, b.state_dict()[k]) for k, v in a.state_dict().items())


def test_next_steps_are_valid_command_lines():
    import shlex

    from poolswap.cli import build_parser
    from poolswap.demo import next_steps

    commands = [shlex.split(line)[1:] for line in next_steps().splitlines() if line.strip().startswith("poolswap ")]
    assert [c[0] for c in commands] == ["inspect", "convert", "finetune", "export", "validate"]
    parser = build_parser()
    for argv in commands:
        assert parser.parse_args(argv).command == argv[0]  # argparse exits on an unknown flag
