"""The poolswap-runtime wheel's modules (runtime/setup.py) stand alone: no torch, no module left out."""

from __future__ import annotations

import ast
import subprocess
import sys
import textwrap
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parent.parent


def runtime_modules() -> dict[str, list[str]]:
    tree = ast.parse((REPO_ROOT / "runtime" / "setup.py").read_text())
    for node in tree.body:
        if isinstance(node, ast.AnnAssign) and getattr(node.target, "id", "") == "RUNTIME_MODULES":
            return ast.literal_eval(node.value)
        if isinstance(node, ast.Assign) and getattr(node.targets[0], "id", "") == "RUNTIME_MODULES":
            return ast.literal_eval(node.value)
    raise AssertionError("runtime/setup.py has no RUNTIME_MODULES")


def test_the_runtime_modules_import_without_torch_and_need_no_other_module():
    modules = runtime_modules()
    names = [p if m == "__init__" else f"{p}.{m}" for p, ms in modules.items() for m in ms]
    code = textwrap.dedent(f"""
        import sys
        for blocked in ("torch", "torchvision", "timm", "onnx", "safetensors"):
            sys.modules[blocked] = None          # an import of any of them fails
        import importlib
        for name in {names!r}:
            importlib.import_module(name)
        import poolswap.deploy as deploy
        deploy.predict, deploy.Prediction        # predict's module (top_classes) is in the list
        loaded = sorted(n for n in sys.modules if n.startswith("poolswap"))
        print(" ".join(loaded))
    """)
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=REPO_ROOT, timeout=120)
    assert result.returncode == 0, result.stderr[-2000:]
    outside = set(result.stdout.split()) - set(names)
    assert not outside, f"the runtime modules import {sorted(outside)}, which runtime/setup.py does not ship"
