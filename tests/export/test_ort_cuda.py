"""The ONNX Runtime library's CUDA kernel: built wherever nvcc exists, run where a GPU exists."""

from __future__ import annotations

import ctypes
import os

import numpy as np
import pytest
import torch

from poolswap.kernels import build_ort_library
from poolswap.kernels._ort_library import cuda_toolkit

from .helpers import small_cnn


@pytest.mark.skipif(cuda_toolkit() is None and os.environ.get("CI") != "true", reason="no nvcc on this machine")
def test_the_library_registers_cpu_and_cuda_kernels_where_nvcc_exists():
    library = build_ort_library()
    handle = ctypes.CDLL(str(library))
    handle.poolswap_ort_library_info.restype = ctypes.c_char_p
    assert b"kernels=cpu,cuda" in handle.poolswap_ort_library_info()


@pytest.mark.cuda
def test_ort_cuda_provider_runs_the_fused_kernel_and_matches_pytorch(tmp_path):
    import onnxruntime as ort

    from poolswap.deploy import session
    from poolswap.export import export_onnx

    if "CUDAExecutionProvider" not in ort.get_available_providers():
        pytest.skip("onnxruntime has no CUDA provider here")
    model = small_cnn(learn_beta="channel")
    path = tmp_path / "m.onnx"
    export_onnx(model, path, input_size=(3, 16, 16))
    x = torch.randn(7, 3, 16, 16)
    with torch.no_grad():
        expected = model(x).numpy()
    sess = session(path, providers=["CUDAExecutionProvider", "CPUExecutionProvider"], strict=True)
    (got,) = sess.run(None, {sess.get_inputs()[0].name: x.numpy()})
    np.testing.assert_allclose(got, expected, atol=1e-4, rtol=1e-4)
    assert sess.get_providers()[0] == "CUDAExecutionProvider"
