from __future__ import annotations

from pathlib import Path

import pytest
from storage_contract import StorageContract

from storage import Storage, StorageError, create_storage
from storage.local import LocalStorage


class TestLocalStorage(StorageContract):
    serves_urls = False

    @pytest.fixture
    def storage(self, tmp_path) -> Storage:
        return create_storage(None, {}, local_root=tmp_path / "outputs")

    def read_back(self, storage: Storage, key: str) -> bytes:
        path = storage.local_path(key)
        assert path is not None
        return path.read_bytes()


def test_file_already_in_place_is_kept(tmp_path: Path) -> None:
    storage = LocalStorage(tmp_path)
    path = tmp_path / "job_1.mp4"
    path.write_bytes(b"video")
    stored = storage.put_file(path, "job_1.mp4")
    assert stored.size == 5 and path.read_bytes() == b"video"
    assert storage.local_path("job_1.mp4") == path.resolve()


def test_copy_leaves_no_partial_files_and_delete_prunes_empty_dirs(tmp_path: Path) -> None:
    root = tmp_path / "out"
    storage = LocalStorage(root)
    src = tmp_path / "src.mp4"
    src.write_bytes(b"x" * 1000)
    storage.put_file(src, "jobs/j/video.mp4")
    assert sorted(p.name for p in (root / "jobs" / "j").iterdir()) == ["video.mp4"]
    assert src.exists()  # the source is the caller's to delete
    storage.delete("jobs/j/video.mp4")
    assert list(root.iterdir()) == []
    assert root.is_dir()


def test_unwritable_root_is_reported(tmp_path: Path) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("not a directory")
    with pytest.raises(StorageError, match="cannot create the output directory"):
        LocalStorage(blocker / "sub")
