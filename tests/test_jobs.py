"""JobManager (web/engines/jobs.py) driven directly, without Flask or a model: is_disk_full's errno and
wording cases and the exception chains it follows, _reason's user-facing one-line reasons (exact words,
server paths stripped), delete's id checks and what it removes, sweep's TTL boundaries (exactly job_ttl
is kept, later is removed) for jobs and for folders an earlier server left, and jobs that fail.

process_video is replaced by a scripted stand-in (monkeypatched in ferkit.video.process, which _process
imports at call time), so a job runs in milliseconds and a test decides when it finishes or how it fails.
Times passed to sweep(now=...) are whole seconds so boundaries compare exactly.
"""

from __future__ import annotations

import errno
import io
import json
import logging
import os
import shutil
import tempfile
import threading
import time
from pathlib import Path

import cv2
import numpy as np
import pytest
from conftest import wait_until, write_video

from ferkit.config import ServeConfig
from ferkit.errors import DataError, MediaError
from ferkit.web.engines import jobs as jobs_module
from ferkit.web.engines.jobs import Job, JobManager, JobTooLarge, is_disk_full
from ferkit.web.engines.limits import Busy

DISK_FULL = "the server's disk is full; the job was stopped and its files removed"
TTL = 100
T0 = 1_000_000  # a job's (or orphan folder's) finish time, in whole seconds


@pytest.fixture
def make_manager(tmp_path):
    """Factory: make_manager(**serve_settings) -> a JobManager with no pipeline (process_video is scripted
    in the tests that run jobs) and its jobs folder in tmp_path; closed after the test."""
    managers = []

    def make(**serve):
        serve.setdefault("jobs_dir", str(tmp_path / "jobs"))
        serve.setdefault("job_ttl", TTL)
        serve.setdefault("job_workers", 1)  # settle() relies on one worker
        manager = JobManager(None, ServeConfig(**serve))
        managers.append(manager)
        return manager

    yield make
    for manager in managers:
        manager.close()


@pytest.fixture
def manager(make_manager):
    return make_manager()


@pytest.fixture(scope="module")
def video(tmp_path_factory):
    return write_video(tmp_path_factory.mktemp("jobs-video") / "clip.avi", frames=4, fps=10.0)


class ScriptedProcess:
    """Stands in for process_video: reports progress for `frames` frames, optionally waits at `gate`
    after the first, writes small outputs and returns a summary, or raises `error` instead."""

    def __init__(self, frames: int = 4, error: BaseException | None = None, gate: threading.Event | None = None,
                 pad_bytes: int = 0):
        self.frames, self.error, self.gate, self.pad_bytes = frames, error, gate, pad_bytes
        self.entered = threading.Event()
        self.stopped_by: BaseException | None = None
        self.calls: list[dict] = []  # the arguments of each call, as keywords

    def __call__(self, pipeline, input_path, out_video=None, csv_path=None, timeline_png=None,
                 progress_callback=None, fourcc=None):
        self.calls.append({"pipeline": pipeline, "input_path": input_path, "out_video": out_video,
                           "csv_path": csv_path, "timeline_png": timeline_png, "fourcc": fourcc,
                           "thread": threading.current_thread().name})
        if self.pad_bytes:  # a big output, written before the first frame is reported
            (input_path.parent / "padding.bin").write_bytes(b"\0" * self.pad_bytes)
        try:
            for done in range(1, self.frames + 1):
                progress_callback(done, self.frames)
                if done == 1:
                    self.entered.set()
                    if self.gate is not None:
                        assert self.gate.wait(10)
        except BaseException as exc:
            self.stopped_by = exc
            raise
        if self.error is not None:  # an exception, or a function of the job's folder that makes one
            raise self.error(input_path.parent) if callable(self.error) else self.error
        for path in (out_video, csv_path, timeline_png):
            path.write_bytes(b"x")
        return {"frames": self.frames, "outputs": {"csv": str(csv_path)}}


@pytest.fixture
def scripted(monkeypatch):
    """scripted(**kwargs) -> the ScriptedProcess that jobs now run instead of process_video."""
    import ferkit.video.process

    def install(**kwargs):
        process = ScriptedProcess(**kwargs)
        monkeypatch.setattr(ferkit.video.process, "process_video", process)
        return process

    return install


def submit(manager, video, name="clip.avi"):
    with video.open("rb") as upload:
        return manager.submit(upload, filename=name)


def refusal(manager, video) -> Busy:
    """What a submit is refused with (the test fails if it is taken)."""
    with pytest.raises(Busy) as refused:
        submit(manager, video)
    return refused.value


def settle(manager, job) -> None:
    """Wait until the job's worker has returned (finally block included). The pool has one worker
    (job_workers=1), so a no-op queued now runs after the job's _process is over."""
    manager._workers.submit(lambda: None).result(timeout=30)
    assert job.finished is not None


# --- is_disk_full -------------------------------------------------------------------------------------------------

def chained(outer: BaseException, *, cause=None, context=None) -> BaseException:
    outer.__cause__, outer.__context__ = cause, context
    return outer


@pytest.mark.parametrize("exc, full", [
    (OSError(errno.ENOSPC, "write failed"), True),  # by errno, whatever the words
    (OSError(errno.EDQUOT, "over quota"), True),
    (OSError(errno.EACCES, "permission denied"), False),
    (OSError(errno.EIO, "input/output error"), False),
    (OSError("no errno at all"), False),
    (FileNotFoundError(errno.ENOENT, "gone"), False),
    (MediaError("cannot write frames.csv: [Errno 28] No space left on device"), True),  # by its words
    (MediaError("cannot write frames.csv: no space left on device"), False),  # the exact wording only
    (RuntimeError("No space left on device"), True),
    (ValueError("boom"), False),
    (Exception(), False),
    (KeyboardInterrupt(), False),
])
def test_is_disk_full(exc, full):
    assert is_disk_full(exc) is full


@pytest.mark.parametrize("link", ["cause", "context"])
@pytest.mark.parametrize("inner, full", [
    (OSError(errno.ENOSPC, "write failed"), True),
    (OSError(errno.EDQUOT, "over quota"), True),
    (MediaError("No space left on device"), True),
    (OSError(errno.EACCES, "denied"), False),
])
def test_is_disk_full_follows_the_exception_chain(link, inner, full):
    outer = chained(RuntimeError("writer failed"), **{link: inner})
    assert is_disk_full(outer) is full
    # two levels down, through a cause whose own link is the other kind
    middle = chained(MediaError("cannot finish the video"), **{link: inner})
    assert is_disk_full(chained(RuntimeError("job failed"), cause=middle)) is full
    assert is_disk_full(chained(RuntimeError("job failed"), context=middle)) is full


def test_is_disk_full_prefers_the_cause_and_stops_at_the_chain_end():
    full = OSError(errno.ENOSPC, "write failed")
    assert is_disk_full(chained(RuntimeError("x"), cause=full, context=ValueError("y"))) is True
    assert is_disk_full(chained(RuntimeError("x"), cause=ValueError("y"), context=full)) is False  # cause wins
    assert is_disk_full(chained(RuntimeError("x"), cause=ValueError("y"), context=None)) is False


def test_is_disk_full_with_a_real_raise_from():
    try:
        try:
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
        except OSError as exc:
            raise MediaError("cannot write the video") from exc
    except MediaError as exc:
        assert is_disk_full(exc) is True


# --- _reason: the one line a failed job shows ----------------------------------------------------------------------

@pytest.fixture
def job(tmp_path):
    return Job("ab" * 16, tmp_path / "jobs" / ("ab" * 16), float(T0))


def folder_messages(job):
    folder, sep = str(job.folder), os.sep
    return [
        (MediaError(f"cannot write {folder}{sep}frames.csv"), "cannot write frames.csv"),
        (MediaError(f"cannot create {folder}"), "cannot create the job folder"),
        (MediaError(f"{folder}{sep}a.csv and {folder}{sep}b.png are in {folder}"),
         "a.csv and b.png are in the job folder"),
        (MediaError(f"{folder}: not a folder"), "the job folder: not a folder"),
        (DataError("a plain message"), "a plain message"),
        (JobTooLarge("the video has 9 frames; this server takes at most 3 per job"),
         "the video has 9 frames; this server takes at most 3 per job"),
        (MediaError(f"cannot read {folder}x{sep}y"), f"cannot read the job folderx{sep}y"),  # a sibling's name
    ]


def test_reason_names_the_upload_as_the_client_sent_it(manager, job):
    """Not by the name the server gave it (upload.mp4): the client never sent that name."""
    job.input_path = job.folder / "upload.mp4"
    exc = MediaError(f"{job.input_path}: frame 5 of 30 cannot be read (the file is damaged or truncated)")
    assert manager._reason(job, exc) == "the video: frame 5 of 30 cannot be read (the file is damaged or truncated)"
    job.filename = "holiday clip.mp4"
    assert manager._reason(job, exc) == ("'holiday clip.mp4': frame 5 of 30 cannot be read (the file is damaged "
                                         "or truncated)")


def test_reason_for_ferkit_errors_strips_the_job_folder(manager, job):
    for exc, expected in folder_messages(job):
        assert manager._reason(job, exc) == expected, exc


@pytest.mark.parametrize("exc", [
    OSError(errno.ENOSPC, "write failed"),
    OSError(errno.EDQUOT, "over quota"),
    MediaError("cannot write frames.csv: No space left on device"),
    chained(RuntimeError("writer thread failed"), cause=OSError(errno.ENOSPC, "write failed")),
])
def test_reason_for_a_full_disk(manager, job, exc):
    assert manager._reason(job, exc) == DISK_FULL


@pytest.mark.parametrize("make_exc", [
    lambda folder: RuntimeError(f"boom in {folder}"),
    lambda folder: OSError(errno.EACCES, f"denied: {folder}"),  # an OSError is no FerkitError: no details
    lambda folder: ValueError(),
    lambda folder: KeyError("secret"),
])
def test_reason_for_other_errors_says_nothing_more(manager, job, make_exc):
    assert manager._reason(job, make_exc(job.folder)) == "processing failed"


# --- jobs that fail, end to end (scripted process_video) ------------------------------------------------------------

def run_failing_job(manager, video, scripted, error):
    scripted(error=error)
    job = submit(manager, video)
    settle(manager, job)
    return job


def test_a_job_failing_for_a_full_disk(manager, video, scripted):
    job = run_failing_job(manager, video, scripted, OSError(errno.ENOSPC, "write failed"))
    assert (job.state, job.error, job.summary) == ("failed", DISK_FULL, None)
    assert not job.folder.exists() and job.artifacts() == []


def test_a_job_failing_with_a_ferkit_error_shows_it_without_paths(manager, video, scripted):
    job = run_failing_job(manager, video, scripted,
                          lambda folder: MediaError(f"cannot write {folder}{os.sep}frames.csv (in {folder})"))
    assert (job.state, job.error) == ("failed", "cannot write frames.csv (in the job folder)")
    assert not job.folder.exists()


def test_a_job_failing_otherwise_says_processing_failed(manager, video, scripted):
    job = run_failing_job(manager, video, scripted, RuntimeError("cv2 error at /usr/lib/x.so"))
    assert (job.state, job.error) == ("failed", "processing failed")
    assert not job.folder.exists()


def test_a_job_that_finishes(manager, video, scripted):
    scripted()
    job = submit(manager, video, name="my clip.avi")
    settle(manager, job)
    assert job.state == "done" and job.error is None
    assert job.summary == {"frames": 4, "input": "my clip.avi"}  # no server paths ("outputs") go to the client
    assert job.folder.is_dir() and not job.input_path.exists()  # the upload is not kept
    assert "frames.csv" in job.artifacts() and "summary.json" in job.artifacts()


def test_a_job_publishes_its_outcome_only_after_cleaning_up(manager, video, scripted, monkeypatch):
    """A client polling the job must never see "failed" while its files are still on disk, nor
    "done" while its upload is: both are removed before the state changes."""
    import ferkit.web.engines.jobs as jobs_module

    seen, real_rmtree, real_unlink = [], jobs_module.shutil.rmtree, Path.unlink
    job_of = {}

    def rmtree(path, *args, **kwargs):
        seen.append(("rmtree", job_of["job"].state, job_of["job"].finished))
        return real_rmtree(path, *args, **kwargs)

    def unlink(path, *args, **kwargs):
        if "job" in job_of and path == job_of["job"].input_path:
            seen.append(("unlink", job_of["job"].state, job_of["job"].finished))
        return real_unlink(path, *args, **kwargs)

    monkeypatch.setattr(jobs_module.shutil, "rmtree", rmtree)
    monkeypatch.setattr(Path, "unlink", unlink)
    gate = threading.Event()
    for error, outcome, expected in ((RuntimeError("boom"), "failed", [("unlink", "running", None),
                                                                        ("rmtree", "running", None)]),
                                     (None, "done", [("unlink", "running", None)])):
        seen.clear()
        gate.clear()
        process = scripted(frames=1, gate=gate, error=error)
        job_of["job"] = job = submit(manager, video)
        assert process.entered.wait(30)
        gate.set()
        settle(manager, job)
        assert job.state == outcome and seen == expected


# --- delete ---------------------------------------------------------------------------------------------------------

@pytest.mark.parametrize("job_id", ["0" * 32, "", None, "not-a-job", "../" * 11, "AB" * 16])
def test_delete_of_an_unknown_id_is_false(manager, job_id):
    assert manager.delete(job_id) is False


def test_delete_checks_the_id_before_looking_it_up(manager, tmp_path):
    """Only a well-formed id (32 lowercase hex digits) reaches the table of jobs, even if something
    else were in it: a client's text never selects a folder to remove."""
    folder = tmp_path / "precious"
    folder.mkdir()
    for bad in ("precious", "AB" * 16, ""):
        manager._jobs[bad] = Job(bad, folder, float(T0), state="done", finished=float(T0))
        assert manager.delete(bad) is False
        assert manager._jobs[bad].folder == folder and folder.is_dir()


def test_delete_removes_a_finished_job_and_its_files(manager, video, scripted):
    scripted()
    job = submit(manager, video)
    settle(manager, job)
    assert job.state == "done"
    assert manager.get(job.id) is job and len(manager) == 1
    assert manager.delete(job.id) is True
    assert manager.get(job.id) is None and len(manager) == 0
    assert not job.folder.exists() and job.cancelled is True
    assert manager.delete(job.id) is False  # only once


def test_delete_stops_a_running_job(manager, video, scripted):
    gate = threading.Event()
    process = scripted(frames=6, gate=gate)
    job = submit(manager, video)
    try:
        assert process.entered.wait(30) and job.state == "running"
        assert manager.sweep(now=T0 * 10**6) == []  # a running job never expires
        assert manager.delete(job.id) is True
        assert not job.folder.exists() and manager.get(job.id) is None
    finally:
        gate.set()
    settle(manager, job)
    assert (job.state, job.error) == ("failed", "deleted")
    assert isinstance(process.stopped_by, jobs_module.JobCancelled)
    assert not job.folder.exists()
    assert manager.delete(job.id) is False


# --- sweep ----------------------------------------------------------------------------------------------------------

def test_sweep_before_any_upload_does_nothing(manager, tmp_path):
    assert manager.sweep(now=T0 * 10**6) == []
    assert not (tmp_path / "jobs").exists()  # nothing made


def done_job(manager, video, scripted):
    scripted()
    job = submit(manager, video)
    settle(manager, job)
    assert job.state == "done"
    job.finished = float(T0)
    return job


def test_sweep_keeps_a_job_until_its_ttl_has_passed(manager, video, scripted):
    job = done_job(manager, video, scripted)
    assert manager.sweep(now=T0) == []
    assert manager.sweep(now=T0 + TTL) == []  # exactly job_ttl after: kept
    assert manager.get(job.id) is job and job.folder.is_dir()
    assert manager.sweep(now=T0 + TTL + 1) == [job.id]
    assert manager.get(job.id) is None and not job.folder.exists()
    assert list(manager.root.iterdir()) == []
    assert manager.sweep(now=T0 + TTL + 1) == []


def test_sweep_counts_from_when_a_job_finished(make_manager, video, scripted):
    manager = make_manager(job_ttl=5)
    job = done_job(manager, video, scripted)
    assert manager.sweep(now=T0 + 5) == []
    assert manager.sweep(now=T0 + 6) == [job.id]


def orphan(root, name, mtime):
    folder = root / name
    folder.mkdir()
    (folder / "frames.csv").write_text("x")
    os.utime(folder, (mtime, mtime))
    return folder


def test_sweep_removes_folders_an_earlier_server_left_after_the_ttl(manager):
    root = manager.root
    stale = orphan(root, "0" * 32, T0)
    fresh = orphan(root, "1" * 32, T0 + 50)
    assert manager.sweep(now=T0 + TTL) == []  # exactly job_ttl after its last change: kept
    assert stale.is_dir() and fresh.is_dir()
    assert manager.sweep(now=T0 + TTL + 1) == [stale.name]
    assert not stale.exists() and fresh.is_dir()
    assert manager.sweep(now=T0 + TTL + 50) == []
    assert manager.sweep(now=T0 + TTL + 51) == [fresh.name]
    assert list(root.iterdir()) == []


def test_sweep_leaves_what_is_not_a_job_folder(manager, video, scripted):
    job = done_job(manager, video, scripted)
    job.finished = None  # as if still running: known, not finished
    root = manager.root
    others = [orphan(root, "keep-me", T0), orphan(root, "AB" * 16, T0), orphan(root, "0" * 31, T0)]
    plain_file = root / ("2" * 32)
    plain_file.write_text("not a folder")
    os.utime(plain_file, (T0, T0))
    os.utime(job.folder, (T0, T0))
    assert manager.sweep(now=T0 + 10 * TTL) == []
    assert all(folder.is_dir() for folder in others) and plain_file.is_file()
    assert job.folder.is_dir() and manager.get(job.id) is job  # a known job is not an orphan


def test_sweep_goes_on_when_its_folder_vanished(manager, video, scripted):
    job = done_job(manager, video, scripted)
    shutil.rmtree(manager.root)
    assert manager.sweep(now=T0 + TTL + 1) == [job.id]


def test_sweep_goes_on_when_an_orphan_vanishes_meanwhile(manager, monkeypatch):
    """Two sweeps at once (the janitor's and another) may both find a folder; the second's removal
    finds nothing, which is no error."""
    root = manager.root
    first, second = orphan(root, "0" * 32, T0), orphan(root, "1" * 32, T0)
    real_rmtree = shutil.rmtree

    def removed_by_someone_else_first(path, *args, **kwargs):
        real_rmtree(path, ignore_errors=True)
        return real_rmtree(path, *args, **kwargs)

    monkeypatch.setattr(jobs_module.shutil, "rmtree", removed_by_someone_else_first)
    assert sorted(manager.sweep(now=T0 + TTL + 1)) == [first.name, second.name]
    assert list(root.iterdir()) == []


def test_jobs_folder_of_the_manager_is_made_on_first_use(make_manager, tmp_path):
    manager = make_manager(jobs_dir=str(tmp_path / "a" / "b"))
    assert not (tmp_path / "a").exists()
    assert manager.root == tmp_path / "a" / "b" and manager.root.is_dir()


def test_submit_refuses_a_non_video_and_leaves_nothing(manager):
    with pytest.raises(MediaError):
        manager.submit(io.BytesIO(b"hello"), filename="notes.txt")
    assert len(manager) == 0


# --- limits: frames and disk, at submit and while running ----------------------------------------------------------

def test_submit_refuses_a_video_with_more_frames_than_the_limit(make_manager, video):
    manager = make_manager(job_max_frames=3)
    with pytest.raises(JobTooLarge) as refused:
        submit(manager, video)
    assert str(refused.value) == "the video has 4 frames; this server takes at most 3 per job"
    assert len(manager) == 0 and list(manager.root.iterdir()) == []


def test_a_video_at_the_frame_limit_is_taken(make_manager, video, scripted):
    manager = make_manager(job_max_frames=4)
    scripted(frames=4)
    job = submit(manager, video)
    settle(manager, job)
    assert job.state == "done" and (job.done_frames, job.total_frames) == (4, 4)


def test_a_job_passing_the_frame_limit_while_running_stops(make_manager, video, scripted):
    manager = make_manager(job_max_frames=4)
    scripted(frames=6)  # the header said 4
    job = submit(manager, video)
    settle(manager, job)
    assert (job.state, job.error) == ("failed", "the video has more than 4 frames, the most this server takes per "
                                                "job; the job was stopped and its files removed")
    assert (job.done_frames, job.total_frames) == (5, 6) and not job.folder.exists()


def test_a_job_passing_the_disk_limit_stops_at_its_next_check(make_manager, video, scripted):
    manager = make_manager(jobs_max_mb=1)
    scripted(frames=30, pad_bytes=2**20 + 1)
    job = submit(manager, video)
    settle(manager, job)
    assert (job.state, job.error) == ("failed", "the jobs folder reached its limit of 1 MB; "
                                                "the job was stopped and its files removed")
    assert job.done_frames == jobs_module.DISK_CHECK_EVERY == 25 and not job.folder.exists()


def test_the_disk_is_looked_at_every_25_frames_only(make_manager, video, scripted):
    manager = make_manager(jobs_max_mb=1)
    scripted(frames=24, pad_bytes=2**20 + 1)
    job = submit(manager, video)
    settle(manager, job)
    assert job.state == "done"  # over the limit, but never looked
    refused = refusal(manager, video)  # the next upload is refused: the folder is full
    assert str(refused) == ("the jobs folder is at its limit of 1 MB; retry when older results have expired "
                            "or been deleted")
    assert (refused.status, refused.retry_after) == (503, 60)
    assert len(manager) == 1


def test_a_full_queue_refuses_more_jobs(make_manager, video, scripted):
    manager = make_manager(job_queue=1)
    gate = threading.Event()
    process = scripted(gate=gate)
    try:
        running = submit(manager, video)
        assert process.entered.wait(30)
        waiting = submit(manager, video)
        refused = refusal(manager, video)
        assert str(refused) == ("2 video jobs are already queued or running, the most this server takes; "
                                "retry when one has finished")
        assert (refused.status, refused.retry_after) == (429, 30)
        assert {running.state, waiting.state} == {"running", "queued"} and len(manager) == 2
    finally:
        gate.set()
    settle(manager, waiting)
    assert running.state == waiting.state == "done"


def test_a_job_deleted_while_running_that_then_fails_otherwise_says_deleted(manager, video, scripted):
    """Its files vanish under it, so it may fail with any error before its next frame: still "deleted"."""
    gate = threading.Event()
    process = scripted(frames=1, gate=gate, error=MediaError("cannot write frames.csv: folder is gone"))
    job = submit(manager, video)
    try:
        assert process.entered.wait(30)
        assert manager.delete(job.id) is True
    finally:
        gate.set()
    settle(manager, job)
    assert (job.state, job.error) == ("failed", "deleted") and not job.folder.exists()


# --- pinned details (from surviving mutants): small functions ------------------------------------------------------

def test_a_job_that_is_not_done_offers_no_files(tmp_path):
    folder = tmp_path / ("cd" * 16)
    folder.mkdir()
    (folder / "frames.csv").write_text("x")
    (folder / "summary.json").write_text("{}")
    for state in ("queued", "running", "failed"):
        assert Job("cd" * 16, folder, float(T0), state=state).artifacts() == []
    assert Job("cd" * 16, folder, float(T0), state="done").artifacts() == ["frames.csv", "summary.json"]


NOT_A_VIDEO = ("not a video file (expected one of .3gp, .avi, .flv, .m4v, .mkv, .mov, .mp4, .mpeg, .mpg, .mts, "
               ".ts, .webm, .wmv)")


@pytest.mark.parametrize("filename, mimetype, suffix", [
    ("Clip.MKV", None, ".mkv"),
    ("clip.avi", "text/plain", ".avi"),  # a known name wins over the type
    ("clip.bin", "video/mp4", ".video"),  # an unknown name with a video type
    (None, "video/x-msvideo", ".video"),
    ("clip", "video/webm", ".video"),
])
def test_upload_suffix(filename, mimetype, suffix):
    assert jobs_module.upload_suffix(filename, mimetype) == suffix


@pytest.mark.parametrize("filename, mimetype", [
    ("notes.txt", None), ("clip.bin", "VIDEO/MP4"), ("clip.bin", "application/video/x"), (None, None), ("", ""),
])
def test_upload_suffix_refuses_what_is_no_video(filename, mimetype):
    with pytest.raises(MediaError) as refused:
        jobs_module.upload_suffix(filename, mimetype)
    assert str(refused.value) == NOT_A_VIDEO


class OpenedCapture:
    """A cv2.VideoCapture stand-in that opens, reads `readable` (True/False) and reports `count` frames."""

    def __init__(self, readable: bool, count: float):
        self.readable, self.count, self.released = readable, count, False

    def isOpened(self):
        return True

    def read(self):
        return self.readable, None

    def get(self, prop):
        return self.count

    def release(self):
        self.released = True


def test_count_readable_frames_of_a_real_video(video):
    assert jobs_module.count_readable_frames(video) == 4


@pytest.mark.parametrize("count, frames", [(0.0, 1), (7.0, 7), (1.0, 1)])
def test_count_readable_frames_trusts_the_header_but_counts_at_least_one(monkeypatch, tmp_path, count, frames):
    capture = OpenedCapture(readable=True, count=count)
    monkeypatch.setattr(jobs_module.cv2, "VideoCapture", lambda path: capture)
    assert jobs_module.count_readable_frames(tmp_path / "x.avi") == frames and capture.released


@pytest.mark.parametrize("opens", [True, False])
def test_count_readable_frames_refuses_a_video_whose_first_frame_does_not_decode(monkeypatch, tmp_path, opens):
    capture = OpenedCapture(readable=False, count=9.0)
    capture.isOpened = lambda: opens
    monkeypatch.setattr(jobs_module.cv2, "VideoCapture", lambda path: capture)
    with pytest.raises(MediaError) as refused:
        jobs_module.count_readable_frames(tmp_path / "x.avi")
    assert str(refused.value) == "not a readable video: no frame could be decoded" and capture.released


def test_folder_bytes_adds_every_file_two_levels_down(tmp_path):
    assert jobs_module.folder_bytes(tmp_path) == 0
    (tmp_path / "a").mkdir()
    (tmp_path / "a" / "x.bin").write_bytes(b"123")
    (tmp_path / "a" / "y.bin").write_bytes(b"12345")
    (tmp_path / "top.bin").write_bytes(b"1234567")
    assert jobs_module.folder_bytes(tmp_path) == 15


class Unseekable(io.RawIOBase):
    """A readable stream without tell/seek (like a socket), recording the sizes it was asked for."""

    def __init__(self, data: bytes):
        self.data, self.asked = data, []

    def readable(self):
        return True

    def read(self, size=-1):
        self.asked.append(size)
        chunk, self.data = (self.data, b"") if size < 0 else (self.data[:size], self.data[size:])
        return chunk

    def tell(self):
        raise OSError("unseekable")


def test_upload_size_counts_from_where_the_stream_is():
    upload = io.BytesIO(b"abcdefgh")
    upload.seek(3)
    assert jobs_module.upload_size(upload) == 5
    assert upload.tell() == 3  # put back
    assert jobs_module.upload_size(io.BytesIO(b"")) == 0
    assert jobs_module.upload_size(Unseekable(b"abc")) is None
    assert jobs_module.upload_size(object()) is None


# --- the folder and the threads ----------------------------------------------------------------------------------

def test_a_temporary_jobs_folder_is_made_on_first_use_and_removed_on_close(make_manager):
    manager = make_manager(jobs_dir=None)
    root = manager.root
    assert root.is_dir() and root.parent == Path(tempfile.gettempdir())
    assert root.name.startswith("ferkit-jobs-")
    assert manager._remove_root.alive and manager._remove_root.atexit
    manager.close()
    assert not root.exists() and not manager._remove_root.alive


def test_a_temporary_jobs_folder_already_gone_is_no_error_at_close(make_manager):
    manager = make_manager(jobs_dir=None)
    root = manager.root
    shutil.rmtree(root)
    manager.close()  # nothing to remove, nothing raised
    assert not root.exists()


def test_an_existing_jobs_folder_is_used_as_it_is(make_manager, tmp_path):
    (tmp_path / "jobs").mkdir()
    (tmp_path / "jobs" / "keep.txt").write_text("mine")
    manager = make_manager()
    assert manager.root == tmp_path / "jobs" and manager._remove_root is None
    manager.close()
    assert (tmp_path / "jobs" / "keep.txt").read_text() == "mine"  # not a temporary folder: kept


class ScriptedClosing(threading.Event):
    """The manager's closing event with a scripted wait(): each call records its timeout and answers the next of
    `answers`; when they run out it waits for real (until close() sets it)."""

    def __init__(self, answers=()):
        super().__init__()
        self.answers, self.waits = list(answers), []

    def wait(self, timeout=None):
        self.waits.append(timeout)
        if self.answers:
            return self.answers.pop(0)
        return super().wait(10)


def test_the_threads_are_named_and_the_janitor_is_a_daemon(manager, video, scripted):
    closing = manager._closing = ScriptedClosing()
    process = scripted()
    job = submit(manager, video)
    settle(manager, job)
    assert process.calls[0]["thread"].startswith("ferkit-job_")
    janitor = manager._janitor
    assert (janitor.name, janitor.daemon) == ("ferkit-job-janitor", True)
    assert wait_until(lambda: closing.waits == [25.0], timeout=10)  # the janitor runs _janitor_loop
    assert janitor.is_alive()
    manager.close()
    assert not janitor.is_alive()


@pytest.mark.parametrize("ttl, interval", [(100, 25.0), (1000, 60.0), (240, 60.0), (2, 1.0), (8, 2.0)])
def test_janitor_interval_is_a_quarter_of_the_ttl_between_1_and_60_s(make_manager, monkeypatch, ttl, interval):
    manager = make_manager(job_ttl=ttl)
    closing = manager._closing = ScriptedClosing([False, True])
    sweeps = []
    monkeypatch.setattr(manager, "sweep", lambda: sweeps.append(1) or [])
    manager._janitor_loop()
    assert closing.waits == [interval, interval] and len(sweeps) == 1


def test_janitor_outlives_a_failing_sweep(manager, monkeypatch, caplog):
    manager._closing = ScriptedClosing([False, False, False, True])
    sweeps = []

    def sweep():
        sweeps.append(1)
        if len(sweeps) == 1:
            raise RuntimeError("disk gone")
        return []

    monkeypatch.setattr(manager, "sweep", sweep)
    with caplog.at_level(logging.ERROR, logger=jobs_module.__name__):
        manager._janitor_loop()
    assert len(sweeps) == 3
    assert [(r.getMessage(), r.levelname) for r in caplog.records] == [("job janitor", "ERROR")]
    assert str(caplog.records[0].exc_info[1]) == "disk gone"


# --- submit ------------------------------------------------------------------------------------------------------

def test_submit_names_the_upload_by_its_type(manager, video, scripted):
    scripted()
    before = time.time()
    job = submit(manager, video, name="Holiday.AVI")
    after = time.time()
    settle(manager, job)
    assert job.input_path == job.folder / "upload.avi" and job.filename == "Holiday.AVI"
    assert before <= job.created <= after
    with video.open("rb") as upload:
        typed = manager.submit(upload, filename="blob", mimetype="video/x-msvideo")
    settle(manager, typed)
    assert typed.input_path == typed.folder / "upload.video" and typed.state == "done"


@pytest.mark.parametrize("image", [".png", ".jpg"])
def test_submit_refuses_an_image_whatever_its_name_says(manager, tmp_path, image):
    """FFmpeg would open it as a one-frame video: refused at once, with no server name or CLI advice."""
    photo = tmp_path / f"photo{image}"
    assert cv2.imwrite(str(photo), np.full((60, 80, 3), 200, np.uint8))
    with photo.open("rb") as upload, pytest.raises(MediaError) as refused:
        manager.submit(upload, filename="clip.mp4")
    assert str(refused.value) == "not a video: the upload is an image (photos go to /api/predict)"
    assert len(manager) == 0 and list(manager.root.iterdir()) == []


def test_submit_after_close_is_refused(manager, video):
    manager.close()
    refused = refusal(manager, video)
    assert str(refused) == "the server is shutting down"
    assert (refused.status, refused.retry_after) == (503, 5)
    assert len(manager) == 0


def test_no_queue_means_one_job_at_a_time(make_manager, video, scripted):
    manager = make_manager(job_queue=0)
    gate = threading.Event()
    process = scripted(gate=gate)
    try:
        running = submit(manager, video)
        assert process.entered.wait(30)
        assert str(refusal(manager, video)).startswith("1 video job is already queued or running, the most")
    finally:
        gate.set()
    settle(manager, running)
    assert running.state == "done" and len(manager) == 1


def test_the_upload_counts_against_the_jobs_folder_limit_to_the_byte(make_manager, video, scripted, tmp_path):
    scripted()
    size = video.stat().st_size
    manager = make_manager(jobs_max_mb=1)
    padding = manager.root / "padding.bin"
    padding.write_bytes(b"\0" * (2**20 - size + 1))  # one byte too many with the upload
    assert str(refusal(manager, video)).startswith("the jobs folder is at its limit of 1 MB")
    assert len(manager) == 0 and sorted(p.name for p in manager.root.iterdir()) == ["padding.bin"]
    padding.write_bytes(b"\0" * (2**20 - size))  # exactly at the limit: taken
    job = submit(manager, video)
    settle(manager, job)
    assert job.state == "done"


def test_an_upload_of_unknown_size_is_measured_once_saved(make_manager, video, scripted, tmp_path):
    scripted()
    size = video.stat().st_size
    manager = make_manager(jobs_max_mb=1)
    padding = manager.root / "padding.bin"
    padding.write_bytes(b"\0" * (2**20 - size + 1))  # room for all of the upload but its last byte
    with pytest.raises(Busy) as refused:  # refused before it is queued, not accepted and failed later
        manager.submit(Unseekable(video.read_bytes()), filename="clip.avi")
    refused = refused.value
    assert str(refused).startswith("the jobs folder is at its limit of 1 MB")
    assert (refused.status, refused.retry_after) == (503, 60)
    assert len(manager) == 0 and sorted(p.name for p in manager.root.iterdir()) == ["padding.bin"]
    padding.write_bytes(b"\0" * (2**20 - size))  # exactly at the limit with the upload: taken
    upload = Unseekable(video.read_bytes())
    job = manager.submit(upload, filename="clip.avi")
    settle(manager, job)
    assert job.state == "done"
    assert upload.asked[0] == 2**20  # copied in chunks of COPY_CHUNK


def test_an_upload_removed_while_it_is_saved_is_refused_cleanly(manager, video):
    """close() (or a delete) while the upload is still being saved removes its folder: submit then fails with
    the reason, and neither its own cleanup nor the job table trips over what is already gone."""
    data = video.read_bytes()

    class ClosingUpload(io.BytesIO):
        def read(self, size=-1):
            if self.tell() == 0:
                manager.close()
            return super().read(size)

    with pytest.raises(MediaError) as refused:
        manager.submit(ClosingUpload(data), filename="clip.avi")
    assert str(refused.value) == "not a readable video: no frame could be decoded"
    assert len(manager) == 0 and list(manager.root.iterdir()) == []


def test_a_full_disk_while_saving_the_upload_is_busy(manager):
    class FullDisk(io.BytesIO):
        def read(self, size=-1):
            raise OSError(errno.ENOSPC, "No space left on device")

    with pytest.raises(Busy) as refused:
        manager.submit(FullDisk(b"x" * 10), filename="clip.avi")
    assert str(refused.value) == "the server's disk is full; retry later"
    assert (refused.value.status, refused.value.retry_after) == (503, 60)
    assert refused.value.__cause__ is None and refused.value.__suppress_context__
    assert len(manager) == 0 and list(manager.root.iterdir()) == []


def test_another_os_error_while_saving_the_upload_is_raised_as_it_is(manager):
    class Broken(io.BytesIO):
        def read(self, size=-1):
            raise OSError(errno.EIO, "input/output error")

    with pytest.raises(OSError) as refused:
        manager.submit(Broken(b"x"), filename="clip.avi")
    assert refused.value.errno == errno.EIO and not isinstance(refused.value, Busy)
    assert len(manager) == 0 and list(manager.root.iterdir()) == []


# --- _process: what it passes, writes and logs -------------------------------------------------------------------

def record_futures(manager) -> list:
    """Make the manager's (started) worker pool keep the future of each job it is given."""
    futures, real_submit = [], manager._workers.submit

    def submit_and_keep(fn, *args, **kwargs):
        future = real_submit(fn, *args, **kwargs)
        futures.append(future)
        return future

    manager._workers.submit = submit_and_keep
    return futures


def test_process_passes_the_pipeline_and_the_job_files(make_manager, tmp_path, video, scripted):
    from ferkit.video.writers import browser_video_format

    pipeline = object()
    manager = JobManager(pipeline, ServeConfig(jobs_dir=str(tmp_path / "own"), job_ttl=TTL, job_workers=1))
    try:
        process = scripted(frames=2)
        job = submit(manager, video)
        settle(manager, job)
        fourcc, suffix = browser_video_format()
        call = process.calls[0]
        assert call["pipeline"] is pipeline and call["fourcc"] == fourcc
        assert call["input_path"] == job.folder / "upload.avi"
        assert (call["out_video"], call["csv_path"], call["timeline_png"]) == (
            job.folder / f"annotated{suffix}", job.folder / "frames.csv", job.folder / "timeline.png")
        assert job.artifacts() == [f"annotated{suffix}", "frames.csv", "timeline.png", "summary.json"]
    finally:
        manager.close()


def test_process_writes_the_summary_as_indented_json(manager, video, monkeypatch):
    import ferkit.video.process

    def process_video(pipeline, input_path, out_video=None, csv_path=None, timeline_png=None,
                      progress_callback=None, fourcc=None):
        progress_callback(3, 3)
        csv_path.write_text("frame\n")
        return {"frames": 3, "faces": 2}  # no "outputs" to drop

    monkeypatch.setattr(ferkit.video.process, "process_video", process_video)
    job = submit(manager, video, name="a b.avi")
    settle(manager, job)
    assert job.state == "done" and job.summary == {"frames": 3, "faces": 2, "input": "a b.avi"}
    assert (job.folder / "summary.json").read_text() == json.dumps(
        {"frames": 3, "faces": 2, "input": "a b.avi"}, indent=2)
    assert (job.done_frames, job.total_frames) == (3, 3)


@pytest.mark.parametrize("error, traceback", [(RuntimeError("boom"), True), (MediaError("bad frame"), False),
                                             (OSError(errno.EIO, "io"), False)])
def test_a_failed_job_is_logged_with_a_traceback_only_for_unexpected_errors(manager, video, scripted, caplog,
                                                                           error, traceback):
    with caplog.at_level(logging.WARNING, logger=jobs_module.__name__):
        job = run_failing_job(manager, video, scripted, error)
    records = [r for r in caplog.records if r.name == jobs_module.__name__]
    assert [(r.levelname, r.getMessage()) for r in records] == [("WARNING", f"video job {job.id} failed: {error}")]
    assert (bool(records[0].exc_info) and records[0].exc_info[1] is error) is traceback


def test_a_job_whose_upload_vanished_still_removes_its_folder(manager, video, monkeypatch):
    import ferkit.video.process

    def process_video(pipeline, input_path, progress_callback=None, **outputs):
        input_path.unlink()
        (input_path.parent / "frames.csv").write_text("partial")
        raise RuntimeError("the input went away")

    monkeypatch.setattr(ferkit.video.process, "process_video", process_video)
    manager.root  # start the pool so its futures can be kept
    futures = record_futures(manager)
    job = submit(manager, video)
    assert futures[0].result(timeout=30) is None  # _process itself raised nothing
    assert (job.state, job.error) == ("failed", "processing failed") and not job.folder.exists()


def test_a_job_deleted_while_running_ends_without_an_error_of_its_own(manager, video, scripted):
    gate = threading.Event()
    process = scripted(frames=3, gate=gate)
    manager.root
    futures = record_futures(manager)
    job = submit(manager, video)
    try:
        assert process.entered.wait(30)
        assert manager.delete(job.id) is True  # removes the folder and the upload under it
    finally:
        gate.set()
    assert futures[0].result(timeout=30) is None
    assert (job.state, job.error) == ("failed", "deleted")


def test_a_job_deleted_while_queued_never_runs(manager, video, scripted):
    gate = threading.Event()
    process = scripted(gate=gate)
    try:
        running = submit(manager, video)
        assert process.entered.wait(30)
        queued = submit(manager, video)
        assert manager.delete(queued.id) is True
    finally:
        gate.set()
    settle(manager, running)
    assert len(process.calls) == 1  # only the running one
    assert (queued.state, queued.error, queued.finished) == ("queued", None, None)


# --- _progress ---------------------------------------------------------------------------------------------------

def test_progress_before_any_frame(manager, job):
    manager._progress(job, 0, 0)
    assert (job.done_frames, job.total_frames) == (0, 0)
    manager._progress(job, 3, 0)  # no total from the reader: what was done so far
    assert (job.done_frames, job.total_frames) == (3, 3)


def test_progress_stops_a_job_only_past_the_disk_limit(make_manager, job):
    manager = make_manager(jobs_max_mb=1)
    job.folder.mkdir(parents=True)
    (job.folder / "out.bin").write_bytes(b"\0" * 2**20)  # exactly at the limit: goes on
    manager._progress(job, 25, 40)
    assert (job.done_frames, job.total_frames) == (25, 40)
    (job.folder / "more.bin").write_bytes(b"\0")
    with pytest.raises(jobs_module.JobStopped):
        manager._progress(job, 50, 40)
    assert (job.done_frames, job.total_frames) == (50, 50)


# --- sweep with the real clock, close ----------------------------------------------------------------------------

def test_sweep_without_a_time_uses_the_clock(manager, video, scripted):
    job = done_job(manager, video, scripted)
    job.finished = time.time()
    assert manager.sweep() == []
    job.finished = time.time() - TTL - 5
    assert manager.sweep() == [job.id] and not job.folder.exists()


def test_close_deletes_every_job_and_its_files(manager, video, scripted):
    first = done_job(manager, video, scripted)
    second = done_job(manager, video, scripted)
    manager.close()
    assert len(manager) == 0 and not first.folder.exists() and not second.folder.exists()
    assert first.cancelled and second.cancelled
    assert list(manager.root.iterdir()) == []


def test_close_waits_for_the_running_job_and_cancels_the_queued_ones(make_manager, video, monkeypatch):
    import ferkit.video.process

    manager = make_manager(job_queue=2)
    entered, gate = threading.Event(), threading.Event()

    def process_video(pipeline, input_path, progress_callback=None, **outputs):
        progress_callback(1, 3)
        entered.set()
        assert gate.wait(10)
        time.sleep(0.05)  # still busy when close() lets it go on
        progress_callback(2, 3)  # raises JobCancelled: the manager is closing

    monkeypatch.setattr(ferkit.video.process, "process_video", process_video)
    manager.root
    futures = record_futures(manager)
    real_delete = manager.delete

    def delete_then_release(job_id):  # close() deletes the jobs, then waits for the workers
        result = real_delete(job_id)
        gate.set()
        return result

    monkeypatch.setattr(manager, "delete", delete_then_release)
    running = submit(manager, video)
    assert entered.wait(30)
    queued = [submit(manager, video), submit(manager, video)]
    manager.close()
    assert running.finished is not None and (running.state, running.error) == ("failed", "deleted")
    assert futures[0].done() and not futures[0].cancelled()
    assert [future.cancelled() for future in futures[1:]] == [True, True]
    assert all(job.state == "queued" for job in queued)


# --- Job.to_dict: what clients see (exact keys, rounding, clamping, expiry) -------------------------

def test_job_to_dict_reports_progress_and_expiry_exactly(monkeypatch, tmp_path):
    from types import SimpleNamespace

    monkeypatch.setattr(jobs_module, "time", SimpleNamespace(time=lambda: 1000.0))
    job = jobs_module.Job(id="job_abc", folder=tmp_path, created=990.0, state="running", done_frames=2,
                          total_frames=3, error=None, summary=None)
    assert job.to_dict(ttl_s=60) == {"id": "job_abc", "state": "running", "progress": 0.6667, "done_frames": 2,
                                     "total_frames": 3, "uniform_prior": False, "error": None, "summary": None,
                                     "expires_in_s": None}
    job.done_frames = 7  # the header's count was low: progress stops at 1
    assert job.to_dict(ttl_s=60)["progress"] == 1.0
    job.total_frames = 0  # unknown total
    assert job.to_dict(ttl_s=60)["progress"] == 0.0
    job.state, job.finished, job.summary, job.error = "done", 970.4, {"faces": 5}, "x"
    done = job.to_dict(ttl_s=60)
    assert done["progress"] == 1.0 and done["summary"] == {"faces": 5} and done["error"] == "x"
    assert done["expires_in_s"] == 30  # 970.4 + 60 - 1000 = 30.4, rounded
    assert job.to_dict(ttl_s=20)["expires_in_s"] == 0  # past its time: 0, never negative
    job.state, job.finished = "failed", 999.0
    assert job.to_dict(ttl_s=2.6)["expires_in_s"] == 2  # 1.6, rounded and job.to_dict(ttl_s=2.6)["progress"] == 0.0


def test_the_web_upload_and_batch_take_the_same_video_containers():
    from ferkit.batch.inputs import media_kind

    for name in ("match.ts", "camcorder.MTS", "clip.3gp", "talk.webm"):
        suffix = jobs_module.upload_suffix(name, None)
        assert suffix == name[name.rindex("."):].lower() and media_kind(name) == "video"
    with pytest.raises(MediaError):
        jobs_module.upload_suffix("notes.txt", "text/plain")
    assert media_kind("notes.txt") == "unknown"


def test_a_new_server_removes_the_temporary_jobs_folders_of_dead_servers(tmp_path, monkeypatch):
    """kill -9 leaves a server's temporary jobs folder (uploads included) behind: the next server deletes it
    once its pid is gone and it is older than the job TTL; live servers' folders and young ones stay."""
    import os
    import time

    from ferkit.web.engines import jobs as jobs_module

    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))
    dead = 2**22 + 7  # above Linux's largest pid: never alive
    old = time.time() - 7200

    def leave(name: str, age: float) -> Path:
        root = tmp_path / name
        (root / ("a" * 32)).mkdir(parents=True)
        (root / ("a" * 32) / "upload.mp4").write_bytes(b"someone's video")
        os.utime(root, (age, age))
        return root

    leave(f"ferkit-jobs-{dead}-abandoned", old)
    leave(f"ferkit-jobs-{dead}-young", time.time())
    leave(f"ferkit-jobs-{os.getpid()}-alive", old)
    leave("ferkit-jobs-nopid", old)  # an older server's name: no owner to check, left alone
    (tmp_path / "other-folder").mkdir()
    manager = JobManager(None, ServeConfig(job_ttl=3600))
    try:
        mine = manager.root
        assert mine.parent == tmp_path and mine.name.startswith(f"ferkit-jobs-{os.getpid()}-")
        assert sorted(p.name for p in tmp_path.iterdir()) == sorted([
            f"ferkit-jobs-{dead}-young", f"ferkit-jobs-{os.getpid()}-alive", "ferkit-jobs-nopid", "other-folder",
            mine.name])
        assert jobs_module.remove_abandoned_roots(tmp_path, 3600) == []  # a second look finds nothing more
    finally:
        manager.close()
    assert not mine.exists()
