"""Stand-in checkpoint directories shared by the model tests (and the pipeline's).

`small_checkpoints`: narrow networks (each Dims.small()), official names and containers, 256 px, both
mapping files; loads and renders in well under a second per frame. `full_checkpoints`: the official
shapes (about 800 MB written once per session), for the few full-size tests marked slow.
Neither holds face-model files, so face detection falls back to dlib.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from sadtalker.standin import write_standins


@pytest.fixture(scope="session")
def small_checkpoints(tmp_path_factory, reference_dir) -> Path:
    return write_standins(tmp_path_factory.mktemp("small_checkpoints"), reference_dir, small=True)


@pytest.fixture(scope="session")
def full_checkpoints(tmp_path_factory, reference_dir) -> Path:
    return write_standins(tmp_path_factory.mktemp("full_checkpoints"), reference_dir, small=False)
