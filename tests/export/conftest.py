"""Fixtures of the export tests."""

from __future__ import annotations

import pytest


@pytest.fixture(scope="session")
def ort_library():
    """The compiled ORT library (built here when headers are at hand); skips when it cannot be had."""
    from poolswap.deploy import check_library, ort_library_path

    path = ort_library_path()
    ok, detail = check_library(path)
    if not ok:
        pytest.skip(f"poolswap's ORT library is not available: {detail}")
    return path
