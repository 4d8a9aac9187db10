"""The exported model after the tools deployers run on ONNX files: both forms, both bodies, against PyTorch.

Each tool is applied to the exported file (a small converted CNN); the default form
must still carry ``poolswap::SoftPool`` nodes that poolswap's library runs and a body
that runs without it (a tool that drops model-local functions, such as ONNX's
version converter, leaves nodes that ``restore_function`` gives their body back);
the ``--inline`` form must run in ONNX Runtime. Tolerances are relative to the
largest logit and follow the transformation: float32 rewrites 1e-5, float16 1e-2,
int8 quantization 5e-2.
"""

from __future__ import annotations

import importlib
from pathlib import Path

import numpy as np
import onnx
import pytest

from poolswap.deploy import validate
from poolswap.export import export_onnx, function_missing, restore_function, softpool_nodes

from .helpers import run_body, run_library, small_cnn, softpool_model, torch_out

pytest.importorskip("onnxruntime")

SIZE = 16
MAX_OPSET = onnx.defs.onnx_opset_version()


def _need(module: str, install: str):
    try:
        return importlib.import_module(module)
    except ImportError:
        pytest.skip(f"{module} is not installed: pip install {install}")


def _version(model: onnx.ModelProto, path: Path, opset: int) -> onnx.ModelProto:
    import onnx.version_converter

    return onnx.version_converter.convert_version(model, opset)


def _onnxsim(model, path):
    return _need("onnxsim", "onnxsim").simplify(model)[0]


def _onnxslim(model, path):
    return _need("onnxslim", "onnxslim").slim(model)


def _onnxoptimizer(model, path):
    return _need("onnxoptimizer", "onnxoptimizer").optimize(model)


def _float16(model, path):
    float16 = _need("onnxconverter_common.float16", "onnxconverter-common")
    return float16.convert_float_to_float16(model, keep_io_types=True)


def _quantize_dynamic(model, path):
    from onnxruntime.quantization import quantize_dynamic

    out = path.with_suffix(".qdyn.onnx")
    quantize_dynamic(str(path), str(out))
    return onnx.load(str(out))


def _quantize_static(model, path):
    from onnxruntime.quantization import CalibrationDataReader, quantize_static

    class Reader(CalibrationDataReader):
        def __init__(self):
            self.batches = iter([{"input": _inputs()}])

        def get_next(self):
            return next(self.batches, None)

    out = path.with_suffix(".qstat.onnx")
    # the inlined body's element-wise ops are no quantization targets: quantize the layers with weights
    quantize_static(str(path), str(out), Reader(), op_types_to_quantize=["Conv", "Gemm", "MatMul"])
    return onnx.load(str(out))


def _ort_offline(model, path):
    import onnxruntime as ort

    from poolswap.kernels import ort_library_path

    out = path.with_suffix(".ortopt.onnx")
    options = ort.SessionOptions()
    options.optimized_model_filepath = str(out)
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_EXTENDED
    if softpool_nodes(model):
        from poolswap.deploy.session import check_library

        usable, detail = check_library(ort_library_path())
        if not usable:
            pytest.skip(f"poolswap's ONNX Runtime library is unusable: {detail}")
        options.register_custom_ops_library(str(ort_library_path()))
    ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
    return onnx.load(str(out))


TOOLS = {
    **{f"version_converter-{v}": (lambda m, p, v=v: _version(m, p, v), 1e-5) for v in range(19, MAX_OPSET + 1)},
    "onnxsim": (_onnxsim, 1e-5),
    "onnxslim": (_onnxslim, 1e-5),
    "onnxoptimizer": (_onnxoptimizer, 1e-5),
    "float16": (_float16, 1e-2),
    "quantize_dynamic": (_quantize_dynamic, 5e-2),
    "quantize_static": (_quantize_static, 5e-2),
    "ort_offline": (_ort_offline, 1e-5),
}


def _inputs() -> np.ndarray:
    return np.random.default_rng(0).standard_normal((2, 3, SIZE, SIZE)).astype(np.float32)


@pytest.fixture(scope="module")
def exported(tmp_path_factory):
    folder = tmp_path_factory.mktemp("tools")
    model = small_cnn()
    files = {}
    for body in ("exact", "fast"):
        for form in ("function", "inline"):
            path = folder / f"{body}-{form}.onnx"
            export_onnx(model, path, input_size=(3, SIZE, SIZE), body=body, inline=form == "inline")
            files[body, form] = path
    return model, files


@pytest.mark.parametrize("form", ["function", "inline"])
@pytest.mark.parametrize("body", ["exact", "fast"])
@pytest.mark.parametrize("tool", list(TOOLS))
def test_the_model_survives_the_tool(exported, tmp_path, tool, body, form):
    model, files = exported
    transform, tolerance = TOOLS[tool]
    source = tmp_path / "model.onnx"
    source.write_bytes(files[body, form].read_bytes())
    result = transform(onnx.load(str(source)), source)
    path = tmp_path / "after.onnx"
    onnx.save(result, str(path))
    x = _inputs()
    expected = torch_out(model, x)
    bound = tolerance * float(np.abs(expected).max())
    try:
        run_body(path, x) if form == "inline" or not function_missing(result) else run_library(path, x)
    except Exception as exc:  # an opset newer than this ONNX Runtime loads for any model
        if "official support" in str(exc):
            pytest.skip(f"this ONNX Runtime does not load opset {tool.rsplit('-', 1)[-1]} models")
        raise
    if form == "inline":
        assert not softpool_nodes(result)
        np.testing.assert_allclose(run_body(path, x), expected, rtol=0, atol=bound)
        return
    assert len(softpool_nodes(result)) == 2, "the tool removed poolswap::SoftPool nodes"
    np.testing.assert_allclose(run_library(path, x), expected, rtol=0, atol=bound)
    restored = tmp_path / "restored.onnx"
    onnx.save(restore_function(result), str(restored))
    assert not function_missing(onnx.load(str(restored)))
    np.testing.assert_allclose(run_body(restored, x), expected, rtol=0, atol=bound)


def test_the_body_survives_the_tools_that_keep_functions(exported, tmp_path):
    """Simplifiers and float16 conversion keep the function; its body then runs as it is (no restore)."""
    _need("onnxslim", "onnxslim")
    model, files = exported
    x = _inputs()
    for body in ("exact", "fast"):
        path = tmp_path / f"{body}.onnx"
        result = _onnxslim(onnx.load(str(files[body, "function"])), path)
        assert not function_missing(result)  # failed before: the slimmed body's Greater got a double input
        onnx.save(result, str(path))
        np.testing.assert_allclose(run_body(path, x), torch_out(model, x), rtol=0, atol=1e-5)


def test_validate_says_in_one_line_that_the_function_was_dropped(exported, tmp_path, caplog):
    import onnx.version_converter

    from poolswap.errors import PoolswapError

    model, files = exported
    converted = onnx.version_converter.convert_version(onnx.load(str(files["exact", "function"])), 21)
    assert function_missing(converted)
    path = tmp_path / "converted.onnx"
    onnx.save(converted, str(path))
    with pytest.raises(PoolswapError, match="no SoftPool function") as error:  # nothing to compare with
        validate(path, n=2, runtimes=["ort", "ort-library"])
    assert "restore_function" in str(error.value) and "\n" not in str(error.value)
    try:
        report = validate(path, model, n=2, runtimes=["ort", "ort-library"])
    except PoolswapError as exc:  # no usable library here: the one line is the error
        assert "restore_function" in str(exc) and "\n" not in str(exc)
        return
    assert any("restore_function" in line for line in report.skipped)
    assert [(p.a, p.b) for p in report.pairs] == [("pytorch", "ort-library")] and report.ok
    assert any("no SoftPool function" in r.getMessage() and "\n" not in r.getMessage() for r in caplog.records)


def test_a_session_runs_a_version_converted_file_without_the_library(exported, tmp_path, caplog):
    """poolswap's own sessions (predict, deploy) put the dropped body back in memory, with one warning."""
    import onnx.version_converter

    from poolswap.deploy import session

    model, files = exported
    path = tmp_path / "converted.onnx"
    onnx.save(onnx.version_converter.convert_version(onnx.load(str(files["exact", "function"])), 21), str(path))
    sess = session(path, "cpu", library=False)
    x = _inputs()
    np.testing.assert_allclose(sess.run(None, {sess.get_inputs()[0].name: x})[0], torch_out(model, x),
                               rtol=1e-4, atol=1e-5)
    assert any("dropped the SoftPool function" in r.getMessage() for r in caplog.records)
    assert function_missing(onnx.load(str(path)))  # the file itself is left as it is


def test_restore_function_uses_the_recorded_body_and_the_new_opset(exported):
    import onnx.version_converter

    _, files = exported
    converted = onnx.version_converter.convert_version(onnx.load(str(files["fast", "function"])), 22)
    restored = restore_function(converted)
    function = next(f for f in restored.functions if f.name == "SoftPool")
    assert {o.domain: o.version for o in function.opset_import}[""] == 22
    assert "Gather" not in {n.op_type for n in function.node}  # the fast body, as recorded
    assert restore_function(restored).functions[0].SerializeToString() == function.SerializeToString()


def test_openvino_gets_the_exact_body_right_past_batch_16(tmp_path):
    """OpenVINO 2026.4 (CPU) got a dynamic-shape Gather over the innermost axis wrong past 2**25 output
    elements: SqueezeNet's first pool (96 x 109 x 109, 3x3/2, ceil_mode) was wrong at batch 16
    (docs/openvino-batch-bug.md). The body gathers on a view where no gathered axis is innermost."""
    openvino = _need("openvino", "openvino")
    import onnxruntime as ort

    from poolswap.export import inline_softpool

    channels = 96
    attributes = dict(kernel_shape=[3, 3], strides=[2, 2], pads=[0, 0, 0, 0], dilations=[1, 1], ceil_mode=1,
                      beta=1.0, betas=[1.0] * channels)
    model = inline_softpool(softpool_model(["N", channels, 109, 109], attributes))
    path = tmp_path / "softpool.onnx"
    onnx.save(model, str(path))
    core = openvino.Core()
    compiled = core.compile_model(core.read_model(str(path)), "CPU", {"INFERENCE_PRECISION_HINT": "f32"})
    x = np.abs(np.random.default_rng(0).standard_normal((16, channels, 109, 109))).astype(np.float32)
    expected = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"]).run(None, {"X": x})[0]
    np.testing.assert_allclose(np.asarray(compiled([x])[0]), expected, rtol=0, atol=1e-5)


def test_validate_says_when_a_tool_expanded_the_nodes(exported, tmp_path, caplog):
    """ORT's offline optimiser without poolswap's library inlines the function: the file runs, the library has
    nothing left to replace, and validate says so in one line."""
    import onnxruntime as ort

    _, files = exported
    out = tmp_path / "optimised.onnx"
    options = ort.SessionOptions()
    options.optimized_model_filepath = str(out)
    ort.InferenceSession(str(files["exact", "function"]), options, providers=["CPUExecutionProvider"])
    optimised = onnx.load(str(out))
    assert not softpool_nodes(optimised)
    report = validate(out, n=2, runtimes=["ort"])
    lines = [r.getMessage() for r in caplog.records if "expanded its 2 poolswap::SoftPool" in r.getMessage()]
    assert len(lines) == 1 and "\n" not in lines[0]
    assert not report.pairs  # one runtime and no checkpoint: nothing to compare, but it loaded
