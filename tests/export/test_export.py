"""export_onnx on small models: one poolswap::SoftPool node per SoftPool, attributes, bodies, batch, metadata."""

from __future__ import annotations

import json
import math

import numpy as np
import onnx
import pytest
import torch
from torch import nn

from poolswap.errors import PoolswapError
from poolswap.export import export_onnx, model_body, node_attributes, softpool_nodes
from poolswap.ops import SoftPool1d, SoftPool3d, soft_pool2d

from .helpers import run_body, run_library, small_cnn, torch_out

pytest.importorskip("onnxruntime")


@pytest.fixture(scope="module")
def cnn():
    model = small_cnn()
    with torch.no_grad():
        model(torch.zeros(1, 3, 16, 16))
    return model


@pytest.fixture(scope="module")
def exported(cnn, tmp_path_factory):
    folder = tmp_path_factory.mktemp("export")
    return {body: export_onnx(cnn, folder / f"{body}.onnx", input_size=(3, 16, 16), body=body) for body in ("fast", "exact")}


def _x(batch, size=16, seed=0):
    return np.random.default_rng(seed).standard_normal((batch, 3, size, size)).astype(np.float32)


class TestGraph:
    def test_one_node_per_softpool_and_a_function(self, exported):
        model = onnx.load(str(exported["fast"]))
        nodes = softpool_nodes(model)
        assert len(nodes) == 2
        assert [(f.domain, f.name) for f in model.functions] == [("poolswap", "SoftPool")]
        assert {o.domain: o.version for o in model.opset_import}["poolswap"] == 1
        assert not any(n.op_type in ("AveragePool", "Exp", "GlobalMaxPool") for n in model.graph.node)  # not inlined

    def test_attributes_round_trip(self, exported, cnn):
        nodes = softpool_nodes(onnx.load(str(exported["fast"])))
        # Every attribute written out, a shared temperature once per channel: no consumer needs a default.
        assert node_attributes(nodes[0]) == {
            "kernel_shape": [3, 3], "strides": [2, 2], "pads": [1, 1, 1, 1], "dilations": [1, 1], "ceil_mode": 1,
            "beta": 1.0, "betas": [1.0] * 8,
        }
        assert node_attributes(nodes[1]) == {
            "kernel_shape": [2, 2], "strides": [2, 2], "pads": [0, 0, 0, 0], "dilations": [1, 1], "ceil_mode": 0,
            "beta": 2.0, "betas": [2.0] * 8,
        }

    @pytest.mark.parametrize("body", ["fast", "exact"])
    def test_checker_full_check_and_body(self, exported, body):
        model = onnx.load(str(exported[body]))
        onnx.checker.check_model(model, full_check=True)
        assert model_body(model) == body

    def test_shape_inference_gives_the_pool_shapes(self, exported):
        model = onnx.load(str(exported["fast"]))
        del model.graph.value_info[:]  # forget the exporter's shapes: infer them through the function
        inferred = onnx.shape_inference.infer_shapes(model, strict_mode=True)
        shapes = {v.name: [d.dim_value or d.dim_param for d in v.type.tensor_type.shape.dim] for v in inferred.graph.value_info}
        first, second = softpool_nodes(inferred)
        assert shapes[first.output[0]] == ["batch", 8, 9, 9]
        assert shapes[second.output[0]] == ["batch", 8, 3, 3]

    def test_metadata(self, cnn, tmp_path):
        path = export_onnx(cnn, tmp_path / "m.onnx", input_size=(3, 16, 16), class_names=[f"c{i}" for i in range(10)])
        meta = {p.key: p.value for p in onnx.load(str(path)).metadata_props}
        assert meta["poolswap.body"] == "exact" and meta["poolswap.softpool_nodes"] == "2"
        assert json.loads(meta["poolswap.class_names"])[3] == "c3"
        assert json.loads(meta["poolswap.input_shape"]) == ["batch", 3, 16, 16]


class TestRuns:
    @pytest.mark.parametrize("body", ["fast", "exact"])
    @pytest.mark.parametrize("batch", [1, 7])
    def test_body_matches_pytorch(self, exported, cnn, body, batch):
        x = _x(batch)
        np.testing.assert_allclose(run_body(exported[body], x), torch_out(cnn, x), rtol=1e-4, atol=1e-4)

    @pytest.mark.parametrize("batch", [1, 7])
    def test_library_matches_pytorch(self, exported, cnn, batch, ort_library):
        x = _x(batch, seed=1)
        np.testing.assert_allclose(run_library(exported["fast"], x), torch_out(cnn, x), rtol=1e-4, atol=1e-4)

    def test_static_batch(self, cnn, tmp_path):
        path = export_onnx(cnn, tmp_path / "s.onnx", input_size=(3, 16, 16), dynamic_batch=False)
        model = onnx.load(str(path))
        assert model.graph.input[0].type.tensor_type.shape.dim[0].dim_value == 1
        x = _x(1)
        np.testing.assert_allclose(run_body(path, x), torch_out(cnn, x), rtol=1e-4, atol=1e-4)


class TestLearntBetas:
    @pytest.mark.parametrize("mode", ["scalar", "channel"])
    def test_frozen_at_export(self, tmp_path, mode, ort_library):
        model = small_cnn(learn_beta=mode)
        with torch.no_grad():
            model[4].log_beta.copy_(torch.linspace(-0.5, 0.8, model[4].log_beta.numel()).reshape(model[4].log_beta.shape))
        path = export_onnx(model, tmp_path / "b.onnx", input_size=(3, 16, 16))
        attrs = node_attributes(softpool_nodes(onnx.load(str(path)))[1])
        expected = model[4].beta.reshape(-1).tolist()
        if mode == "scalar":
            assert attrs["beta"] == pytest.approx(expected[0], rel=1e-6)
            assert attrs["betas"] == pytest.approx(expected * 8, rel=1e-6)
        else:
            assert attrs["betas"] == pytest.approx(expected, rel=1e-6)
        assert model[4].log_beta.requires_grad  # the user's model is untouched
        x = _x(3)
        ref = torch_out(model, x)
        np.testing.assert_allclose(run_body(path, x), ref, rtol=1e-4, atol=1e-4)
        np.testing.assert_allclose(run_library(path, x), ref, rtol=1e-4, atol=1e-4)


class TestOtherModels:
    def test_no_softpool_exports_as_usual(self, tmp_path):
        model = nn.Sequential(nn.Conv2d(3, 4, 3), nn.MaxPool2d(2), nn.Flatten()).eval()
        path = export_onnx(model, tmp_path / "plain.onnx", input_size=(3, 10, 10))
        proto = onnx.load(str(path))
        assert not softpool_nodes(proto) and not proto.functions
        assert "poolswap" not in {o.domain for o in proto.opset_import}
        x = _x(2, size=10)
        np.testing.assert_allclose(run_body(path, x), torch_out(model, x), rtol=1e-5, atol=1e-5)

    def test_functional_softpool_and_1d_3d_modules(self, tmp_path):
        class Mixed(nn.Module):
            def __init__(self):
                super().__init__()
                self.pool1d = SoftPool1d(3, 2, padding=1, beta=0.5)
                self.pool3d = SoftPool3d(2, ceil_mode=True)

            def forward(self, x):
                y = soft_pool2d(x, 2, beta=3.0)  # functional: torch.ops.poolswap.soft_pool
                z = self.pool3d(y.unsqueeze(1))
                return self.pool1d(z.flatten(2))

        model = Mixed().eval()
        path = export_onnx(model, tmp_path / "mixed.onnx", input_size=(3, 10, 9))
        attrs = [node_attributes(n) for n in softpool_nodes(onnx.load(str(path)))]
        assert [a["kernel_shape"] for a in attrs] == [[2, 2], [2, 2, 2], [3]]
        assert [a["beta"] for a in attrs] == [3.0, 1.0, 0.5]
        x = _x(2, size=10)[..., :9].copy()
        np.testing.assert_allclose(run_body(path, x), torch_out(model, x), rtol=1e-5, atol=1e-5)

    def test_bad_arguments(self, cnn, tmp_path):
        with pytest.raises(PoolswapError, match="opset must be an integer between 19 and"):
            export_onnx(cnn, tmp_path / "x.onnx", input_size=(3, 16, 16), opset=17)
        with pytest.raises(PoolswapError, match="opset must be an integer between 19 and"):
            export_onnx(cnn, tmp_path / "x.onnx", input_size=(3, 16, 16), opset=99)
        with pytest.raises(PoolswapError, match="body must be one of"):
            export_onnx(cnn, tmp_path / "x.onnx", input_size=(3, 16, 16), body="slow")
        with pytest.raises(TypeError, match="nn.Module"):
            export_onnx(lambda x: x, tmp_path / "x.onnx")
        assert not (tmp_path / "x.onnx").exists()
