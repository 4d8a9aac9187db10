"""Write and run the minimal ONNX model of docs/openvino-batch-bug.md: one Gather that OpenVINO's CPU plugin gets wrong.

    python docs/openvino_gather_repro.py [--out gather_repro.onnx]

One ``Gather`` over the innermost axis of a float32 input with a dynamic batch;
compares OpenVINO with ``numpy.take`` at batch sizes around 2**25 output elements.
"""

from __future__ import annotations

import argparse

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

CHANNELS, SIZE = 96, 109
INDICES = (np.arange(162) // 3 * 2) % SIZE  # 54 windows of 3, stride 2, as a 3x3/2 pool gathers them


def repro_model() -> onnx.ModelProto:
    """``Y = Gather(X, I, axis=3)`` with X of shape (N, 96, 109, 109), N dynamic."""
    graph = helper.make_graph(
        [helper.make_node("Gather", ["X", "I"], ["Y"], axis=3)],
        "gather_innermost",
        [helper.make_tensor_value_info("X", TensorProto.FLOAT, ["N", CHANNELS, SIZE, SIZE])],
        [helper.make_tensor_value_info("Y", TensorProto.FLOAT, ["N", CHANNELS, SIZE, len(INDICES)])],
        [numpy_helper.from_array(INDICES.astype(np.int64), "I")],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 20)])
    model.ir_version = 10
    onnx.checker.check_model(model, full_check=True)
    return model


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", default="gather_repro.onnx")
    args = parser.parse_args()
    onnx.save(repro_model(), args.out)
    import openvino

    core = openvino.Core()
    compiled = core.compile_model(core.read_model(args.out), "CPU",
                                  {"INFERENCE_PRECISION_HINT": "f32"})
    for batch in (19, 20, 24):
        x = np.random.default_rng(batch).standard_normal((batch, CHANNELS, SIZE, SIZE)).astype(np.float32)
        y = np.asarray(compiled([x])[0])
        expected = np.take(x, INDICES, axis=3)
        print(f"batch {batch}: {y.size} output elements, max abs error {np.abs(y - expected).max():.3g}")


if __name__ == "__main__":
    main()
