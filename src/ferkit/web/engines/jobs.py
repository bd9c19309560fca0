"""Video uploads as bounded background jobs: upload, progress, annotated video + CSV + timeline.

Each job lives in its own folder `<jobs dir>/<id>/` that the server names itself (the id is 128
random bits as 32 hex digits); callers pick a job by its id (checked and known) and a file by a
name from a fixed list, so nothing a client sends becomes a path. Limits: `job_workers` jobs run
at once and `job_queue` more wait (more are refused with Busy), a video may have at most
`job_max_frames` frames, and the jobs folder at most `jobs_max_mb` MB; a job that passes a limit
or fails in any way (a full disk too) ends as "failed" with a one-line reason and no files.
A janitor thread deletes jobs `job_ttl` seconds after they finish; a user can delete theirs at once.

Nothing is created before the first upload (no folder, no thread), so an app that never serves
leaves nothing behind; a temporary jobs folder is removed on close() or, failing that, at exit.
"""

from __future__ import annotations

import errno
import json
import logging
import os
import re
import secrets
import shutil
import tempfile
import threading
import time
import weakref
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import BinaryIO

import cv2

from ...config import ServeConfig
from ...errors import FerkitError, MediaError
from ...files import VIDEO_SUFFIXES
from ...inference.pipeline import Pipeline
from .limits import Busy

# The files a finished job offers, by name in its folder, with their MIME types. WebM (VP8) plays in browsers.
ARTIFACTS = {
    "annotated.webm": "video/webm",
    "annotated.mp4": "video/mp4",
    "frames.csv": "text/csv",
    "timeline.png": "image/png",
    "summary.json": "application/json",
}
JOB_ID = re.compile(r"[0-9a-f]{32}")
DISK_CHECK_EVERY = 25  # frames between two looks at the jobs folder's size while a job runs
COPY_CHUNK = 2**20
log = logging.getLogger(__name__)


class JobTooLarge(FerkitError):
    """The video passes a job limit (frames or disk); the web app answers 413."""


class JobCancelled(Exception):
    """Raised from the progress callback to stop a job that was deleted while running."""


class JobStopped(Exception):
    """Raised from the progress callback to stop a job that passed a limit; the message says which."""


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
    input_path: Path | None = field(default=None)
    pipeline: Pipeline | None = field(default=None, repr=False)  # the manager's, or one the upload asked for

    @property
    def active(self) -> bool:
        return self.state in ("queued", "running")

    def artifacts(self) -> list[str]:
        return [name for name in ARTIFACTS if (self.folder / name).is_file()] if self.state == "done" else []

    def to_dict(self, ttl_s: float) -> dict:
        """The job's state for clients (no server paths); `files` is filled in by the web layer."""
        progress = 1.0 if self.state == "done" else self.done_frames / self.total_frames if self.total_frames else 0.0
        expires_in = None if self.finished is None else max(0.0, self.finished + ttl_s - time.time())
        return {"id": self.id, "state": self.state, "progress": round(min(progress, 1.0), 4),
                "done_frames": self.done_frames, "total_frames": self.total_frames,
                "uniform_prior": bool(self.pipeline and self.pipeline.cfg.uniform_prior), "error": self.error,
                "summary": self.summary, "expires_in_s": None if expires_in is None else round(expires_in)}


def upload_suffix(filename: str | None, mimetype: str | None) -> str:
    """The uploaded file's suffix if it is a known video type; MediaError otherwise (never a path part)."""
    suffix = Path(filename or "").suffix.lower()
    if suffix in VIDEO_SUFFIXES:
        return suffix
    if (mimetype or "").startswith("video/"):
        return ".video"  # FFmpeg probes the content, not the name
    raise MediaError(f"not a video file (expected one of {', '.join(sorted(VIDEO_SUFFIXES))})")


def refuse_images(path: Path) -> None:
    """MediaError for a photo, whatever its name or type says: FFmpeg would open it as a one-frame
    video, and the job would fail later (VideoSource refuses images)."""
    if cv2.haveImageReader(str(path)):
        raise MediaError("not a video: the upload is an image (photos go to /api/predict)")


def count_readable_frames(path: Path) -> int:
    """The video's frame count (estimated from its header); MediaError when no frame decodes."""
    capture = cv2.VideoCapture(str(path))
    try:
        if not capture.isOpened() or not capture.read()[0]:
            raise MediaError("not a readable video: no frame could be decoded")
        return max(1, int(capture.get(cv2.CAP_PROP_FRAME_COUNT) or 0))
    finally:
        capture.release()


def folder_bytes(folder: Path) -> int:
    """Bytes in the files under `folder` (jobs folders are two levels deep); files vanishing meanwhile count 0."""
    total = 0
    for dirpath, _, filenames in os.walk(folder):
        for name in filenames:
            try:
                total += os.stat(os.path.join(dirpath, name)).st_size
            except OSError:
                pass
    return total


def is_disk_full(exc: BaseException) -> bool:
    while exc is not None:
        if isinstance(exc, OSError) and exc.errno in (errno.ENOSPC, errno.EDQUOT):
            return True
        if "No space left on device" in str(exc):  # files.atomic_output words it as a MediaError
            return True
        exc = exc.__cause__ or exc.__context__
    return False


def upload_size(upload: BinaryIO) -> int | None:
    try:
        position = upload.tell()
        size = upload.seek(0, os.SEEK_END) - position
        upload.seek(position)
        return size
    except (AttributeError, OSError, ValueError):
        return None


TEMP_PREFIX = "ferkit-jobs-"


def remove_abandoned_roots(folder: Path, min_age_s: float, now: float | None = None) -> list[str]:
    """Delete the temporary jobs folders of servers that died without cleaning up (kill -9, a crash):
    named for a pid that no longer runs here, and untouched for `min_age_s` (a live server in another pid
    namespace sharing this folder keeps its jobs); their names."""
    now = time.time() if now is None else now
    removed = []
    for root in folder.glob(f"{TEMP_PREFIX}*"):
        match = re.fullmatch(rf"{TEMP_PREFIX}(\d+)-.+", root.name)
        if not match or not root.is_dir() or root.is_symlink() or pid_alive(int(match[1])):
            continue
        try:
            if now - root.stat().st_mtime <= min_age_s or root.stat().st_uid != os.getuid():
                continue
        except OSError:
            continue
        shutil.rmtree(root, ignore_errors=True)
        removed.append(root.name)
    return removed


def pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except PermissionError:  # alive, another user's
        return True
    except (ProcessLookupError, OverflowError):  # gone, or no pid at all
        return False
    return True


class JobManager:
    def __init__(self, pipeline: Pipeline, cfg: ServeConfig):
        self.pipeline, self.ttl_s = pipeline, cfg.job_ttl
        self.max_running, self.max_waiting = max(1, cfg.job_workers), max(0, cfg.job_queue)
        self.max_frames, self.max_bytes = cfg.job_max_frames, cfg.jobs_max_mb * 2**20
        self._jobs_dir = Path(cfg.jobs_dir) if cfg.jobs_dir else None
        self._root: Path | None = None
        self._jobs: dict[str, Job] = {}
        self._lock = threading.Lock()
        self._workers: ThreadPoolExecutor | None = None
        self._janitor: threading.Thread | None = None
        self._closing = threading.Event()
        self._remove_root = None  # weakref.finalize of a temporary root: removed at close or exit

    # --- the folder and the threads, made at the first upload ------------------------------------------
    @property
    def root(self) -> Path:
        with self._lock:
            return self._started_root()

    def _started_root(self) -> Path:
        """The jobs folder, with the worker pool and the janitor; made on first use (lock held)."""
        if self._root is None:
            if self._jobs_dir is None:
                remove_abandoned_roots(Path(tempfile.gettempdir()), self.ttl_s)
                # the owner's pid in the name: a server killed with -9 leaves its folder, and the next one
                # can tell it is abandoned (uploads are never kept)
                self._root = Path(tempfile.mkdtemp(prefix=f"{TEMP_PREFIX}{os.getpid()}-"))
                self._remove_root = weakref.finalize(self, shutil.rmtree, str(self._root), True)
            else:
                self._jobs_dir.mkdir(parents=True, exist_ok=True)
                self._root = self._jobs_dir
        if self._workers is None and not self._closing.is_set():
            self._workers = ThreadPoolExecutor(self.max_running, thread_name_prefix="ferkit-job")
            self._janitor = threading.Thread(target=self._janitor_loop, name="ferkit-job-janitor", daemon=True)
            self._janitor.start()
        return self._root

    # --- jobs ----------------------------------------------------------------------------------------
    def submit(self, upload: BinaryIO, filename: str | None = None, mimetype: str | None = None,
               pipeline: Pipeline | None = None) -> Job:
        """Save the upload into a new job folder and queue it, for `pipeline` (default: the manager's).
        Refuses, leaving nothing behind: MediaError if it is no video (an image, or no frame decodes),
        JobTooLarge past a limit, Busy when the queue or disk is full."""
        suffix = upload_suffix(filename, mimetype)
        size = upload_size(upload)  # None: a stream of unknown length (chunked)
        with self._lock:
            if self._closing.is_set():
                raise Busy("the server is shutting down", status=503, retry_after=5)
            active = sum(job.active for job in self._jobs.values())
            if active >= self.max_running + self.max_waiting:
                jobs = "1 video job is" if active == 1 else f"{active} video jobs are"
                raise Busy(f"{jobs} already queued or running, the most this server takes; "
                           "retry when one has finished", status=429, retry_after=30)
            root = self._started_root()
            self._refuse_if_full(root, size or 0)
            job_id = secrets.token_hex(16)
            job = Job(job_id, root / job_id, time.time(), filename=filename, pipeline=pipeline or self.pipeline)
            self._jobs[job_id] = job  # holds its place in the queue while the upload is saved
        try:
            job.folder.mkdir()
            job.input_path = job.folder / f"upload{suffix}"
            self._save(upload, job.input_path)
            if size is None:  # measured now that it is saved, so that it is refused here, not failed later
                self._refuse_if_full(root)
            refuse_images(job.input_path)
            job.total_frames = count_readable_frames(job.input_path)
            if job.total_frames > self.max_frames:
                raise JobTooLarge(f"the video has {job.total_frames} frames; this server takes at most "
                                  f"{self.max_frames} per job")
            self._workers.submit(self._process, job)
        except BaseException:
            with self._lock:
                self._jobs.pop(job_id, None)
            shutil.rmtree(job.folder, ignore_errors=True)
            raise
        return job

    def _refuse_if_full(self, root: Path, adding: int = 0) -> None:
        if folder_bytes(root) + adding > self.max_bytes:
            raise Busy(f"the jobs folder is at its limit of {self.max_bytes // 2**20} MB; retry when older "
                       "results have expired or been deleted", status=503, retry_after=60)

    @staticmethod
    def _save(upload: BinaryIO, path: Path) -> None:
        try:
            with open(path, "wb") as out:
                shutil.copyfileobj(upload, out, COPY_CHUNK)
        except OSError as exc:
            if is_disk_full(exc):
                raise Busy("the server's disk is full; retry later", status=503, retry_after=60) from None
            raise

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
        job.cancelled = True  # a running job stops at its next frame and removes what it wrote
        shutil.rmtree(job.folder, ignore_errors=True)
        return True

    def _process(self, job: Job) -> None:
        from ...video.process import process_video
        from ...video.writers import browser_video_format

        if job.cancelled or self._closing.is_set():
            return
        job.state = "running"
        state, error, summary = "failed", "processing failed", None
        try:
            fourcc, suffix = browser_video_format()
            summary = process_video(job.pipeline, job.input_path, out_video=job.folder / f"annotated{suffix}",
                                    csv_path=job.folder / "frames.csv", timeline_png=job.folder / "timeline.png",
                                    progress_callback=lambda done, total: self._progress(job, done, total),
                                    fourcc=fourcc)
            # The client sees its own file name, never the server's paths.
            summary = {**summary, "input": job.filename}
            summary.pop("outputs", None)
            (job.folder / "summary.json").write_text(json.dumps(summary, indent=2))
            state, error = "done", None
        except JobStopped as exc:
            error = str(exc)
        except Exception as exc:  # reported to the user as the job's error, without a traceback
            if job.cancelled or isinstance(exc, JobCancelled):  # deleted, perhaps while its files were removed
                error = "deleted"
            else:
                error = self._reason(job, exc)
                log.warning("video job %s failed: %s", job.id, exc,
                            exc_info=not isinstance(exc, (FerkitError, OSError)))
        finally:
            # Clean up first, publish the outcome last: a client that sees "failed" finds nothing left
            # on disk, and one that sees "done" no longer has its upload on the server.
            if job.input_path is not None:
                job.input_path.unlink(missing_ok=True)  # the upload is not kept once processed
            if state != "done" or job.cancelled:  # nothing partial stays behind
                shutil.rmtree(job.folder, ignore_errors=True)
            job.summary, job.error = (summary if state == "done" else None), error
            job.finished = time.time()
            job.state = state

    def _reason(self, job: Job, exc: Exception) -> str:
        if is_disk_full(exc):
            return "the server's disk is full; the job was stopped and its files removed"
        if isinstance(exc, FerkitError):  # a clear message, minus the server's own paths and names
            # the upload by the name the client sent (the server's own name for it means nothing to them)
            shown = repr(job.filename) if job.filename else "the video"
            message = str(exc).replace(str(job.input_path), shown) if job.input_path else str(exc)
            return message.replace(str(job.folder) + os.sep, "").replace(str(job.folder), "the job folder")
        return "processing failed"

    def _progress(self, job: Job, done: int, total: int) -> None:
        if job.cancelled or self._closing.is_set():
            raise JobCancelled
        job.done_frames = done
        job.total_frames = max(total or 0, done)
        if done > self.max_frames:  # the header may have under-counted
            raise JobStopped(f"the video has more than {self.max_frames} frames, the most this server "
                             "takes per job; the job was stopped and its files removed")
        if done % DISK_CHECK_EVERY == 0 and folder_bytes(job.folder.parent) > self.max_bytes:
            raise JobStopped(f"the jobs folder reached its limit of {self.max_bytes // 2**20} MB; "
                             "the job was stopped and its files removed")

    # --- expiry --------------------------------------------------------------------------------------
    def sweep(self, now: float | None = None) -> list[str]:
        """Delete jobs that finished more than job_ttl ago, and job folders an earlier server left; their ids."""
        now = time.time() if now is None else now
        with self._lock:
            expired = [j.id for j in self._jobs.values() if j.finished is not None and now - j.finished > self.ttl_s]
            known = set(self._jobs)
            root = self._root
        for job_id in expired:
            self.delete(job_id)
        orphans = []
        if root is not None and root.is_dir():
            for folder in root.iterdir():
                if folder.is_dir() and JOB_ID.fullmatch(folder.name) and folder.name not in known:
                    if now - folder.stat().st_mtime > self.ttl_s:
                        shutil.rmtree(folder, ignore_errors=True)
                        orphans.append(folder.name)
        return expired + orphans

    def _janitor_loop(self) -> None:
        interval = min(60.0, max(1.0, self.ttl_s / 4))
        while not self._closing.wait(interval):
            try:
                self.sweep()
            except Exception:  # the janitor must outlive one bad sweep
                log.exception("job janitor")

    def close(self) -> None:
        """Stop running jobs, delete every job's files, and end the threads (waits for them)."""
        self._closing.set()
        with self._lock:
            job_ids = list(self._jobs)
            workers, janitor = self._workers, self._janitor
        for job_id in job_ids:
            self.delete(job_id)
        if workers is not None:
            workers.shutdown(wait=True, cancel_futures=True)
        if janitor is not None:
            janitor.join(timeout=5)
        if self._remove_root is not None:
            self._remove_root()  # the temporary folder we made

    def __len__(self) -> int:
        return len(self._jobs)
