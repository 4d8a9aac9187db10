"""``poolswap doctor``: versions and active kernels, for bug reports."""

from __future__ import annotations

import argparse
import importlib
import json
import platform
import shutil
import subprocess
import sys

NAME = "doctor"
HELP = "print versions and which SoftPool kernels are active (for bug reports)"
ORDER = 90

_PACKAGES = ("torch", "torchvision", "timm", "numpy", "safetensors", "onnx", "onnxscript", "onnxruntime")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--json", action="store_true", help="print a JSON object instead of text")


def _version(name: str) -> str:
    try:
        module = importlib.import_module(name)
    except Exception:  # not installed, or broken: both worth reporting as such
        return "not installed"
    return str(getattr(module, "__version__", "unknown"))


def _tool_version(tool: str, flag: str = "--version") -> str:
    path = shutil.which(tool)
    if not path:
        return "not found"
    try:
        out = subprocess.run([path, flag], capture_output=True, text=True, timeout=20).stdout
    except (OSError, subprocess.SubprocessError):
        return f"{path} (no version)"
    lines = [line.strip() for line in out.splitlines() if line.strip()]
    versioned = [line for line in lines if "release" in line or "version" in line.lower() or ") " in line]
    return (versioned or lines or [path])[0]


def _cpu_isa(cpu_isa) -> str:
    """The fused CPU kernel's instruction set, or the one-line reason a forced one fails."""
    from ...errors import PoolswapError

    try:
        return cpu_isa()
    except PoolswapError as exc:
        return f"error: {exc}"


def collect() -> dict:
    """Everything doctor reports, as a dict."""
    import torch

    from ... import __version__
    from ...kernels import cpu_isa, cpu_parallel_backend, kernel_status

    report = {
        "poolswap": __version__,
        "python": sys.version.split()[0],
        "platform": platform.platform(),
        "packages": {name: _version(name) for name in _PACKAGES},
        "torch_cuda": torch.version.cuda,
        "cuda_available": torch.cuda.is_available(),
        "gpu": torch.cuda.get_device_name(0) if torch.cuda.is_available() else None,
        "compiler": _tool_version("c++"),
        "nvcc": _tool_version("nvcc"),
        "kernels": {k: {"active": v.active, "detail": v.detail} for k, v in kernel_status().items()},
        "cpu_threads": torch.get_num_threads(),
        "cpu_parallel_backend": cpu_parallel_backend(),
        "cpu_isa": _cpu_isa(cpu_isa),
    }
    try:
        import onnxruntime

        report["onnxruntime_providers"] = onnxruntime.get_available_providers()
    except Exception:
        report["onnxruntime_providers"] = []
    from ...deploy import ort_library_status

    report["kernels"]["onnxruntime"] = ort_library_status()
    return report


def run(args: argparse.Namespace) -> int:
    report = collect()
    if args.json:
        print(json.dumps(report, indent=2))
        return 0
    print(f"poolswap      {report['poolswap']}")
    print(f"python        {report['python']}  ({report['platform']})")
    for name, version in report["packages"].items():
        print(f"{name:<13} {version}")
    print(f"torch CUDA    {report['torch_cuda']}  available={report['cuda_available']}  gpu={report['gpu']}")
    print(f"CPU threads   {report['cpu_threads']}  (fused kernel's parallel backend: {report['cpu_parallel_backend']})")
    print(f"CPU ISA       {report['cpu_isa']}  (of baseline/avx2/avx512; POOLSWAP_CPU_ISA forces one)")
    print(f"compiler      {report['compiler']}")
    print(f"nvcc          {report['nvcc']}")
    if report["onnxruntime_providers"]:
        print(f"ORT providers {', '.join(report['onnxruntime_providers'])}")
    print("kernels:")
    for name, info in report["kernels"].items():
        state = "fused" if info["active"] else "reference"
        print(f"  {name:<12} {state:<10} {info['detail']}")
    return 0
