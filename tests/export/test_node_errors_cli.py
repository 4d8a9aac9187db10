"""A node whose attribute cannot work on its input: ``predict`` and ``validate`` name the node and the attribute.

The input matches the model, so "the model expects input ..." would name the wrong
cause. The command runs as a user runs it (a child process), so that the test sees
the real stderr: poolswap's one line must come first, with no ONNX Runtime log
line (coloured, ``[E:onnxruntime:...]``) before it.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import onnx
import pytest

pytest.importorskip("onnxruntime")

ROOT = Path(__file__).resolve().parents[2]


def _model(path: Path, spatial: list) -> Path:
    """X (N, 3, H, W) -> SoftPool 'stem_pool' with kernel 9 -> global average -> (N, 3) logits."""
    from poolswap.export import attach_function

    nodes = [
        onnx.helper.make_node("SoftPool", ["X"], ["P"], domain="poolswap", name="stem_pool", kernel_shape=[9, 9],
                              strides=[1, 1], pads=[0, 0, 0, 0], dilations=[1, 1], ceil_mode=0, beta=1.0),
        onnx.helper.make_node("GlobalAveragePool", ["P"], ["G"]),
        onnx.helper.make_node("Flatten", ["G"], ["Y"]),
    ]  # fmt: skip
    graph = onnx.helper.make_graph(
        nodes, "g", [onnx.helper.make_tensor_value_info("X", onnx.TensorProto.FLOAT, ["N", 3, *spatial])],
        [onnx.helper.make_tensor_value_info("Y", onnx.TensorProto.FLOAT, ["N", 3])],
    )  # fmt: skip
    model = onnx.helper.make_model(graph, opset_imports=[onnx.helper.make_opsetid("", 20),
                                                         onnx.helper.make_opsetid("poolswap", 1)])  # fmt: skip
    model.ir_version = 10
    attach_function(model, "fast")
    onnx.helper.set_model_props(model, {"poolswap.preprocess": '{"input_size": [3, 4, 4], "crop_pct": 1.0}'})
    onnx.save(model, str(path))
    return path


def _image(path: Path) -> Path:
    from PIL import Image

    Image.fromarray(np.full((8, 8, 3), 128, np.uint8)).save(path)
    return path


def _poolswap(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, str(ROOT / "cli.py"), *args], capture_output=True, text=True, timeout=300,
                          cwd=ROOT)  # fmt: skip


def _assert_names_node_first(result: subprocess.CompletedProcess) -> None:
    assert result.returncode == 2, result.stderr
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert lines, result.stderr
    assert "onnxruntime" not in lines[0] and "\x1b[" not in lines[0], result.stderr
    assert lines[0].startswith("poolswap: error:"), result.stderr
    assert "poolswap::SoftPool node 'stem_pool': kernel_shape [9, 9]" in lines[0], result.stderr
    assert "larger than the padded input" in lines[0] and "expects input" not in lines[0], result.stderr


@pytest.mark.parametrize("spatial", [[4, 4], ["H", "W"]], ids=["static", "symbolic"])
@pytest.mark.parametrize("library", [True, False], ids=["library", "body"])
def test_predict_names_the_node_and_the_attribute(tmp_path, ort_library, spatial, library):
    model = _model(tmp_path / "m.onnx", spatial)
    args = ["predict", str(model), str(_image(tmp_path / "a.png")), "--size", "4", "4", "--providers", "cpu"]
    result = _poolswap(*args, *([] if library else ["--no-library"]))
    _assert_names_node_first(result)


@pytest.mark.parametrize("spatial", [[4, 4], ["H", "W"]], ids=["static", "symbolic"])
def test_validate_on_the_library_names_the_node_and_the_attribute(tmp_path, ort_library, spatial):
    model = _model(tmp_path / "m.onnx", spatial)
    # With symbolic sizes, validate draws 8 x 8 inputs (its batch size): still too small for kernel 9.
    _assert_names_node_first(_poolswap("validate", str(model), "--runtime", "ort-library"))


def test_a_wrong_input_is_still_named_as_the_cause(tmp_path):
    """The node check behind a failed run does not blame a node when the input does not fit the model."""
    from poolswap.deploy import session
    from poolswap.errors import PoolswapError

    sess = session(_model(tmp_path / "m.onnx", ["H", "W"]), "cpu", library=False)
    with pytest.raises(PoolswapError, match=r"the model expects input 'X' float32 \['N', 3, 'H', 'W'\]"):
        sess.run(None, {"X": np.ones((1, 5, 16, 16), np.float32)})
