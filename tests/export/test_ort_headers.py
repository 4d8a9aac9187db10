"""The ORT headers a build fetches are the pinned set: a changed or foreign header set stops the build."""

from __future__ import annotations

import shutil

import pytest

from poolswap.errors import PoolswapError
from poolswap.kernels import _ort_library as lib
from poolswap.kernels._toolchain import cache_dir


def _fetched_headers():
    root = cache_dir() / "ort-headers" / "usr" / "include"
    if not (root / "onnxruntime" / lib.HEADER).is_file():
        pytest.skip("no fetched ORT headers in the cache (run `poolswap build`)")
    return root


def test_the_fetched_headers_are_the_pinned_set():
    assert lib.header_tree_digest(_fetched_headers()) == lib.ORT_HEADERS_SHA256


def test_a_changed_header_stops_the_build_in_one_line(tmp_path, monkeypatch):
    copy = tmp_path / "ort-headers" / "usr" / "include"
    shutil.copytree(_fetched_headers(), copy)
    monkeypatch.setenv("POOLSWAP_CACHE", str(tmp_path))
    monkeypatch.delenv("ORT_INCLUDE_DIR", raising=False)
    assert lib.find_ort_include_dir() is not None  # the pinned copy passes
    header = copy / "onnxruntime" / "onnxruntime_c_api.h"
    header.write_text(header.read_text() + "\n// changed\n")
    with pytest.raises(PoolswapError) as caught:
        lib.build_ort_library(fetch=False)
    message = str(caught.value)
    assert "\n" not in message and "fail their checksum" in message and lib.DEBIAN_VERSION in message
    assert not (tmp_path / "ort").exists() or not any((tmp_path / "ort").iterdir())  # nothing built


def test_ort_include_dir_overrides_the_pin(tmp_path, monkeypatch):
    """A builder elsewhere points at their own ORT headers: no checksum applies to them."""
    own = tmp_path / "include"
    shutil.copytree(_fetched_headers() / "onnxruntime", own)
    (own / "onnxruntime_c_api.h").write_text((own / "onnxruntime_c_api.h").read_text() + "\n// theirs\n")
    monkeypatch.setenv("ORT_INCLUDE_DIR", str(own))
    assert lib.find_ort_include_dir() == own
