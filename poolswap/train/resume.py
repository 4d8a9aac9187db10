"""The resume state of a run: everything but the code needed to continue it bit for bit.

One file, ``resume.pt``, written atomically every ``checkpoint_every`` steps and
at each epoch end: the student's state_dict, optimiser, scheduler, AMP scaler,
the RNG states (torch, CUDA, numpy, Python) and the position (epoch, step in the
epoch), plus the history behind ``summary.csv``. Plain containers and tensors
only, read back with ``torch.load(weights_only=True)``.
"""

from __future__ import annotations

import os
import random
from pathlib import Path
from typing import Any

import numpy as np
import torch

from .._atomic import atomic_path
from ..model.safe_load import unreadable_reason
from ..errors import PoolswapError

__all__ = ["RESUME_FILE", "FORMAT", "get_rng_state", "set_rng_state", "save_resume_state", "load_resume_state"]

RESUME_FILE = "resume.pt"
FORMAT = "poolswap-resume/1"


def get_rng_state() -> dict:
    """Every RNG a training step may draw from, as tensors and plain containers."""
    np_state = np.random.get_state()
    py_state = random.getstate()
    return {
        "torch": torch.get_rng_state(),
        "cuda": list(torch.cuda.get_rng_state_all()) if torch.cuda.is_available() else [],
        "numpy": {
            "kind": str(np_state[0]),
            "keys": torch.from_numpy(np.asarray(np_state[1], dtype=np.int64)),
            "pos": int(np_state[2]),
            "has_gauss": int(np_state[3]),
            "cached_gaussian": float(np_state[4]),
        },
        "python": {"version": py_state[0], "state": list(py_state[1]), "gauss": py_state[2]},
    }


def set_rng_state(state: dict) -> None:
    """Restore what :func:`get_rng_state` returned."""
    torch.set_rng_state(state["torch"])
    if state.get("cuda") and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])
    n = state["numpy"]
    np.random.set_state((n["kind"], n["keys"].numpy().astype(np.uint32), n["pos"], n["has_gauss"], n["cached_gaussian"]))
    p = state["python"]
    random.setstate((p["version"], tuple(p["state"]), p["gauss"]))


def save_resume_state(path: os.PathLike, state: dict[str, Any]) -> None:
    """Write the resume state atomically: a kill mid-write leaves the previous file intact."""
    with atomic_path(path) as tmp:
        torch.save({"format": FORMAT, **state}, tmp)


def load_resume_state(path: os.PathLike) -> dict[str, Any]:
    """Read a resume state; a missing, corrupt or foreign file is a one-line :class:`PoolswapError`."""
    path = Path(path)
    if not path.is_file():
        raise PoolswapError(f"{path.parent} holds no resume state ({path.name} is missing); start a new run instead")
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:
        raise PoolswapError(f"{path} is not a readable resume state ({unreadable_reason(exc)})") from None
    if not isinstance(state, dict) or state.get("format") != FORMAT:
        raise PoolswapError(f"{path} is not a poolswap resume state")
    return state
