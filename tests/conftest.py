"""Shared test set-up: hypothesis profiles, the data folder, device selection."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
import torch
from hypothesis import HealthCheck, settings

settings.register_profile(
    "default",
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
    print_blob=True,
)
settings.load_profile("default")

REPO_ROOT = Path(__file__).resolve().parent.parent


def shared_data_dir() -> Path:
    """Real weights and images: $POOLSWAP_SHARED_DATA, else the `shared/data` folder beside the checkout."""
    return Path(os.environ.get("POOLSWAP_SHARED_DATA", REPO_ROOT.parent / "shared" / "data"))


@pytest.fixture(scope="session")
def shared_data() -> Path:
    path = shared_data_dir()
    if not (path / "squeezenet1_0_imagenet.pth").exists():
        pytest.skip(f"shared test data not found at {path} (set POOLSWAP_SHARED_DATA)")
    return path


def pytest_collection_modifyitems(config, items):
    """CUDA tests skip cleanly where there is no GPU."""
    if torch.cuda.is_available():
        return
    skip = pytest.mark.skip(reason="needs a CUDA GPU")
    for item in items:
        if "cuda" in item.keywords:
            item.add_marker(skip)
