"""Broken files and impossible sizes end in one line: validate on a damaged .onnx, export at an absurd size."""

from __future__ import annotations

import warnings

import numpy as np
import onnx
import pytest
import torch
from onnx import TensorProto, helper

import poolswap
from poolswap.cli import main
from poolswap.errors import PoolswapError
from poolswap.deploy import validate
from poolswap.input_size import MAX_INPUT_ELEMENTS, check_input_size

DEMO = "poolswap.demo.model:digits_cnn"


@pytest.fixture(scope="module")
def good_onnx(tmp_path_factory):
    path = tmp_path_factory.mktemp("onnx") / "m.onnx"
    torch.manual_seed(0)
    model = poolswap.convert(poolswap.create_model(DEMO).eval(), example_input=torch.randn(1, 1, 16, 16))
    poolswap.export_onnx(model, path, input_size=(1, 16, 16), body="exact")
    return path


@pytest.mark.parametrize("damage", ["truncated", "random", "empty", "no_graph"])
def test_validate_on_a_damaged_onnx_file_is_one_line(good_onnx, tmp_path, capsys, damage):
    path = tmp_path / "bad.onnx"
    data = good_onnx.read_bytes()
    path.write_bytes({"truncated": data[: len(data) // 3], "random": np.random.default_rng(0).bytes(4096),
                      "empty": b"", "no_graph": onnx.ModelProto(ir_version=9).SerializeToString()}[damage])
    assert main(["validate", str(path), "--n", "2"]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("poolswap: error:") and len(err.splitlines()) == 1 and str(path) in err
    with pytest.raises(PoolswapError):
        validate(path)


def test_export_at_an_absurd_input_size_is_refused_before_allocating(tmp_path, capsys, monkeypatch):
    model_file = tmp_path / "m.safetensors"
    poolswap.save(poolswap.convert(poolswap.create_model(DEMO), example_input=torch.randn(1, 1, 16, 16)), model_file)
    asked = []
    real_randn = torch.randn
    monkeypatch.setattr(torch, "randn", lambda *a, **k: asked.append(a) or real_randn(*a, **k))
    out = tmp_path / "big.onnx"
    assert main(["export", str(model_file), "-o", str(out), "--input-size", "1,100000,100000"]) == 2
    err = capsys.readouterr().err
    assert "--input-size 1x100000x100000 is 10,000,000,000 values per image" in err and f"{MAX_INPUT_ELEMENTS:,}" in err
    assert asked == [] and not out.exists()
    with pytest.raises(PoolswapError, match="values per image"):
        poolswap.export_onnx(poolswap.load(model_file), out, input_size=(3, 100_000, 100_000))
    assert check_input_size((4, 4096, 4096)) == (4, 4096, 4096)


@pytest.mark.parametrize("value", ["notamodel", None, 3])
def test_convert_and_inspect_take_only_modules(value):
    for api in (poolswap.convert, poolswap.inspect):
        with pytest.raises(TypeError, match=f"needs a torch.nn.Module, got {type(value).__name__}") as info:
            api(value)
        assert isinstance(info.value, PoolswapError) and "\n" not in str(info.value)


def _empty_mean_model(path):
    """y = ReduceMean over an empty slice of x: numpy warns 'Mean of empty slice' in the reference evaluator."""
    x = helper.make_tensor_value_info("x", TensorProto.FLOAT, ["N", 3])
    y = helper.make_tensor_value_info("y", TensorProto.FLOAT, ["N", 1])
    consts = [helper.make_tensor(n, TensorProto.INT64, [1], [v]) for n, v in (("s", 0), ("e", 0), ("a", 1))]
    graph = helper.make_graph([helper.make_node("Slice", ["x", "s", "e", "a"], ["z"]),
                               helper.make_node("ReduceMean", ["z", "a"], ["y"], keepdims=1)], "g", [x], [y], consts)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 19)])
    model.ir_version = 9
    onnx.save(model, str(path))
    return path


def test_numpy_warnings_stay_out_of_validate(tmp_path, capfd):
    path = _empty_mean_model(tmp_path / "empty_mean.onnx")
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        report = validate(path, runtimes=["ort", "reference"], n=2)
    assert not [w for w in caught if "empty slice" in str(w.message) or "invalid value" in str(w.message)]
    assert not report.ok and "non-finite" in report.format()  # the outcome is reported, in the table
    assert "Mean of empty slice" not in capfd.readouterr().err
