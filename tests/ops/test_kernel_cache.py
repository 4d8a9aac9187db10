"""The kernel cache: one folder per build command (none shared, none rewritten), and a clear unwritable-cache error."""

from __future__ import annotations

import os

import pytest

from poolswap.cli import main
from poolswap.errors import PoolswapError
from poolswap.kernels import _ort_library, _torch_extension as ext
from poolswap.kernels._toolchain import cache_folder


def _cpu_name() -> str:
    return ext.extension_name("cpu", ext.CPU_SOURCES + ext.CPU_HEADERS, ext.cpu_load_arguments(), ext.CPU_BUILD_ENV)


def test_every_part_of_the_build_command_is_in_the_folder_name(monkeypatch):
    name = _cpu_name()
    assert _cpu_name() == name  # one command, one folder
    monkeypatch.setenv("CXX", "/opt/other/bin/g++")
    assert _cpu_name() != name  # another compiler
    monkeypatch.delenv("CXX")
    assert _cpu_name() == name
    args = ext.cpu_load_arguments()
    args["extra_cflags"] = [*args["extra_cflags"], "-DOTHER"]
    monkeypatch.setattr(ext, "cpu_load_arguments", lambda: args)
    assert _cpu_name() != name  # other flags
    monkeypatch.undo()
    # Another environment with the same torch version: its include and library folders are in the command.
    monkeypatch.setattr(ext.torch, "__file__", "/elsewhere/site-packages/torch/__init__.py")
    assert _cpu_name() != name


def test_the_ort_library_name_keys_its_headers(monkeypatch, tmp_path):
    monkeypatch.delenv("POOLSWAP_ORT_LIBRARY", raising=False)
    monkeypatch.delenv("ORT_INCLUDE_DIR", raising=False)
    default = _ort_library.library_file()
    assert _ort_library.library_file() == default
    monkeypatch.setenv("ORT_INCLUDE_DIR", str(tmp_path / "ort-1.22" / "include"))
    assert _ort_library.library_file() != default


@pytest.mark.skipif(os.environ.get("POOLSWAP_DISABLE_EXTENSION") == "1", reason="extension disabled on purpose")
def test_building_the_same_command_twice_does_not_rebuild():
    first = ext.build_cpu()
    stamp = first.stat().st_mtime_ns
    again = ext.build_cpu()
    assert again == first and again.stat().st_mtime_ns == stamp


def test_an_unwritable_cache_names_the_folder_and_poolswap_cache(monkeypatch, tmp_path, capsys):
    blocker = tmp_path / "a-file"
    blocker.write_text("")
    monkeypatch.setenv("POOLSWAP_CACHE", str(blocker / "cache"))  # below a file: unwritable, even for root
    with pytest.raises(PoolswapError, match="not writable; set POOLSWAP_CACHE"):
        cache_folder("poolswap_cpu_0")
    assert main(["build", "--no-cuda"]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "POOLSWAP_CACHE" in err and "C++20" not in err, err


def test_cuda_keys_do_not_change_once_a_build_sets_cuda_home(monkeypatch):
    """A CUDA build sets CUDA_HOME for torch's builder; the next key computed in that process must not move.

    (An nvcc wrapper on PATH once named the compiler differently before and after, and the
    test suite's second `poolswap build` recompiled the CUDA kernels for a minute.)
    """
    from poolswap.kernels._toolchain import cuda_home, nvcc_path

    monkeypatch.delenv("CUDA_HOME", raising=False)
    monkeypatch.delenv("CUDA_PATH", raising=False)
    nvcc = nvcc_path()
    if nvcc is None:
        pytest.skip("no nvcc here")
    library = _ort_library.library_file()
    monkeypatch.setenv("CUDA_HOME", str(cuda_home(nvcc)))  # what build_cuda does
    assert nvcc_path() == nvcc
    assert _ort_library.library_file() == library


def test_nothing_is_built_for_the_build_machines_cpu_unless_asked(monkeypatch, tmp_path):
    """Portable by default (the ISA is chosen at load time); POOLSWAP_CPU_NATIVE=1 is another build, another key."""
    monkeypatch.delenv("POOLSWAP_CPU_NATIVE", raising=False)
    portable = _cpu_name()
    flags = ext.cpu_load_arguments()["extra_cflags"]
    ort_flags = _ort_library.ort_build_command(tmp_path, tmp_path / "lib.so")
    assert not any(f.startswith(("-march", "-mtune", "-mavx")) for f in [*flags, *ort_flags])
    monkeypatch.setenv("POOLSWAP_CPU_NATIVE", "1")
    assert "-march=native" in ext.cpu_load_arguments()["extra_cflags"]
    assert "-march=native" in _ort_library.ort_build_command(tmp_path, tmp_path / "lib.so")
    assert _cpu_name() != portable
