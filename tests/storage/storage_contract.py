"""The contract every storage backend passes: subclass `StorageContract` and provide the fixtures
`storage` (a fresh backend) and the method `read_back(storage, key) -> bytes` (download the stored bytes the way a
client would)."""

from __future__ import annotations

from pathlib import Path

import pytest

from storage import Storage, StorageError, StoredObject


class StorageContract:
    serves_urls = True  # False for the local backend (the API serves its files)

    def read_back(self, storage: Storage, key: str) -> bytes:
        raise NotImplementedError

    def test_put_then_read_back(self, storage: Storage, video_file: Path) -> None:
        stored = storage.put_file(video_file, "jobs/job_1/video.mp4")
        assert isinstance(stored, StoredObject)
        assert (stored.key, stored.size) == ("jobs/job_1/video.mp4", video_file.stat().st_size)
        assert storage.exists("jobs/job_1/video.mp4")
        assert self.read_back(storage, "jobs/job_1/video.mp4") == video_file.read_bytes()

    def test_url_is_given_by_remote_backends_only(self, storage: Storage, video_file: Path) -> None:
        stored = storage.put_file(video_file, "a.mp4")
        url = storage.url("a.mp4", expires_s=120)
        if self.serves_urls:
            assert isinstance(url, str) and url.startswith("http")
            assert isinstance(stored.url, str)
        else:
            assert url is None and stored.url is None

    def test_overwrite_replaces_content(self, storage: Storage, video_file: Path, tmp_path: Path) -> None:
        storage.put_file(video_file, "same.mp4")
        other = tmp_path / "other.mp4"
        other.write_bytes(b"second version")
        stored = storage.put_file(other, "same.mp4")
        assert stored.size == len(b"second version")
        assert self.read_back(storage, "same.mp4") == b"second version"

    def test_check_passes_on_a_usable_store(self, storage: Storage) -> None:
        storage.check()  # what /readyz runs

    def test_missing_object_does_not_exist(self, storage: Storage) -> None:
        assert storage.exists("never/stored.mp4") is False

    def test_delete_removes_and_is_idempotent(self, storage: Storage, video_file: Path) -> None:
        storage.put_file(video_file, "jobs/job_2/video.mp4")
        storage.delete("jobs/job_2/video.mp4")
        assert not storage.exists("jobs/job_2/video.mp4")
        storage.delete("jobs/job_2/video.mp4")
        storage.delete("never/stored.mp4")

    def test_delete_leaves_other_objects(self, storage: Storage, video_file: Path) -> None:
        storage.put_file(video_file, "keep.mp4")
        storage.put_file(video_file, "drop.mp4")
        storage.delete("drop.mp4")
        assert storage.exists("keep.mp4")

    @pytest.mark.parametrize("key", ["", "../escape.mp4", "/abs.mp4", "a//b.mp4", "a/./b.mp4", "sp ace.mp4",
                                     "dir/"])
    def test_unsafe_keys_are_refused(self, storage: Storage, video_file: Path, key: str) -> None:
        with pytest.raises(StorageError, match="invalid storage key"):
            storage.put_file(video_file, key)
        with pytest.raises(StorageError, match="invalid storage key"):
            storage.exists(key)
        with pytest.raises(StorageError, match="invalid storage key"):
            storage.delete(key)

    def test_missing_source_file_is_a_storage_error(self, storage: Storage, tmp_path: Path) -> None:
        with pytest.raises(StorageError) as info:
            storage.put_file(tmp_path / "nope.mp4", "x.mp4")
        assert info.value.code == "storage_error"
        assert not storage.exists("x.mp4")

    def test_name_is_set(self, storage: Storage) -> None:
        assert storage.name in ("local", "s3", "supabase")
