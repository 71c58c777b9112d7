"""Chaos fixtures: a small real filesystem (tmpfs, as root) that tests fill up or make read-only.

CI runs as root; elsewhere (or where mounting is not permitted) these tests skip, saying why.
"""

from __future__ import annotations

import errno
import os
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

FS_BYTES = 24 * 2**20


class SmallFs:
    """A mounted tmpfs of FS_BYTES: `fill()` takes every free byte, `free()` gives them back."""

    def __init__(self, root: Path):
        self.root = root
        self.filler = root / "filler.bin"

    def fill(self) -> None:
        """Writes until the filesystem answers ENOSPC (down to single pages), so it is really full."""
        fd = os.open(self.filler, os.O_WRONLY | os.O_CREAT | os.O_APPEND)
        try:
            for chunk in (2**20, 65536, 4096, 512, 1):
                while True:
                    try:
                        os.write(fd, b"\0" * chunk)
                    except OSError as e:
                        assert e.errno == errno.ENOSPC, e
                        break
        finally:
            os.close(fd)

    def free(self) -> None:
        self.filler.unlink(missing_ok=True)

    def remount(self, mode: str) -> None:
        subprocess.run(["mount", "-o", f"remount,{mode}", str(self.root)], check=True, capture_output=True)

    def files(self, folder: str) -> list[str]:
        """Every file under `folder` (relative names), to prove nothing was left behind."""
        base = self.root / folder
        return sorted(str(p.relative_to(base)) for p in base.rglob("*") if p.is_file()) if base.exists() else []


@pytest.fixture
def small_fs(tmp_path) -> Iterator[SmallFs]:
    if os.geteuid() != 0:
        pytest.skip("the chaos tests mount a small tmpfs, which needs root (CI runs as root)")
    root = tmp_path / "fs"
    root.mkdir()
    mounted = subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={FS_BYTES}", "tmpfs", str(root)],
                             capture_output=True, text=True)
    if mounted.returncode != 0:
        pytest.skip(f"mounting a tmpfs is not permitted here: {mounted.stderr.strip()}")
    try:
        yield SmallFs(root)
    finally:
        subprocess.run(["umount", "-l", str(root)], capture_output=True)
