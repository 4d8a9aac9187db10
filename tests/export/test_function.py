"""The model-local function bodies (fast, exact) against the float64 reference, in plain ONNX Runtime."""

from __future__ import annotations

import math

import numpy as np
import onnx
import pytest
import torch

from poolswap.export import BODIES, softpool_function
from poolswap.ops import soft_pool_reference

from .helpers import geometry_attributes, softpool_model

ort = pytest.importorskip("onnxruntime")

# (input spatial shape, kernel, stride, padding, dilation, ceil_mode)
GEOMETRIES = [
    ((9,), (3,), (2,), (1,), (1,), False),
    ((10,), (2,), (2,), (0,), (2,), True),
    ((5,), (3,), (3,), (1,), (1,), True),  # ceil_mode drops a last window that would start in the padding
    ((5, 8), (3, 2), (3, 2), (1, 1), (1, 1), True),
    ((8, 8), (2, 2), (2, 2), (0, 0), (1, 1), False),
    ((9, 11), (3, 3), (2, 2), (1, 1), (1, 1), True),
    ((7, 7), (3, 3), (1, 1), (1, 1), (1, 1), True),  # GoogLeNet's branch pool
    ((12, 10), (3, 2), (2, 1), (1, 0), (2, 1), False),
    ((6, 7, 5), (2, 3, 2), (2, 2, 1), (1, 1, 0), (1, 1, 2), True),
]


def _run(model: onnx.ModelProto, x: np.ndarray) -> np.ndarray:
    sess = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
    return sess.run(None, {"X": x})[0]


def _reference(x: np.ndarray, kernel, stride, padding, dilation, ceil_mode, beta=1.0, betas=None) -> np.ndarray:
    beta_tensor = None if betas is None else torch.tensor(betas, dtype=torch.float64)
    y = soft_pool_reference(torch.from_numpy(x).double(), kernel, stride, padding, dilation, ceil_mode, beta, beta_tensor)
    return y.numpy()


class TestBodies:
    @pytest.mark.parametrize("body", BODIES)
    @pytest.mark.parametrize("geometry", GEOMETRIES, ids=lambda g: f"{len(g[0])}d-{g[1]}-{g[2]}-{g[3]}-{g[4]}-{g[5]}")
    def test_matches_float64_reference(self, body, geometry):
        spatial, kernel, stride, padding, dilation, ceil_mode = geometry
        rng = np.random.default_rng(0)
        x = (rng.standard_normal((2, 3, *spatial)) * 3).astype(np.float32)
        model = softpool_model(x.shape, geometry_attributes(kernel, stride, padding, dilation, ceil_mode, beta=1.5), body=body)
        onnx.checker.check_model(model, full_check=True)
        y = _run(model, x)
        expected = _reference(x, kernel, stride, padding, dilation, ceil_mode, beta=1.5)
        assert y.shape == expected.shape
        np.testing.assert_allclose(y, expected, rtol=1e-5, atol=2e-5)

    @pytest.mark.parametrize("body", BODIES)
    def test_per_channel_betas(self, body):
        rng = np.random.default_rng(1)
        x = rng.standard_normal((2, 4, 9, 9)).astype(np.float32)
        betas = [0.5, 1.0, 2.0, 8.0]
        attrs = geometry_attributes((3, 3), (2, 2), (1, 1), (1, 1), True, beta=1.0, betas=betas)
        y = _run(softpool_model(x.shape, attrs, body=body), x)
        np.testing.assert_allclose(y, _reference(x, (3, 3), (2, 2), (1, 1), (1, 1), True, betas=betas), rtol=1e-5, atol=2e-5)

    @pytest.mark.parametrize("body", BODIES)
    def test_float16_and_float64(self, body):
        rng = np.random.default_rng(2)
        x = rng.standard_normal((1, 3, 8, 8))
        attrs = geometry_attributes((2, 2), (2, 2), (0, 0), (1, 1), False)
        expected = _reference(x, (2, 2), (2, 2), (0, 0), (1, 1), False)
        y64 = _run(softpool_model(x.shape, attrs, body=body, elem_type=onnx.TensorProto.DOUBLE), x)
        assert y64.dtype == np.float64
        tol = 1e-12 if body == "exact" else 1e-6  # the fast body computes in float32
        np.testing.assert_allclose(y64, expected, rtol=tol, atol=tol)
        x16 = x.astype(np.float16)
        y16 = _run(softpool_model(x.shape, attrs, body=body, elem_type=onnx.TensorProto.FLOAT16), x16)
        assert y16.dtype == np.float16
        np.testing.assert_allclose(y16.astype(np.float64), _reference(x16.astype(np.float64), (2, 2), (2, 2), (0, 0), (1, 1), False), rtol=2e-3, atol=2e-3)


class TestExactBodyNumerics:
    """The exact body keeps the contract's numerics for any input."""

    def _model(self, shape):
        return softpool_model(shape, geometry_attributes((2, 2), (2, 2), (0, 0), (1, 1), False), body="exact")

    def test_huge_values_stay_in_window_range(self):
        x = np.array([[[[1e30, -1e30], [3e29, 0.0]], [[-1e30, -2e30], [-3e30, -1e30]]]], dtype=np.float32)
        y = _run(self._model(x.shape), x)
        assert np.isfinite(y).all()
        np.testing.assert_allclose(y.reshape(-1), [1e30, -1e30], rtol=1e-6)

    def test_far_apart_windows(self):
        # A window 1e4 below the channel max: the fast body's range ends there, the exact one's does not.
        x = np.zeros((1, 1, 2, 4), dtype=np.float32)
        x[..., :2] = [[100.0, 101.0], [100.5, 99.0]]
        x[..., 2:] = [[-1e4, -1e4 + 1], [-1e4, -1e4]]
        y = _run(self._model(x.shape), x)
        np.testing.assert_allclose(y, _reference(x, (2, 2), (2, 2), (0, 0), (1, 1), False), rtol=1e-6)
        fast = _run(softpool_model(x.shape, geometry_attributes((2, 2), (2, 2), (0, 0), (1, 1), False), body="fast"), x)
        assert math.isnan(fast[0, 0, 0, 1])  # documented limit of the fast body

    def test_nan_and_infinities(self):
        inf, nan = np.inf, np.nan
        x = np.array([[[[nan, 1.0, inf, 1.0, -inf, 2.0, -inf, -inf],
                         [0.0, 2.0, 3.0, -inf, -inf, 3.0, -inf, -inf]]]], dtype=np.float32)
        y = _run(self._model(x.shape), x)[0, 0, 0]
        assert math.isnan(y[0])
        assert y[1] == inf
        np.testing.assert_allclose(y[2], _reference(np.array([[[[2.0, 3.0]]]]), (1, 2), (1, 2), (0, 0), (1, 1), False)[0, 0, 0, 0], rtol=1e-6)
        assert y[3] == -inf


class TestFunctionProto:
    @pytest.mark.parametrize("body", BODIES)
    def test_function_signature(self, body):
        f = softpool_function(body, 20)
        assert (f.domain, f.name) == ("poolswap", "SoftPool")
        declared = set(f.attribute) | {a.name for a in f.attribute_proto}
        assert declared == {"kernel_shape", "strides", "pads", "dilations", "ceil_mode", "beta", "betas"}
        assert {o.domain: o.version for o in f.opset_import}[""] == 20

    def test_needs_opset_19(self):
        with pytest.raises(ValueError, match="opset >= 19"):
            softpool_function("fast", 18)

    def test_unknown_body(self):
        with pytest.raises(ValueError, match="body must be one of"):
            softpool_function("slow", 20)

    @pytest.mark.parametrize("body", BODIES)
    def test_shape_inference_through_the_body(self, body):
        model = softpool_model((2, 3, 9, 11), geometry_attributes((3, 3), (2, 2), (1, 1), (1, 1), True), body=body)
        model.graph.node[0].output[0] = "Z"  # infer an intermediate value, not the declared graph output
        model.graph.node.append(onnx.helper.make_node("Identity", ["Z"], ["Y"]))
        inferred = onnx.shape_inference.infer_shapes(model, check_type=True, strict_mode=True)
        (out,) = [v for v in inferred.graph.value_info if v.name == "Z"]
        dims = [d.dim_value for d in out.type.tensor_type.shape.dim]
        # The fast body's sizes come from AveragePool's own inference; the exact body gives the rank only.
        assert dims == ([2, 3, 5, 6] if body == "fast" else [0, 0, 0, 0])


@pytest.mark.parametrize("body", BODIES)
def test_optional_attributes_default_as_maxpool(body):
    """Only kernel_shape given: stride 1, no padding, dilation 1, floor mode, beta 1 (ONNX MaxPool's defaults)."""
    x = np.random.default_rng(7).standard_normal((2, 3, 6, 5)).astype(np.float32)
    y = _run(softpool_model(x.shape, {"kernel_shape": [2, 3]}, body=body), x)
    np.testing.assert_allclose(y, _reference(x, (2, 3), (1, 1), (0, 0), (1, 1), False), rtol=1e-5, atol=2e-5)
