"""The `local` engine: a process pool sized to the machine, one loaded Pipeline per process.
Nothing beyond ferkit's own dependencies."""

from __future__ import annotations

import multiprocessing as mp
import os
import signal
from pathlib import Path

from .tasks import analyse_photos, analyse_video, pipeline_for

PHOTOS_PER_TASK = 16  # enough to amortise a task's overhead, few enough to keep both cores busy
FRAMES_PER_REPORT = 25  # frames between two progress messages from a worker

_WORKER: dict = {}  # this worker process's job settings and progress queue


def available_cpus() -> int:
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1


def run(job, report, workers: int | None = None, **_) -> None:
    """Run the job's videos (one task each, longest first) and photos (groups of PHOTOS_PER_TASK),
    calling report.video(result), report.photos(table) and report.frames(source, done) here."""
    tasks = [("video", item) for item in sorted(job.videos, key=size_of, reverse=True)]
    tasks += [("photos", job.photos[i:i + PHOTOS_PER_TASK]) for i in range(0, len(job.photos), PHOTOS_PER_TASK)]
    if not tasks:
        return
    # spawn, not fork: the driver may hold threads (progress bar, a notebook's) that fork would copy mid-lock
    context = mp.get_context("spawn")
    frames = context.Queue()
    pool = context.Pool(min(workers or available_cpus(), len(tasks)), initializer=init_worker,
                        initargs=(job.config, job.annotate, str(job.staging), frames, os.getpid()))
    try:
        results = pool.imap_unordered(run_task, tasks)
        while True:
            try:
                kind, result = results.next(timeout=0.2)
            except mp.TimeoutError:
                drain(frames, report)
                continue
            except StopIteration:
                break
            drain(frames, report)
            report.video(result) if kind == "video" else report.photos(result)
        pool.close()
    finally:
        pool.terminate()  # on an interrupt too: the inputs in flight are lost, nothing else
        pool.join()


def size_of(item) -> int:
    try:
        return Path(item.source).stat().st_size
    except OSError:
        return 0


def drain(queue, report) -> None:
    while not queue.empty():
        try:
            source, done = queue.get_nowait()
        except Exception:  # queue.Empty: raced by the feeder thread
            break
        report.frames(source, done)


def init_worker(config, annotate: bool, staging: str, frames, driver_pid: int) -> None:
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C reaches the driver, which ends the pool
    die_with_parent(driver_pid)
    _WORKER.update(config=config, annotate=annotate, staging=Path(staging), frames=frames)
    pipeline_for(config)  # load once, before the first task


def die_with_parent(driver_pid: int) -> None:
    """A killed driver takes its workers with it (Linux), so no orphan keeps writing."""
    try:
        import ctypes

        ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG
    except (OSError, AttributeError):
        pass
    # A driver killed while this worker was still starting (spawn re-imports everything) sends no
    # signal, and the worker would go on to run a task already queued: leave now instead.
    if os.getppid() != driver_pid:
        os._exit(1)


def run_task(task):
    kind, payload = task
    if kind == "photos":
        return kind, analyse_photos(_WORKER["config"], [item.source for item in payload])
    return kind, analyse_video(_WORKER["config"], payload, _WORKER["staging"], _WORKER["annotate"],
                               progress=FrameCounter(_WORKER["frames"], payload.source))


class FrameCounter:
    """process_video's progress callback: tells the driver every few frames how far a video is."""

    def __init__(self, queue, source: str):
        self.queue, self.source, self.sent = queue, source, 0

    def __call__(self, done: int, total: int) -> None:
        if done - self.sent >= FRAMES_PER_REPORT:
            self.queue.put((self.source, done))
            self.sent = done
