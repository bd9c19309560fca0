"""Video uploads as background jobs: upload, progress, annotated video + CSV + timeline to download.

Each job lives in its own folder `<jobs dir>/<uuid hex>/` that the server names itself; requests
pick a job by its id (checked to be 32 hex digits and known) and a file by a name from a fixed
list, so nothing a client sends becomes a path. A janitor thread deletes jobs `job_ttl` after
they finish; a user can delete theirs at once.
"""

from __future__ import annotations

import json
import logging
import re
import shutil
import tempfile
import threading
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import BinaryIO

import cv2
from flask import Blueprint, abort, request, send_file, url_for

from ..config import ServeConfig
from ..errors import FerkitError, MediaError
from ..inference.pipeline import Pipeline
from .services import services

# The files a finished job offers, by name in its folder, with their MIME types. WebM (VP8) plays in browsers.
ARTIFACTS = {
    "annotated.webm": "video/webm",
    "annotated.mp4": "video/mp4",
    "frames.csv": "text/csv",
    "timeline.png": "image/png",
    "summary.json": "application/json",
}
VIDEO_SUFFIXES = {".mp4", ".m4v", ".mov", ".avi", ".mkv", ".webm", ".mpg", ".mpeg", ".wmv", ".flv", ".3gp"}
JOB_ID = re.compile(r"[0-9a-f]{32}")
UPLOAD_FIELD = "video"
log = logging.getLogger(__name__)
bp = Blueprint("jobs", __name__, url_prefix="/jobs")


class JobCancelled(Exception):
    """Raised from the progress callback to stop a job that was deleted while running."""


@dataclass
class Job:
    id: str
    folder: Path
    created: float
    state: str = "queued"  # queued -> running -> done | failed
    done_frames: int = 0
    total_frames: int = 0
    finished: float | None = None
    error: str | None = None
    summary: dict | None = None
    cancelled: bool = False
    filename: str | None = None  # as uploaded; only ever shown back, never used as a path
    input_path: Path = field(init=False)

    def artifacts(self) -> list[str]:
        return [name for name in ARTIFACTS if (self.folder / name).is_file()] if self.state == "done" else []

    def to_dict(self, ttl_s: float) -> dict:
        progress = 1.0 if self.state == "done" else self.done_frames / self.total_frames if self.total_frames else 0.0
        expires_in = None if self.finished is None else max(0.0, self.finished + ttl_s - time.time())
        return {"id": self.id, "state": self.state, "progress": round(min(progress, 1.0), 4),
                "done_frames": self.done_frames, "total_frames": self.total_frames, "error": self.error,
                "summary": self.summary, "expires_in_s": None if expires_in is None else round(expires_in),
                "files": {name: url_for("jobs.artifact", job_id=self.id, name=name) for name in self.artifacts()}}


def upload_suffix(filename: str | None, mimetype: str | None) -> str:
    """The uploaded file's suffix if it is a known video type; MediaError otherwise (never a path part)."""
    suffix = Path(filename or "").suffix.lower()
    if suffix in VIDEO_SUFFIXES:
        return suffix
    if (mimetype or "").startswith("video/"):
        return ".video"  # FFmpeg probes the content, not the name
    raise MediaError(f"not a video file (expected one of {', '.join(sorted(VIDEO_SUFFIXES))})")


def count_readable_frames(path: Path) -> int:
    """The video's frame count (estimated from its header); MediaError when no frame decodes."""
    capture = cv2.VideoCapture(str(path))
    try:
        if not capture.isOpened() or not capture.read()[0]:
            raise MediaError("not a readable video: no frame could be decoded")
        return max(1, int(capture.get(cv2.CAP_PROP_FRAME_COUNT) or 0))
    finally:
        capture.release()


class JobManager:
    def __init__(self, pipeline: Pipeline, cfg: ServeConfig):
        self.pipeline, self.ttl_s = pipeline, cfg.job_ttl
        self._own_root = not cfg.jobs_dir  # a folder we made is removed again on close
        self.root = Path(cfg.jobs_dir) if cfg.jobs_dir else Path(tempfile.mkdtemp(prefix="ferkit-jobs-"))
        self.root.mkdir(parents=True, exist_ok=True)
        self._jobs: dict[str, Job] = {}
        self._lock = threading.Lock()
        self._workers = ThreadPoolExecutor(max(1, cfg.job_workers), thread_name_prefix="ferkit-job")
        self._closing = threading.Event()
        self._janitor = threading.Thread(target=self._janitor_loop, name="ferkit-job-janitor", daemon=True)
        self._janitor.start()

    # --- jobs ----------------------------------------------------------------------------------------
    def submit(self, upload: BinaryIO, filename: str | None = None, mimetype: str | None = None) -> Job:
        """Save the upload into a new job folder and queue it; MediaError (and no job) if it is no video."""
        suffix = upload_suffix(filename, mimetype)
        job_id = uuid.uuid4().hex
        job = Job(job_id, self.root / job_id, time.time(), filename=filename)
        job.folder.mkdir()
        job.input_path = job.folder / f"upload{suffix}"
        try:
            with open(job.input_path, "wb") as out:
                shutil.copyfileobj(upload, out)
            job.total_frames = count_readable_frames(job.input_path)
        except BaseException:
            shutil.rmtree(job.folder, ignore_errors=True)
            raise
        with self._lock:
            self._jobs[job.id] = job
        self._workers.submit(self._process, job)
        return job

    def get(self, job_id: str) -> Job | None:
        if not JOB_ID.fullmatch(job_id or ""):
            return None
        with self._lock:
            return self._jobs.get(job_id)

    def delete(self, job_id: str) -> bool:
        with self._lock:
            job = self._jobs.pop(job_id, None) if JOB_ID.fullmatch(job_id or "") else None
        if job is None:
            return False
        job.cancelled = True  # a running job stops at its next frame
        shutil.rmtree(job.folder, ignore_errors=True)
        return True

    def _process(self, job: Job) -> None:
        from ..video.process import process_video
        from ..video.writers import browser_video_format

        if job.cancelled:
            return
        job.state = "running"
        try:
            fourcc, suffix = browser_video_format()
            summary = process_video(self.pipeline, job.input_path, out_video=job.folder / f"annotated{suffix}",
                                    csv_path=job.folder / "frames.csv", timeline_png=job.folder / "timeline.png",
                                    progress_callback=lambda done, total: self._progress(job, done, total),
                                    fourcc=fourcc)
            # The client sees its own file name, never the server's paths.
            summary = {**summary, "input": job.filename}
            summary.pop("outputs", None)
            (job.folder / "summary.json").write_text(json.dumps(summary, indent=2))
            job.summary, job.state = summary, "done"
        except JobCancelled:
            job.state = "failed"
            job.error = "deleted"
        except Exception as exc:  # reported to the user as the job's error, without a traceback
            log.exception("video job %s failed", job.id)
            job.state = "failed"
            job.error = str(exc) if isinstance(exc, FerkitError) else "processing failed"
        finally:
            job.finished = time.time()
            job.input_path.unlink(missing_ok=True)  # the upload is not kept once processed
            if job.cancelled:
                shutil.rmtree(job.folder, ignore_errors=True)

    @staticmethod
    def _progress(job: Job, done: int, total: int) -> None:
        if job.cancelled:
            raise JobCancelled
        job.done_frames = done
        job.total_frames = max(total or 0, done)

    # --- expiry --------------------------------------------------------------------------------------
    def sweep(self, now: float | None = None) -> list[str]:
        """Delete jobs that finished more than job_ttl ago, and job folders an earlier server left; their ids."""
        now = time.time() if now is None else now
        with self._lock:
            expired = [j.id for j in self._jobs.values() if j.finished is not None and now - j.finished > self.ttl_s]
            known = set(self._jobs)
        for job_id in expired:
            self.delete(job_id)
        for folder in self.root.iterdir():
            if JOB_ID.fullmatch(folder.name) and folder.name not in known and now - folder.stat().st_mtime > self.ttl_s:
                shutil.rmtree(folder, ignore_errors=True)
                expired.append(folder.name)
        return expired

    def _janitor_loop(self) -> None:
        interval = min(60.0, max(1.0, self.ttl_s / 4))
        while not self._closing.wait(interval):
            try:
                self.sweep()
            except Exception:  # the janitor must outlive one bad sweep
                log.exception("job janitor")

    def close(self) -> None:
        self._closing.set()
        with self._lock:
            job_ids = list(self._jobs)
        for job_id in job_ids:
            self.delete(job_id)
        self._workers.shutdown(wait=True, cancel_futures=True)
        if self._own_root:
            shutil.rmtree(self.root, ignore_errors=True)

    def __len__(self) -> int:
        return len(self._jobs)


# --- routes ------------------------------------------------------------------------------------------
def manager() -> JobManager:
    return services().jobs


def job_or_404(job_id: str) -> Job:
    job = manager().get(job_id)
    if job is None:
        abort(404, "no such job (unknown, deleted or expired)")
    return job


@bp.post("")
def create():
    upload = request.files.get(UPLOAD_FIELD)
    if upload is None:
        abort(400, f"send the video as the multipart form field {UPLOAD_FIELD!r}")
    job = manager().submit(upload.stream, upload.filename, upload.mimetype)
    body = job.to_dict(manager().ttl_s)
    return body, 202, {"Location": url_for("jobs.status", job_id=job.id)}


@bp.get("/<job_id>")
def status(job_id: str):
    return job_or_404(job_id).to_dict(manager().ttl_s)


@bp.delete("/<job_id>")
def delete(job_id: str):
    if not manager().delete(job_id):
        abort(404, "no such job (unknown, deleted or expired)")
    return {"deleted": job_id}


@bp.get("/<job_id>/<name>")
def artifact(job_id: str, name: str):
    job = job_or_404(job_id)
    if name not in ARTIFACTS or name not in job.artifacts():
        abort(404, f"no file {name!r} for this job (files: {', '.join(job.artifacts()) or 'none yet'})")
    return send_file(job.folder / name, mimetype=ARTIFACTS[name], as_attachment=request.args.get("download") == "1",
                     download_name=f"{job.id[:8]}-{name}", max_age=0)
