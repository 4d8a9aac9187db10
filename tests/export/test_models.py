"""torchvision models with their pools replaced, exported and run in ORT with and without the library.

Each takes 20-60 s on two cores (the dynamo export dominates): marked slow.
The tolerance is 1e-4 absolute plus 1e-4 of the logits' largest magnitude: the
float32 convolutions of PyTorch and ONNX Runtime differ by that much in deep
networks whatever the pooling.
"""

from __future__ import annotations

import numpy as np
import onnx
import pytest

from poolswap.export import export_onnx, node_attributes, softpool_nodes

from .helpers import googlenet_soft, inception_v3_soft, resnet18_soft, run_body, run_library, torch_out

pytest.importorskip("onnxruntime")

MODELS = {
    "resnet18": (resnet18_soft, 64, 1),
    "googlenet": (googlenet_soft, 64, 13),
    "inception_v3": (inception_v3_soft, 75, 2 + 3 + 1 + 4 + 1 + 2),  # stem, A x3, B, C x4, D, E x2
}


def _check(model, path, size):
    for batch in (1, 7):
        x = np.random.default_rng(batch).standard_normal((batch, 3, size, size)).astype(np.float32)
        ref = torch_out(model, x)
        tol = 1e-4 + 1e-4 * float(np.abs(ref).max())
        np.testing.assert_allclose(run_body(path, x), ref, rtol=0, atol=tol)
        np.testing.assert_allclose(run_library(path, x), ref, rtol=0, atol=tol)


@pytest.mark.slow
@pytest.mark.parametrize("name", list(MODELS))
def test_model_exports_and_runs(name, tmp_path, ort_library):
    factory, size, n_pools = MODELS[name]
    model = factory(size)
    path = export_onnx(model, tmp_path / f"{name}.onnx", input_size=(3, size, size))
    proto = onnx.load(str(path))
    onnx.checker.check_model(proto, full_check=True)
    nodes = softpool_nodes(proto)
    assert len(nodes) == n_pools
    if name == "googlenet":
        assert all(node_attributes(n)["ceil_mode"] == 1 for n in nodes)
    _check(model, path, size)


@pytest.mark.slow
def test_resnet18_exact_body(tmp_path, ort_library):
    model = resnet18_soft(64)
    path = export_onnx(model, tmp_path / "r18_exact.onnx", input_size=(3, 64, 64), body="exact")
    _check(model, path, 64)
