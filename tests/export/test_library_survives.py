"""Hostile ``poolswap::SoftPool`` nodes never kill a process that registered the library.

Every case runs in a child process with the library registered in plain ONNX
Runtime (any program can do that, not only poolswap): the child must exit
normally (a crash is exit 139 or -11), and each bad node must come back as an
ORT error that names the node and the attribute, at session creation (attributes
alone) or at run time (attributes against the input's shape, with the spatial
dims left symbolic so that nothing is known before the run).
"""

from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import onnx
import pytest

ort = pytest.importorskip("onnxruntime")

_CHILD = r"""
import json, sys
import numpy as np, onnx, onnxruntime as ort
library, cases = sys.argv[1], json.loads(sys.stdin.read())
for name, attrs, shape in cases:
    node = onnx.helper.make_node("SoftPool", ["X"], ["Y"], domain="poolswap", name="hostile", **attrs)
    dims = [shape[0], shape[1]] + [f"s{i}" for i in range(len(shape) - 2)]  # spatial dims unknown until the run
    graph = onnx.helper.make_graph([node], "g", [onnx.helper.make_tensor_value_info("X", onnx.TensorProto.FLOAT, dims)],
                                   [onnx.helper.make_tensor_value_info("Y", onnx.TensorProto.FLOAT, None)])
    model = onnx.helper.make_model(graph, opset_imports=[onnx.helper.make_opsetid("", 20),
                                                         onnx.helper.make_opsetid("poolswap", 1)])
    model.ir_version = 10
    options = ort.SessionOptions()
    options.register_custom_ops_library(library)
    options.log_severity_level = 4
    stage = "create"
    try:
        session = ort.InferenceSession(model.SerializeToString(), options, providers=["CPUExecutionProvider"])
        stage = "run"
        y = session.run(None, {"X": np.ones(shape, np.float32)})[0]
        print(json.dumps([name, "ok", list(y.shape)]), flush=True)
    except Exception as exc:
        print(json.dumps([name, stage, str(exc)]), flush=True)
"""

BIG = 2**31 - 1
# (id, attributes, input shape, where the library refuses: "create" or "run", the attribute named)
CASES = [
    ("strides-2^31", {"kernel_shape": [2, 2], "strides": [2**31, 2**31]}, [2, 3, 16, 16], "create", "strides"),
    ("strides-2^63-1", {"kernel_shape": [2, 2], "strides": [2**63 - 1, 2**63 - 1]}, [2, 3, 16, 16], "create", "strides"),
    ("strides-minus-1", {"kernel_shape": [2, 2], "strides": [-1, 2]}, [2, 3, 16, 16], "create", "strides"),
    ("strides-0", {"kernel_shape": [2, 2], "strides": [0, 0]}, [2, 3, 16, 16], "create", "strides"),
    ("kernel-2^63-1", {"kernel_shape": [2**63 - 1, 2]}, [2, 3, 16, 16], "create", "kernel_shape"),
    ("dilations-2^31", {"kernel_shape": [2, 2], "dilations": [2**31, 1]}, [2, 3, 16, 16], "create", "dilations"),
    ("pads-2^62", {"kernel_shape": [2, 2], "pads": [2**62, 0, 2**62, 0]}, [2, 3, 16, 16], "create", "pads"),
    ("pads-mismatched", {"kernel_shape": [2, 2], "pads": [0, 0, 0]}, [2, 3, 16, 16], "create", "pads"),
    ("strides-mismatched", {"kernel_shape": [2, 2], "strides": [1, 1, 1]}, [2, 3, 16, 16], "create", "strides"),
    ("beta-inf", {"kernel_shape": [2, 2], "beta": float("inf")}, [2, 3, 16, 16], "create", "beta"),
    ("betas-wrong-length", {"kernel_shape": [2, 2], "betas": [1.0] * 1000}, [2, 16, 8, 8], "run", "betas"),
    ("kernel-9-on-4x4", {"kernel_shape": [9, 9]}, [1, 3, 4, 4], "run", "kernel_shape"),
    ("huge-pads-accepted-then-too-big", {"kernel_shape": [BIG, BIG], "pads": [BIG - 1] * 4}, [1, 3, 4, 4], "run",
     "output shape"),
    ("huge-dilation", {"kernel_shape": [2, 2], "dilations": [BIG, BIG]}, [1, 3, 4, 4], "run", "kernel_shape"),
]


@pytest.fixture(scope="module")
def child_results(ort_library) -> dict:
    cases = [[name, attrs, shape] for name, attrs, shape, _, _ in CASES]
    cases.append(["one-window", {"kernel_shape": [2, 2], "strides": [BIG, BIG]}, [2, 3, 16, 16]])
    child = subprocess.run([sys.executable, "-c", _CHILD, str(ort_library)], input=json.dumps(cases),
                           capture_output=True, text=True, timeout=240)  # fmt: skip
    assert child.returncode == 0, f"the library killed the process (exit {child.returncode}): {child.stderr[-2000:]}"
    results = {line[0]: line[1:] for line in map(json.loads, child.stdout.splitlines())}
    assert len(results) == len(cases)
    return results


@pytest.mark.parametrize("name, attrs, shape, stage, attribute", CASES, ids=[c[0] for c in CASES])
def test_a_hostile_node_is_an_ort_error_naming_node_and_attribute(child_results, name, attrs, shape, stage, attribute):
    got_stage, message = child_results[name]
    assert got_stage == stage, message
    assert f"poolswap::SoftPool node 'hostile': {attribute}" in message, message


def test_a_huge_stride_with_one_window_runs(child_results):
    """2^31 - 1 is a valid stride: on a 16x16 map it leaves one window, which the kernel computes (no 2^36-float buffer)."""
    stage, shape = child_results["one-window"]
    assert stage == "ok" and shape == [2, 3, 1, 1]


def test_the_pytorch_op_refuses_or_runs_the_same_strides():
    import torch

    import poolswap
    from poolswap.errors import PoolswapValueError
    from poolswap.ops import soft_pool_reference

    x = torch.randn(2, 3, 16, 16)
    with pytest.raises(PoolswapValueError, match=r"stride must be at most 2147483647"):
        poolswap.soft_pool2d(x, 2, stride=2**31)
    y = poolswap.soft_pool2d(x, 2, stride=BIG)
    torch.testing.assert_close(y, soft_pool_reference(x.double(), (2, 2), (BIG, BIG), (0, 0), (1, 1), False).float())
    # The compiled op behind the Python checks keeps the same rules (softpool_attributes.h).
    from poolswap.kernels import ensure_loaded

    ensure_loaded()
    with pytest.raises(ValueError, match=r"SoftPool: strides \[2147483648, 1\]: value 2147483648 at index 0 is out of range"):
        torch.ops.poolswap.soft_pool(x, [2, 2], [2**31, 1], [0, 0], [1, 1], False, 1.0, None)
    y = torch.ops.poolswap.soft_pool(x, [2, 2], [BIG, BIG], [0, 0], [1, 1], False, 1.0, None)
    assert y.shape == (2, 3, 1, 1)


def test_the_pytorch_op_computes_a_kernel_of_2_31_minus_1():
    """Kernel 2^31 - 1 with padding 2^30 - 1 is a valid geometry: every window holds the whole 16 x 16 plane.

    The op reads only the positions inside the input (no buffer sized by the kernel, no overflowing product).
    """
    import torch

    import poolswap

    x = torch.randn(2, 3, 16, 16, dtype=torch.float64)
    y = poolswap.soft_pool2d(x, BIG, stride=1, padding=2**30 - 1)
    flat = x.reshape(2, 3, -1)
    expected = (torch.softmax(flat, dim=-1) * flat).sum(-1)
    assert y.shape == (2, 3, 16, 16)
    torch.testing.assert_close(y, expected[..., None, None].expand_as(y))
