"""Converted torchvision and timm models, both bodies, both forms, on every runtime against PyTorch.

Each model is exported once (exact body, poolswap::SoftPool nodes, static input);
the fast body is attached to a copy and each is inlined (``inline_softpool``),
so the matrix costs five exports. The runtimes: ONNX Runtime without and with
poolswap's library, ONNX's reference evaluator and OpenVINO (the function form is
inlined in memory for it: OpenVINO does not expand custom-domain functions).
"""

from __future__ import annotations

import copy
import os
import sys
from pathlib import Path

import numpy as np
import onnx
import pytest
import torch

import poolswap
from poolswap.deploy.runtimes import runner
from poolswap.export import attach_function, export_onnx, inline_softpool, model_body, softpool_nodes

from .helpers import calibrate_batchnorm

pytest.importorskip("onnxruntime")

# name: (factory, input size H=W). timm's ese_vovnet is left out: OpenVINO 2026.4 rejects its
# HardSigmoid at opset 20, an operator the export does not touch. GoogLeNet at 64x64: at 32x32 its
# inception5 pools see 1x1 maps and stay MaxPool (global in effect), and ONNX's reference evaluator
# (onnx 1.23) gives a 3x3 output for MaxPool(3, 1, pads 1, ceil_mode 1) on a 1x1 input.
MODELS = {
    "tv-googlenet": (lambda: _torchvision("googlenet", aux_logits=False, init_weights=False), 64),
    "tv-inception_v3": (lambda: _torchvision("inception_v3", aux_logits=False, init_weights=False), 75),
    "timm-resnet10t": (lambda: _timm("resnet10t"), 32),
    "timm-dla46_c": (lambda: _timm("dla46_c"), 32),
    "timm-resnet26d": (lambda: _timm("resnet26d"), 32),
}
SLOW = {"tv-googlenet", "tv-inception_v3"}  # about 30 s and 60 s of export each on 2 cores
FORMS = ("function", "inline")


def _torchvision(name: str, **kwargs) -> torch.nn.Module:
    import torchvision

    torch.manual_seed(0)
    return torchvision.models.get_model(name, weights=None, num_classes=10, **kwargs)


def _timm(name: str) -> torch.nn.Module:
    import timm

    torch.manual_seed(0)
    return timm.create_model(name, pretrained=False, num_classes=10)


def _converted(name: str) -> tuple[torch.nn.Module, int]:
    factory, size = MODELS[name]
    model = factory().eval()
    converted = poolswap.convert(model, example_input=torch.randn(1, 3, size, size))
    assert poolswap.manifest(converted)["sites"], name
    return calibrate_batchnorm(converted, size), size


@pytest.fixture(scope="module")
def exported(tmp_path_factory):
    """name -> (model, size, {(body, form): path}); each model exported once, on first use."""
    cache: dict = {}
    folder = tmp_path_factory.mktemp("runtimes")

    def get(name: str):
        if name not in cache:
            model, size = _converted(name)
            base = export_onnx(model, folder / f"{name}.onnx", input_size=(3, size, size), dynamic_batch=False)
            proto = onnx.load(str(base))
            paths = {}
            for body in ("exact", "fast"):
                with_body = attach_function(copy.deepcopy(proto), body)
                for form, result in (("function", with_body), ("inline", inline_softpool(with_body))):
                    path = folder / f"{name}-{body}-{form}.onnx"
                    onnx.save(result, str(path))
                    paths[body, form] = path
            cache[name] = (model, size, paths)
        return cache[name]

    return get


def _params():
    for name in MODELS:
        marks = [pytest.mark.slow] if name in SLOW else []
        for body in ("exact", "fast"):
            for form in FORMS:
                yield pytest.param(name, body, form, id=f"{name}-{body}-{form}", marks=marks)


def _static_dims(value_infos) -> list:
    return [
        (v.name, [d.dim_value if d.HasField("dim_value") else d.dim_param for d in v.type.tensor_type.shape.dim])
        for v in value_infos
        if v.type.HasField("tensor_type")
        and (not v.type.tensor_type.HasField("shape") or not all(d.HasField("dim_value") for d in v.type.tensor_type.shape.dim))
    ]


@pytest.mark.parametrize("name, body, form", list(_params()))
def test_every_runtime_matches_pytorch(exported, name, body, form):
    model, size, paths = exported(name)
    path = paths[body, form]
    proto = onnx.load(str(path))
    onnx.checker.check_model(proto, full_check=True)
    if form == "inline":
        assert not softpool_nodes(proto) and not proto.functions
        assert {o.domain for o in proto.opset_import} <= {"", "ai.onnx"}
        inferred = onnx.shape_inference.infer_shapes(proto, strict_mode=True)
        assert _static_dims(list(inferred.graph.value_info) + list(inferred.graph.output)) == []
    else:
        assert softpool_nodes(proto) and model_body(proto) == body
    x = np.random.default_rng(0).standard_normal((1, 3, size, size)).astype(np.float32)
    with torch.no_grad():
        ref = model(torch.from_numpy(x)).numpy()
    tol = 1e-4 + 1e-4 * float(np.abs(ref).max())
    for runtime in ("ort", "ort-library", "reference", "openvino"):
        if runtime == "ort-library":
            from poolswap.deploy import check_library, ort_library_path

            if not check_library(ort_library_path())[0]:
                continue  # tests/export/test_ort_library.py says why; the other runtimes still run
        if runtime == "openvino" and not _has_openvino():
            continue
        y = runner(path, runtime)(x)
        np.testing.assert_allclose(y, ref, rtol=0, atol=tol, err_msg=f"{runtime} {body} {form}")


def _has_openvino() -> bool:
    try:
        import openvino  # noqa: F401
    except ImportError:
        return False
    return True


def _machine_paths() -> list[str]:
    paths = {os.getcwd(), sys.prefix, str(Path.home()), str(Path(poolswap.__file__).resolve().parent.parent)}
    paths |= {str(Path(torch.__file__).resolve().parent.parent)}
    return sorted(p for p in paths if len(p) > 1)


def test_no_machine_paths_and_the_preprocessing_is_stored(exported):
    model, size, paths = exported("timm-resnet10t")
    for path in paths.values():
        proto = onnx.load(str(path))
        strings = [p.value for p in proto.metadata_props] + [proto.doc_string, proto.graph.doc_string]
        for node in list(proto.graph.node) + [n for f in proto.functions for n in f.node]:
            strings += [node.doc_string, node.name] + [p.value for p in node.metadata_props]
        text = "\n".join(strings)
        leaked = [p for p in _machine_paths() if p in text]
        assert not leaked and 'File "' not in text and ".py:" not in text, leaked
        meta = {p.key: p.value for p in proto.metadata_props}
        import json

        pre = json.loads(meta["poolswap.preprocess"])
        cfg = model.pretrained_cfg  # the model's own data config, at the exported size
        assert pre["input_size"] == [3, size, size] and pre["crop_pct"] == pytest.approx(cfg["crop_pct"])
        assert pre["interpolation"] == cfg["interpolation"] == "bicubic"
        assert pre["mean"] == pytest.approx(cfg["mean"]) and pre["std"] == pytest.approx(cfg["std"])
