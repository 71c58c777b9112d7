"""The job work folder: inputs, renders, kept videos, outcome slots, and what recovery sweeps from it.

    <work dir>/inputs/<job id>/       uploaded and fetched inputs (removed when the job ends)
    <work dir>/renders/<job id>/      the render's output folder (removed after the run)
    <work dir>/unpublished/<id>.mp4   a rendered video whose upload failed (for retry-upload)
    <work dir>/videos/<id>.mp4        videos kept locally when no storage backend is given
    <work dir>/outcomes/<id>.json     a running job's outcome slot (below)
    <work dir>/preflight/<random>/    a preflight's inputs while it is checked

An outcome slot is a file of OUTCOME_SLOT_BYTES allocated when a job starts. When the job's final state
cannot be saved (database or disk full, read-only), that state is written into the slot in place (no new
space needed), so a restart applies it instead of rendering the job again.
"""

from __future__ import annotations

import json
import logging
import os
import shutil
from pathlib import Path
from typing import Any

log = logging.getLogger(__name__)
OUTCOME_SLOT_BYTES = 8192
SWEPT_FOLDERS = ("inputs", "renders", "preflight")


class WorkDir:
    def __init__(self, root: Path):
        self.root = root

    def input_dir(self, job_id: str) -> Path:
        return self.root / "inputs" / job_id

    def render_dir(self, job_id: str) -> Path:
        return self.root / "renders" / job_id

    def unpublished_path(self, job_id: str) -> Path:
        """Where a rendered MP4 whose upload failed is kept until retry-upload stores it."""
        return self.root / "unpublished" / f"{job_id}.mp4"

    def local_video_path(self, job_id: str) -> Path:
        return self.root / "videos" / f"{job_id}.mp4"

    def slot_path(self, job_id: str) -> Path:
        return self.root / "outcomes" / f"{job_id}.json"

    # --- videos
    def keep_locally(self, job_id: str, video: Path) -> dict[str, Any]:
        """Publishing without a storage backend (blocking): the video moves to videos/<job id>.mp4."""
        dest = self.local_video_path(job_id)
        dest.parent.mkdir(parents=True, exist_ok=True)
        shutil.move(str(video), dest)
        return {"key": str(dest), "url": None, "storage": "local", "bytes": dest.stat().st_size}

    def keep_unpublished(self, job_id: str, video: Path) -> Path | None:
        """Moves a rendered MP4 out of the render folder (removed after the run); where it is, or None."""
        kept = self.unpublished_path(job_id)
        try:
            if video != kept and video.is_file():
                kept.parent.mkdir(parents=True, exist_ok=True)
                shutil.move(str(video), kept)
        except OSError as e:
            log.warning("job %s: the rendered video could not be kept: %s", job_id, e, extra={"job_id": job_id})
        return kept if kept.is_file() else None

    # --- outcome slots
    def open_slot(self, job_id: str) -> None:
        """Allocates the job's outcome slot (raises OSError when the disk is already full)."""
        path = self.slot_path(job_id)
        path.parent.mkdir(parents=True, exist_ok=True)
        with path.open("wb") as out:
            out.write(b" " * OUTCOME_SLOT_BYTES)
            out.flush()
            os.fsync(out.fileno())

    def write_slot(self, job_id: str, outcome: dict[str, Any]) -> bool:
        """Overwrites the slot in place with `outcome`; False when there is no slot or it does not fit."""
        data = json.dumps(outcome).encode()
        path = self.slot_path(job_id)
        if len(data) > OUTCOME_SLOT_BYTES or not path.is_file():
            return False
        try:
            with path.open("r+b") as out:
                out.write(data + b" " * (OUTCOME_SLOT_BYTES - len(data)))
                out.flush()
                os.fsync(out.fileno())
        except OSError as e:
            log.error("job %s: its outcome slot could not be written: %s", job_id, e, extra={"job_id": job_id})
            return False
        return True

    def read_slot(self, job_id: str) -> dict[str, Any] | None:
        """The outcome written into the slot, or None (no slot, or the job never got that far)."""
        try:
            text = self.slot_path(job_id).read_bytes().strip()
            return json.loads(text) if text else None
        except (OSError, ValueError):
            return None

    def close_slot(self, job_id: str) -> None:
        self.slot_path(job_id).unlink(missing_ok=True)

    # --- clean-up
    def remove_job_inputs(self, job_id: str) -> None:
        shutil.rmtree(self.input_dir(job_id), ignore_errors=True)

    def remove_render_dir(self, job_id: str) -> None:
        shutil.rmtree(self.render_dir(job_id), ignore_errors=True)

    def remove_job_files(self, job_id: str, *, rendering: bool) -> None:
        """Deletes the job's inputs, render folder (unless it is rendering), kept video and slot."""
        shutil.rmtree(self.input_dir(job_id), ignore_errors=True)
        if not rendering:
            shutil.rmtree(self.render_dir(job_id), ignore_errors=True)
        self.unpublished_path(job_id).unlink(missing_ok=True)
        self.close_slot(job_id)

    def sweep(self, keep_inputs_of: set[str]) -> list[Path]:
        """At start-up, before any job runs: removes what interrupted work left behind (render folders with
        their `.partial` files, inputs of jobs that were never recorded or have ended, preflight folders,
        half-copied `.part` files of local videos); returns what it removed."""
        removed: list[Path] = []
        for folder in SWEPT_FOLDERS:
            for entry in sorted((self.root / folder).glob("*")):
                if folder == "inputs" and entry.name in keep_inputs_of:
                    continue
                shutil.rmtree(entry, ignore_errors=True) if entry.is_dir() else entry.unlink(missing_ok=True)
                removed.append(entry)
        for partial in (self.root / "videos").glob("**/.*.part"):
            partial.unlink(missing_ok=True)
            removed.append(partial)
        return removed

    def probe(self) -> None:
        """Creates and removes a small file (raises OSError when the folder cannot be written)."""
        self.root.mkdir(parents=True, exist_ok=True)
        probe = self.root / f".probe-{os.getpid()}"
        try:
            with probe.open("wb") as out:
                out.write(b"probe")
        finally:
            probe.unlink(missing_ok=True)
