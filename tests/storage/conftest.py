"""Fixtures of the storage tests: a file to upload."""

from __future__ import annotations

import os
from pathlib import Path

import pytest


@pytest.fixture
def video_file(tmp_path) -> Path:
    """150 kB of random bytes standing in for a rendered MP4 (the backends never look inside)."""
    path = tmp_path / "render.mp4"
    path.write_bytes(os.urandom(150_000))
    return path
