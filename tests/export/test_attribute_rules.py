"""One table of valid and invalid ``poolswap::SoftPool`` nodes, and every path held to it.

The custom-op library (C++ rules of ``softpool_attributes.h``) and the function
body (plain ONNX, guarded by poolswap's loader with the Python rules of
``poolswap/kernels/_attribute_rules.py``) must accept and refuse exactly the same
nodes, naming the same attribute. The library runs in a child process: a node
that crashed it must fail this test, not end the test run.
"""

from __future__ import annotations

import json
import math
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import onnx
import pytest

from poolswap.errors import PoolswapError, PoolswapValueError
from poolswap.kernels._attribute_rules import MAX_ATTRIBUTE, MAX_SPATIAL, check_node

ort = pytest.importorskip("onnxruntime")

CSRC = Path(__file__).resolve().parents[2] / "poolswap" / "kernels" / "csrc"
BIG = 2**31 - 1
SHAPE = [1, 4, 8, 8]

# (id, attributes, input shape, the attribute the refusal names first, or None when the node is valid)
TABLE = [
    ("plain", {"kernel_shape": [2, 2]}, SHAPE, None),
    ("overlap-ceil", {"kernel_shape": [3, 3], "strides": [2, 2], "pads": [1, 1, 1, 1], "ceil_mode": 1}, SHAPE, None),
    ("asymmetric-pads", {"kernel_shape": [3, 3], "pads": [2, 0, 0, 2]}, SHAPE, None),
    ("dilated", {"kernel_shape": [3, 3], "dilations": [3, 3]}, SHAPE, None),
    ("one-window-huge-stride", {"kernel_shape": [2, 2], "strides": [BIG, BIG]}, SHAPE, None),
    ("per-channel-betas", {"kernel_shape": [2, 2], "betas": [0.5, 1.0, 2.0, 4.0]}, SHAPE, None),
    ("equal-betas", {"kernel_shape": [2, 2], "betas": [2.0] * 4, "beta": 0.3}, SHAPE, None),
    ("1d", {"kernel_shape": [3], "strides": [2]}, [1, 4, 9], None),
    ("stride-2^31", {"kernel_shape": [2, 2], "strides": [2**31, 2**31]}, SHAPE, "strides"),
    ("stride-2^63-1", {"kernel_shape": [2, 2], "strides": [2**63 - 1, 1]}, SHAPE, "strides"),
    ("stride-minus-1", {"kernel_shape": [2, 2], "strides": [-1, 1]}, SHAPE, "strides"),
    ("stride-0", {"kernel_shape": [2, 2], "strides": [0, 0]}, SHAPE, "strides"),
    ("stride-short", {"kernel_shape": [2, 2], "strides": [2]}, SHAPE, "strides"),
    ("kernel-0", {"kernel_shape": [0, 2]}, SHAPE, "kernel_shape"),
    ("kernel-2^31", {"kernel_shape": [2**31, 2]}, SHAPE, "kernel_shape"),
    ("kernel-4d", {"kernel_shape": [1, 1, 1, 1]}, SHAPE, "kernel_shape"),
    ("dilation-0", {"kernel_shape": [2, 2], "dilations": [0, 1]}, SHAPE, "dilations"),
    ("dilation-long", {"kernel_shape": [2, 2], "dilations": [1, 1, 1]}, SHAPE, "dilations"),
    ("pads-2^31", {"kernel_shape": [2, 2], "pads": [2**31] * 4}, SHAPE, "pads"),
    ("pads-minus-1", {"kernel_shape": [2, 2], "pads": [0, -1, 0, 0]}, SHAPE, "pads"),
    ("pads-short", {"kernel_shape": [2, 2], "pads": [1, 1]}, SHAPE, "pads"),
    ("ceil-2", {"kernel_shape": [2, 2], "ceil_mode": 2}, SHAPE, "ceil_mode"),
    ("beta-inf", {"kernel_shape": [2, 2], "beta": math.inf}, SHAPE, "beta"),
    ("beta-nan", {"kernel_shape": [2, 2], "beta": math.nan}, SHAPE, "beta"),
    ("beta-0", {"kernel_shape": [2, 2], "beta": 0.0}, SHAPE, "beta"),
    ("beta-negative", {"kernel_shape": [2, 2], "beta": -1.0}, SHAPE, "beta"),
    ("betas-3-of-4", {"kernel_shape": [2, 2], "betas": [1.0, 2.0, 3.0]}, SHAPE, "betas"),
    ("betas-1000-equal", {"kernel_shape": [2, 2], "betas": [1.0] * 1000}, SHAPE, "betas"),
    ("betas-1-of-4", {"kernel_shape": [2, 2], "betas": [2.0]}, SHAPE, "betas"),
    ("betas-nan", {"kernel_shape": [2, 2], "betas": [1.0, math.nan, 1.0, 1.0]}, SHAPE, "betas"),
    ("betas-zero", {"kernel_shape": [2, 2], "betas": [0.0] * 4}, SHAPE, "betas"),
    ("betas-negative", {"kernel_shape": [2, 2], "betas": [1.0, -1.0, 1.0, 1.0]}, SHAPE, "betas"),
    ("betas-inf", {"kernel_shape": [2, 2], "betas": [math.inf] * 4}, SHAPE, "betas"),
    ("kernel-9-on-4x4", {"kernel_shape": [9, 9]}, [1, 4, 4, 4], "kernel_shape"),
    ("huge-dilation", {"kernel_shape": [2, 2], "dilations": [2**30, 1]}, SHAPE, "kernel_shape"),
    ("pads-only-window-begin", {"kernel_shape": [3, 3], "pads": [3, 0, 0, 0]}, SHAPE, "pads"),
    ("pads-only-window-end", {"kernel_shape": [2, 2], "pads": [0, 0, 9, 0]}, SHAPE, "pads"),
    ("dilation-past-input", {"kernel_shape": [2], "dilations": [20], "pads": [12, 12]}, [1, 4, 5], "pads"),
    ("output-overflow", {"kernel_shape": [BIG, BIG], "pads": [BIG - 1] * 4}, SHAPE, "output shape"),
    # wrongly typed attributes: the library read them as left out and ran its defaults (beta 1, stride 1)
    ("beta-as-int", {"kernel_shape": [2, 2], "beta": 2}, SHAPE, "beta"),
    ("betas-as-ints", {"kernel_shape": [2, 2], "betas": [1, 2, 3, 4]}, SHAPE, "betas"),
    ("strides-as-floats", {"kernel_shape": [2, 2], "strides": [2.0, 2.0]}, SHAPE, "strides"),
    ("kernel-as-floats", {"kernel_shape": [2.0, 2.0]}, SHAPE, "kernel_shape"),
    ("ceil-as-float", {"kernel_shape": [2, 2], "ceil_mode": 1.0}, SHAPE, "ceil_mode"),
    ("pads-as-string", {"kernel_shape": [2, 2], "pads": "0000"}, SHAPE, "pads"),
]
IDS = [row[0] for row in TABLE]


def _model(attrs: dict, shape: list, body) -> onnx.ModelProto:
    from .helpers import softpool_model

    model = softpool_model(shape, attrs, body=body)
    model.graph.node[0].name = "pool1"
    return model


def _named(message: str) -> str:
    """The attribute a refusal names: what follows the node's prefix."""
    rest = message.split("poolswap::SoftPool node 'pool1': ", 1)[1]
    return "output shape" if rest.startswith("output shape") else rest.split(" ", 1)[0].rstrip(":")


@pytest.mark.parametrize("name, attrs, shape, refused", TABLE, ids=IDS)
def test_python_rules_follow_the_table(name, attrs, shape, refused):
    if refused is None:
        check_node("pool1", attrs, shape)
        return
    with pytest.raises(PoolswapValueError) as info:
        check_node("pool1", attrs, shape)
    message = str(info.value)
    assert "\n" not in message and _named(message) == refused, message


# Builds each row's one-node model (library only: no function body) and runs it with the
# library registered; prints one JSON line per row. A crash ends the child, not the test run.
_CHILD = r"""
import json, sys
import numpy as np, onnxruntime as ort
library, rows = sys.argv[1], json.loads(sys.stdin.read())
for name, path, shape in rows:
    options = ort.SessionOptions()
    options.register_custom_ops_library(library)
    options.log_severity_level = 4
    try:
        session = ort.InferenceSession(path, options, providers=["CPUExecutionProvider"])
        x = np.random.default_rng(0).standard_normal(shape).astype(np.float32)
        y = session.run(None, {"X": x})[0]
        print(json.dumps([name, None, y.tolist()]), flush=True)
    except Exception as exc:
        print(json.dumps([name, str(exc), None]), flush=True)
"""


@pytest.fixture(scope="module")
def library_results(ort_library, tmp_path_factory) -> dict:
    folder = tmp_path_factory.mktemp("rules")
    rows = []
    for name, attrs, shape, _ in TABLE:
        path = folder / f"{name}.onnx"
        onnx.save(_model(attrs, shape, None), str(path))
        rows.append([name, str(path), shape])
    child = subprocess.run([sys.executable, "-c", _CHILD, str(ort_library)], input=json.dumps(rows),
                           capture_output=True, text=True, timeout=240)  # fmt: skip
    assert child.returncode == 0, f"the library killed the process (exit {child.returncode}): {child.stderr[-2000:]}"
    return {line[0]: line[1:] for line in map(json.loads, child.stdout.splitlines())}


@pytest.mark.parametrize("name, attrs, shape, refused", TABLE, ids=IDS)
def test_library_follows_the_table(library_results, name, attrs, shape, refused):
    error, output = library_results[name]
    if refused is None:
        assert error is None, error
        from poolswap.ops import soft_pool_reference  # the contract, in float64
        import torch

        x = np.random.default_rng(0).standard_normal(shape).astype(np.float64)
        nd = len(attrs["kernel_shape"])
        pads = attrs.get("pads", [0] * 2 * nd)
        assert pads[:nd] == pads[nd:] or name == "asymmetric-pads"
        if name == "asymmetric-pads":
            return  # the PyTorch reference pads symmetrically; the body comparison below covers it
        betas = attrs.get("betas")
        expected = soft_pool_reference(
            torch.from_numpy(x), attrs["kernel_shape"], attrs.get("strides", [1] * nd), pads[:nd],
            attrs.get("dilations", [1] * nd), bool(attrs.get("ceil_mode", 0)),
            float(betas[0]) if betas and len(set(betas)) == 1 else attrs.get("beta", 1.0),
            None if not betas or len(set(betas)) == 1 else torch.tensor(betas, dtype=torch.float64),
        ).numpy()  # fmt: skip
        np.testing.assert_allclose(np.asarray(output), expected, rtol=2e-5, atol=2e-5)
        return
    assert error is not None, f"the library ran a node the rules refuse ({refused})"
    assert _named(error) == refused, error


@pytest.mark.parametrize("name, attrs, shape, refused", TABLE, ids=IDS)
def test_function_body_path_refuses_the_same_nodes(tmp_path, name, attrs, shape, refused):
    """poolswap's sessions without the library (the function body) refuse what the library refuses, in one line."""
    from poolswap.deploy import session

    if name == "output-overflow":
        pytest.skip("the body would try to allocate the output of an accepted geometry; covered by the rules test")
    path = tmp_path / "m.onnx"
    onnx.save(_model(attrs, shape, "exact"), str(path))
    if refused is None:
        sess = session(path, "cpu", library=False)
        x = np.random.default_rng(0).standard_normal(shape).astype(np.float32)
        assert np.isfinite(sess.run(None, {"X": x})[0]).all()
        return
    with pytest.raises(PoolswapError) as info:
        session(path, "cpu", library=False)
    message = str(info.value)
    assert "\n" not in message and _named(message) == refused, message


def test_library_and_body_agree_on_the_valid_rows(library_results, tmp_path):
    from poolswap.deploy import session

    for name, attrs, shape, refused in TABLE:
        if refused is not None:
            continue
        path = tmp_path / f"{name}.onnx"
        onnx.save(_model(attrs, shape, "exact"), str(path))
        x = np.random.default_rng(0).standard_normal(shape).astype(np.float32)
        body = session(path, "cpu", library=False).run(None, {"X": x})[0]
        np.testing.assert_allclose(np.asarray(library_results[name][1]), body, rtol=1e-5, atol=1e-5, err_msg=name)


def test_the_python_and_cpp_rules_share_their_limits():
    header = (CSRC / "softpool_attributes.h").read_text()
    assert int(re.search(r"kMaxAttribute = (\d+);", header).group(1)) == MAX_ATTRIBUTE == 2**31 - 1
    assert re.search(r"kMaxSpatial = int64_t\(1\) << (\d+);", header).group(1) == str(int(math.log2(MAX_SPATIAL)))
    for rule in ("kernel_shape", "strides", "dilations", "pads", "ceil_mode", "beta", "betas"):
        assert f"//   {rule}" in header


@pytest.mark.parametrize("attrs, named", [
    ({"kernel_shape": 2}, "kernel_shape"),
    ({"kernel_shape": [2, 2], "strides": 2}, "strides"),
    ({"kernel_shape": [2, 2], "pads": [0.0, 0.0, 0.0, 0.0]}, "pads"),
    ({"kernel_shape": [2, 2], "ceil_mode": 1.0}, "ceil_mode"),
    ({"kernel_shape": [2, 2], "beta": 1}, "beta"),
    ({"kernel_shape": [2, 2], "betas": [1, 1, 1, 1]}, "betas"),
])  # fmt: skip
def test_wrongly_typed_attributes_are_refused_by_the_loader(attrs, named):
    """ONNX attributes are typed; a wrongly typed one is refused by poolswap's loader (and by the library, see
    the table's *-as-* rows), naming the type it needs."""
    with pytest.raises(PoolswapValueError, match=rf"node 'pool1': {named} .*: must be .*\(ONNX type [A-Z]+\)"):
        check_node("pool1", attrs, SHAPE)


@pytest.mark.parametrize("name", ["evil\nsecond line", "red\x1b[31m", "x" * 5000, "line\u2028sep"])
def test_a_hostile_node_name_keeps_the_refusal_on_one_line(ort_library, tmp_path, name):
    """A node's name comes from the file: a newline in it cut the one-line error before its reason."""
    from .helpers import softpool_model

    attrs = {"kernel_shape": [2, 2], "beta": math.inf}
    with pytest.raises(PoolswapValueError) as info:
        check_node(name, attrs, SHAPE)
    message = str(info.value)
    assert len(message.splitlines()) == 1 and "\x1b" not in message and message.endswith("beta inf: must be finite and > 0")
    assert len(message) < 400
    model = softpool_model(SHAPE, attrs, body=None)
    model.graph.node[0].name = name
    path = tmp_path / "m.onnx"
    onnx.save(model, str(path))
    options = ort.SessionOptions()
    options.register_custom_ops_library(str(ort_library))
    options.log_severity_level = 4
    with pytest.raises(Exception) as info:
        ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
    text = str(info.value)
    assert "beta inf: must be finite and > 0" in text and "\x1b" not in text and "\nsecond" not in text
