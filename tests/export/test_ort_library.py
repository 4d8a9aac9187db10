"""The ONNX Runtime custom-op library: the shared CPU kernel against the float64 reference, and bad input."""

from __future__ import annotations

import ctypes
import ctypes.util
import warnings
from pathlib import Path

import numpy as np
import onnx
import pytest
import torch

from poolswap.errors import PoolswapError
from poolswap.ops import soft_pool_reference

from .helpers import geometry_attributes, softpool_model
from .test_function import GEOMETRIES

from poolswap.kernels._toolchain import CSRC_DIR as CSRC  # the installed package's sources (also from a wheel)

ort = pytest.importorskip("onnxruntime")


def _library_session(model: onnx.ModelProto, library) -> "ort.InferenceSession":
    options = ort.SessionOptions()
    options.register_custom_ops_library(str(library))
    return ort.InferenceSession(model.SerializeToString(), options, providers=["CPUExecutionProvider"])


def _reference64(x, kernel, stride, padding, dilation, ceil_mode, beta=1.0, betas=None):
    beta_tensor = None if betas is None else torch.tensor(betas, dtype=torch.float64)
    return soft_pool_reference(
        torch.from_numpy(np.asarray(x, dtype=np.float64)), kernel, stride, padding, dilation, ceil_mode, beta, beta_tensor
    ).numpy()


class TestKernel:
    @pytest.mark.parametrize("geometry", GEOMETRIES, ids=lambda g: f"{len(g[0])}d-{g[1]}-{g[2]}-{g[3]}-{g[4]}-{g[5]}")
    def test_float32_matches_float64_reference(self, ort_library, geometry):
        spatial, kernel, stride, padding, dilation, ceil_mode = geometry
        x = (np.random.default_rng(3).standard_normal((2, 3, *spatial)) * 4).astype(np.float32)
        # No function body: only the library can run this model.
        model = softpool_model(x.shape, geometry_attributes(kernel, stride, padding, dilation, ceil_mode, beta=0.7), body=None)
        y = _library_session(model, ort_library).run(None, {"X": x})[0]
        expected = _reference64(x, kernel, stride, padding, dilation, ceil_mode, beta=0.7)
        assert y.shape == expected.shape
        np.testing.assert_allclose(y, expected, rtol=2e-6, atol=2e-6)

    def test_optional_attributes_default_as_maxpool(self, ort_library):
        x = np.random.default_rng(7).standard_normal((2, 3, 6, 5)).astype(np.float32)
        y = _library_session(softpool_model(x.shape, {"kernel_shape": [2, 3]}, body=None), ort_library).run(None, {"X": x})[0]
        np.testing.assert_allclose(y, _reference64(x, (2, 3), (1, 1), (0, 0), (1, 1), False), rtol=2e-6, atol=2e-6)

    def test_per_channel_betas(self, ort_library):
        x = np.random.default_rng(4).standard_normal((3, 4, 7, 7)).astype(np.float32)
        betas = [0.25, 1.0, 3.0, 20.0]
        attrs = geometry_attributes((3, 3), (2, 2), (1, 1), (1, 1), True, betas=betas)
        y = _library_session(softpool_model(x.shape, attrs, body=None), ort_library).run(None, {"X": x})[0]
        np.testing.assert_allclose(y, _reference64(x, (3, 3), (2, 2), (1, 1), (1, 1), True, betas=betas), rtol=2e-6, atol=2e-6)

    def test_float16(self, ort_library):
        x = np.random.default_rng(5).standard_normal((2, 3, 9, 9)).astype(np.float16)
        attrs = geometry_attributes((3, 3), (2, 2), (1, 1), (1, 1), True)
        model = softpool_model(x.shape, attrs, body=None, elem_type=onnx.TensorProto.FLOAT16)
        y = _library_session(model, ort_library).run(None, {"X": x})[0]
        assert y.dtype == np.float16
        expected = _reference64(x.astype(np.float64), (3, 3), (2, 2), (1, 1), (1, 1), True)
        np.testing.assert_allclose(y.astype(np.float64), expected, rtol=1e-3, atol=1e-3)

    def test_extreme_values(self, ort_library):
        inf, nan = np.inf, np.nan
        x = np.array([[[[nan, 1.0, inf, 1.0, -inf, 2.0, -inf, -inf, 1e30, -1e30],
                         [0.0, 2.0, 3.0, -inf, -inf, 3.0, -inf, -inf, 3e29, 0.0]]]], dtype=np.float32)
        model = softpool_model(x.shape, geometry_attributes((2, 2), (2, 2), (0, 0), (1, 1), False), body=None)
        y = _library_session(model, ort_library).run(None, {"X": x})[0][0, 0, 0]
        assert np.isnan(y[0]) and y[1] == inf and y[3] == -inf and y[4] == pytest.approx(1e30, rel=1e-6)
        np.testing.assert_allclose(y[2], _reference64(x[..., 4:6], (2, 2), (2, 2), (0, 0), (1, 1), False)[0, 0, 0, 0], rtol=1e-6)

    def test_library_wins_over_the_body_and_agrees(self, ort_library):
        x = np.random.default_rng(6).standard_normal((2, 5, 12, 12)).astype(np.float32)
        model = softpool_model(x.shape, geometry_attributes((3, 3), (2, 2), (1, 1), (1, 1), True), body="fast")
        with_library = _library_session(model, ort_library).run(None, {"X": x})[0]
        body = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"]).run(None, {"X": x})[0]
        np.testing.assert_allclose(with_library, body, rtol=1e-5, atol=1e-5)

    def test_bad_attributes_are_reported(self, ort_library):
        x = np.zeros((1, 2, 4, 4), dtype=np.float32)
        attrs = geometry_attributes((3, 3), (2, 2), (1, 1), (1, 1), False, betas=[1.0, 2.0, 3.0])  # 3 betas, 2 channels
        sess = _library_session(softpool_model(x.shape, attrs, body=None), ort_library)
        with pytest.raises(Exception, match="betas holds 3 values but the input has 2 channels"):
            sess.run(None, {"X": x})

    def test_library_info_and_no_onnxruntime_link(self, ort_library):
        info = ctypes.CDLL(str(ort_library)).poolswap_ort_library_info
        info.restype = ctypes.c_char_p
        assert b"ort_api=21" in info()
        with open(ort_library, "rb") as f:
            assert b"libonnxruntime.so" not in f.read()


class TestSession:
    def _exported(self, tmp_path, body="fast"):
        model = softpool_model(["batch", 3, 8, 8], geometry_attributes((2, 2), (2, 2), (0, 0), (1, 1), False), body=body)
        path = tmp_path / "m.onnx"
        onnx.save(model, str(path))
        return path

    def test_session_registers_the_library(self, tmp_path, ort_library):
        from poolswap.deploy import session

        sess = session(self._exported(tmp_path), "cpu", strict=True)
        # The same library, or a newer build of it if the kernel sources changed meanwhile.
        assert sess.poolswap_library is not None and sess.poolswap_library.name.startswith("libpoolswap_ort")
        assert isinstance(sess, ort.InferenceSession)

    def test_missing_library_falls_back_with_a_warning(self, tmp_path, monkeypatch):
        from poolswap.deploy import session

        monkeypatch.setenv("POOLSWAP_ORT_LIBRARY", str(tmp_path / "nowhere.so"))
        path = self._exported(tmp_path)
        with pytest.warns(RuntimeWarning, match="does not exist.*function body"):
            sess = session(path, "cpu")
        assert sess.poolswap_library is None
        y = sess.run(None, {"X": np.ones((2, 3, 8, 8), np.float32)})[0]
        np.testing.assert_allclose(y, 1.0)
        with pytest.raises(PoolswapError, match="does not exist"):
            session(path, "cpu", strict=True)

    def test_wrong_abi_is_a_clear_message(self, tmp_path, monkeypatch):
        from poolswap.deploy import session

        bogus = tmp_path / "libpoolswap_ort_bogus.so"
        bogus.write_bytes(b"\x7fELF" + b"\0" * 60)  # not a loadable shared object for this machine
        monkeypatch.setenv("POOLSWAP_ORT_LIBRARY", str(bogus))
        path = self._exported(tmp_path)
        with pytest.raises(PoolswapError, match="cannot be loaded on this machine"):
            session(path, "cpu", strict=True)
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            session(path, "cpu")
        assert any("falls back" in str(w.message) or "function body" in str(w.message) for w in caught)

    def test_a_foreign_library_is_refused(self, tmp_path, monkeypatch):
        from poolswap.deploy import check_library

        ok, detail = check_library(ctypes.util.find_library("m") or "/lib/x86_64-linux-gnu/libm.so.6")
        assert not ok and ("not poolswap's" in detail or "does not exist" in detail)

    def test_wrong_input_is_one_line_naming_the_input(self, tmp_path):
        from poolswap.deploy import session

        sess = session(self._exported(tmp_path), "cpu", library=False)
        with pytest.raises(PoolswapError) as info:
            sess.run(None, {"X": np.ones((2, 3, 8, 8), np.float64)})
        message = str(info.value)
        assert "\n" not in message and "'X' float32 ['batch', 3, 8, 8]" in message and "float64" in message
        with pytest.raises(PoolswapError, match=r"expects input 'X' float32"):
            sess.run(None, {"X": np.ones((2, 4, 8, 8), np.float32)})

    def test_status(self):
        from poolswap.deploy import ort_library_status

        status = ort_library_status()
        assert set(status) == {"active", "detail"} and isinstance(status["active"], bool)


class TestBuild:
    def test_build_command_uses_the_shared_kernel_and_links_no_ort(self, tmp_path):
        from poolswap.kernels._ort_library import ort_build_command

        command = ort_build_command(tmp_path, tmp_path / "lib.so")
        assert any(part.endswith("csrc/ort/softpool_ort.cpp") for part in command)
        assert f"-I{tmp_path}" in command
        assert not any("onnxruntime" in part and part.startswith("-l") for part in command)
        front_end = next(Path(part) for part in command if part.endswith("csrc/ort/softpool_ort.cpp")).read_text()
        assert '#include "../softpool_cpu_dispatch.h"' in front_end and "ParallelFor" in front_end
        # The shared plane loops, once per ISA, the same files as the PyTorch extension's
        from poolswap.kernels._torch_extension import CPU_SOURCES

        isa_sources = [part for part in command if "/csrc/softpool_cpu_" in part]
        assert [Path(p).name for p in isa_sources] == [s for s in CPU_SOURCES if s.startswith("softpool_cpu_")]
        assert '#include "softpool_cpu.h"' in (CSRC / "softpool_cpu_isa.inc").read_text()
        assert '#include "softpool_kernel.h"' in (CSRC / "softpool_cpu.h").read_text()

    def test_bad_include_dir_is_named(self, tmp_path, monkeypatch):
        from poolswap.kernels._ort_library import find_ort_include_dir

        monkeypatch.setenv("ORT_INCLUDE_DIR", str(tmp_path))
        with pytest.raises(PoolswapError, match="ORT_INCLUDE_DIR=.* holds no onnxruntime_cxx_api.h"):
            find_ort_include_dir()

    def test_cached_build_is_reused(self, ort_library, monkeypatch):
        from poolswap.kernels import build_ort_library

        from poolswap.kernels._prebuilt import prebuilt_file

        monkeypatch.delenv("POOLSWAP_ORT_LIBRARY", raising=False)
        if prebuilt_file("onnxruntime") is not None:
            pytest.skip("an installed wheel's prebuilt library: nothing is built")
        if ort_library != build_ort_library(fetch=False):
            pytest.skip("POOLSWAP_ORT_LIBRARY points elsewhere")
        mtime = ort_library.stat().st_mtime_ns
        assert build_ort_library(fetch=False) == ort_library and ort_library.stat().st_mtime_ns == mtime

    def test_deploy_does_not_import_torch(self):
        import subprocess
        import sys

        code = "import sys, poolswap.deploy as d; d.ort_library_status(); print('torch' in sys.modules)"
        out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
        assert out.strip() == "False"


@pytest.mark.parametrize("threads", [1, 2])
def test_the_cpu_kernel_runs_its_planes_on_ort_intra_op_threads(ort_library, threads):
    """Not a timing test: the library records how many of ORT's threads ran a call's planes.

    The input takes milliseconds on one thread, so a woken worker always finds planes left;
    the most threads seen over a few runs must be exactly the session's intra-op count.
    """
    x = np.random.default_rng(0).standard_normal((8, 64, 64, 64)).astype(np.float32)
    model = softpool_model(x.shape, geometry_attributes((3, 3), (2, 2), (1, 1), (1, 1), False), body=None)
    options = ort.SessionOptions()
    options.intra_op_num_threads = threads
    options.register_custom_ops_library(str(ort_library))
    sess = ort.InferenceSession(model.SerializeToString(), options, providers=["CPUExecutionProvider"])
    counter = ctypes.CDLL(str(ort_library)).poolswap_ort_threads_last_call
    counter.restype = ctypes.c_int64
    seen = []
    for _ in range(3):
        sess.run(None, {"X": x})
        seen.append(counter())
    assert max(seen) == threads, seen
