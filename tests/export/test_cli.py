"""The export, validate and predict commands (poolswap.load is stubbed with a hand-built model)."""

from __future__ import annotations

import numpy as np
import onnx
import pytest
import torch

import poolswap.export
import poolswap.surgery
from poolswap.cli import main
from poolswap.export import softpool_nodes

from .helpers import small_cnn

pytest.importorskip("onnxruntime")


@pytest.fixture(scope="module")
def cnn():
    model = small_cnn()
    with torch.no_grad():
        model(torch.zeros(1, 3, 16, 16))
    return model


@pytest.fixture
def checkpoint(tmp_path, monkeypatch, cnn):
    path = tmp_path / "model.poolswap"
    path.write_bytes(b"stub")
    monkeypatch.setattr(poolswap.surgery, "load", lambda p: cnn)
    return path


@pytest.fixture(scope="module")
def exported(tmp_path_factory, cnn):
    folder = tmp_path_factory.mktemp("cli")
    names = folder / "names.txt"
    names.write_text("\n".join(f"label_{i}" for i in range(10)))
    path = folder / "m.onnx"
    poolswap.export.export_onnx(cnn, path, input_size=(3, 16, 16), class_names=names.read_text().splitlines())
    return path


def test_export_command_with_validation(checkpoint, tmp_path, capsys):
    out = tmp_path / "out.onnx"
    code = main(["export", str(checkpoint), "-o", str(out), "--input-size", "3,16,16", "--body", "exact", "--validate", "--n", "3"])
    text = capsys.readouterr().out
    assert code == 0, text
    assert len(softpool_nodes(onnx.load(str(out)))) == 2
    assert "pytorch vs ort " in text and "PASS" in text


def test_export_command_missing_checkpoint(tmp_path, capsys):
    code = main(["export", str(tmp_path / "nope.pt"), "-o", str(tmp_path / "o.onnx")])
    assert code == 2
    assert "no checkpoint at" in capsys.readouterr().err


def test_export_command_bad_input_size(checkpoint, tmp_path, capsys):
    assert main(["export", str(checkpoint), "-o", str(tmp_path / "o.onnx"), "--input-size", "3,a,16"]) == 2
    assert "--input-size must look like C,H,W" in capsys.readouterr().err


def test_export_command_input_size_that_does_not_fit_is_one_line(checkpoint, tmp_path, capsys):
    out = tmp_path / "o.onnx"
    code = main(["export", str(checkpoint), "-o", str(out), "--input-size", "5,16,16"])
    err = capsys.readouterr().err
    assert code == 2 and not out.exists()
    lines = [line for line in err.splitlines() if line.strip()]
    assert len(lines) == 1, err
    assert "does not run on an input of shape (2, 5, 16, 16)" in lines[0] and "--input-size" in lines[0]


def test_validate_passes(exported, checkpoint, capsys):
    code = main(["validate", str(exported), "--against", str(checkpoint), "--n", "4"])
    text = capsys.readouterr().out
    assert code == 0, text
    assert "top-1" in text and "PASS" in text


def test_validate_fails_beyond_tolerance(exported, checkpoint, tmp_path, capsys):
    model = onnx.load(str(exported))
    for attr in softpool_nodes(model)[1].attribute:
        if attr.name == "betas":
            attr.floats[:] = [6.0] * len(attr.floats)  # the ONNX model no longer matches the checkpoint
    broken = tmp_path / "broken.onnx"
    onnx.save(model, str(broken))
    code = main(["validate", str(broken), "--against", str(checkpoint), "--n", "4"])
    captured = capsys.readouterr()
    assert code == 2
    assert "FAIL" in captured.out and "disagree beyond the tolerance" in captured.err


def test_validate_ort_only(exported, capsys):
    assert main(["validate", str(exported), "--n", "2"]) == 0
    assert "skipped: pytorch" in capsys.readouterr().out


def _image(path, seed=0):
    from PIL import Image

    array = (np.random.default_rng(seed).random((40, 50, 3)) * 255).astype(np.uint8)
    Image.fromarray(array).save(path)
    return path


def test_predict_prints_top5_with_names(exported, tmp_path, capsys):
    images = [_image(tmp_path / "a.png"), _image(tmp_path / "b.jpg", 1)]
    code = main(["predict", str(exported), *map(str, images), "--size", "16", "16", "--providers", "cpu"])
    text = capsys.readouterr().out
    assert code == 0
    assert text.count("label_") == 10 and "a.png" in text


def test_predict_wrong_size_is_one_line(exported, tmp_path, capsys):
    image = _image(tmp_path / "a.png")
    code = main(["predict", str(exported), str(image), "--size", "20", "20", "--providers", "cpu"])
    err = capsys.readouterr().err
    assert code == 2
    assert err.count("\n") == 1 and "expects input 'input' float32 ['batch', 3, 16, 16]" in err


def _nan_model(cnn):
    """The test model with NaN weights in its head: every output is NaN."""
    import copy

    broken = copy.deepcopy(cnn)
    with torch.no_grad():
        for p in list(broken.parameters())[-2:]:
            p.fill_(float("nan"))
    return broken


def test_non_finite_outputs_fail_validation_even_where_runtimes_agree(cnn, tmp_path, monkeypatch, capsys):
    broken = _nan_model(cnn)
    path = tmp_path / "nan.onnx"
    poolswap.export.export_onnx(broken, path, input_size=(3, 16, 16))
    checkpoint = tmp_path / "nan.poolswap"
    checkpoint.write_bytes(b"stub")
    monkeypatch.setattr(poolswap.surgery, "load", lambda p: broken)
    assert main(["validate", str(path), "--against", str(checkpoint), "--n", "2", "--runtime", "ort"]) == 2
    out = capsys.readouterr().out
    assert "non-finite output value(s)" in out and "PASS" not in out


def test_predict_refuses_non_finite_outputs(cnn, tmp_path, capsys):
    path = tmp_path / "nan.onnx"
    poolswap.export.export_onnx(_nan_model(cnn), path, input_size=(3, 16, 16))
    image = _image(tmp_path / "a.png")
    assert main(["predict", str(path), str(image), "--providers", "cpu"]) == 2
    err = capsys.readouterr().err
    assert "not finite" in err and "nan%" not in err and err.count("\n") == 1


def test_export_refuses_class_names_of_the_wrong_length(checkpoint, tmp_path, capsys):
    names = tmp_path / "names.txt"
    names.write_text("cat\ndog\n")
    out = tmp_path / "o.onnx"
    assert main(["export", str(checkpoint), "-o", str(out), "--input-size", "3,16,16", "--class-names", str(names)]) == 2
    assert "2 class names for a model with 10 outputs" in capsys.readouterr().err and not out.exists()


def test_export_opset_out_of_range_is_one_line(checkpoint, tmp_path, capsys):
    out = tmp_path / "o.onnx"
    assert main(["export", str(checkpoint), "-o", str(out), "--opset", "99"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "--opset must be an integer between 19 and" in err and not out.exists()
