"""Fixtures for the API tests: settings in a temporary output directory and a scripted fake renderer."""

from __future__ import annotations

from pathlib import Path

import pytest
from PIL import Image

from tests.support.app import make_settings
from tests.support.fake_renderer import FakeFactory


@pytest.fixture
def factory() -> FakeFactory:
    return FakeFactory()


@pytest.fixture
def settings(tmp_path):
    return make_settings(tmp_path / "out")


@pytest.fixture
def two_faces_png(face_png, tmp_path) -> Path:
    """The astronaut twice, at full size and at 400 px, side by side: two faces the dlib detector finds."""
    out = tmp_path / "two_faces.png"
    with Image.open(face_png) as photo:
        rgb = photo.convert("RGB")
    canvas = Image.new("RGB", (rgb.width + 400, rgb.height), (255, 255, 255))
    canvas.paste(rgb, (0, 0))
    canvas.paste(rgb.resize((400, 400)), (rgb.width, rgb.height - 400))
    canvas.save(out)
    return out
