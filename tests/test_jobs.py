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
import os
import shutil
import threading

import pytest
from conftest import write_video

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

    def __call__(self, pipeline, input_path, out_video=None, csv_path=None, timeline_png=None,
                 progress_callback=None, fourcc=None):
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
    with pytest.raises(Busy) as refused:  # the next upload is refused: the folder is full
        submit(manager, video)
    assert str(refused.value) == ("the jobs folder is at its limit of 1 MB; retry when older results have expired "
                                  "or been deleted")
    assert (refused.value.status, refused.value.retry_after) == (503, 60)
    assert len(manager) == 1


def test_a_full_queue_refuses_more_jobs(make_manager, video, scripted):
    manager = make_manager(job_queue=1)
    gate = threading.Event()
    process = scripted(gate=gate)
    try:
        running = submit(manager, video)
        assert process.entered.wait(30)
        waiting = submit(manager, video)
        with pytest.raises(Busy) as refused:
            submit(manager, video)
        assert str(refused.value) == ("2 video jobs are already queued or running, the most this server takes; "
                                      "retry when one has finished")
        assert (refused.value.status, refused.value.retry_after) == (429, 30)
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
