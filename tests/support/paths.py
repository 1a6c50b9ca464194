"""Where the repository and the optional shared data sets are."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
# Real public data sets and vendor specs live beside the checkout (see README, "Tests"). They are
# optional: tests that use them skip when the folder is absent, as on a fresh clone.
SHARED = Path(os.environ.get("SHARED_DIR", REPO.parent / "shared")).resolve()
SHARED_DATA = SHARED / "data"
INFLUXDB3_SPEC = SHARED / "specs" / "influxdb3-core-openapi.yaml"


def shared_file(relative: str) -> Path:
    """The path of a shared data file, or skip the calling test when it is not there."""
    path = SHARED_DATA / relative
    if not path.is_file():
        pytest.skip(f"shared data set {relative} not found under {SHARED_DATA} (set SHARED_DIR)")
    return path
