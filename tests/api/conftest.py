"""Fixtures for the API tests: settings in a temporary output directory and a scripted fake renderer."""

from __future__ import annotations

import pytest

from tests.support.app import make_settings
from tests.support.fake_renderer import FakeFactory


@pytest.fixture
def factory() -> FakeFactory:
    return FakeFactory()


@pytest.fixture
def settings(tmp_path):
    return make_settings(tmp_path / "out")
