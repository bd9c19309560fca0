"""The `local` engine: a process pool sized to the machine, one loaded Pipeline per process.
Nothing beyond ferkit's own dependencies.

A worker that dies (a crash in native code, the OOM killer) breaks the pool, never hangs it: the
tasks it was running are run again in a fresh pool, one at a time, so a task that kills its
worker while running alone is the culprit and becomes a failed row; every other input is done.
"""

from __future__ import annotations

import multiprocessing as mp
import os
import signal
from collections import deque
from concurrent.futures import FIRST_COMPLETED, ProcessPoolExecutor, wait
from concurrent.futures.process import BrokenProcessPool
from pathlib import Path

from .tasks import analyse_photos, analyse_video, failed_photos, failed_video, one_line, pipeline_for

PHOTOS_PER_TASK = 16  # enough to amortise a task's overhead, few enough to keep both cores busy
FRAMES_PER_REPORT = 25  # frames between two progress messages from a worker
CRASHED = "the worker process died while analysing it (a crash in native code, or out of memory)"
# spawn imports the main script again in each worker: an unguarded analyse() there, or a script read from stdin,
# kills them as surely as a lack of memory does
NO_START = ("the worker processes die as they start (out of memory? or, from a script, analyse() called outside "
            "`if __name__ == \"__main__\":`)")

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
    size = min(workers or available_cpus(), len(tasks))
    todo, suspects = deque(tasks), deque()
    while todo or suspects:  # one pool, and another after each worker death
        frames = context.Queue()  # per pool: a worker that died holding the queue's lock leaves it locked
        # concurrent.futures, not multiprocessing.Pool: a Pool replaces a dead worker and waits
        # forever for the result it took along; this pool breaks and says so
        pool = ProcessPoolExecutor(size, mp_context=context, initializer=init_worker,
                                   initargs=(job.config, job.annotate, str(job.staging), frames, os.getpid(),
                                             job.keep_partial))
        try:
            run_pool(pool, size, todo, suspects, frames, report)
        except BaseException:
            terminate(pool)  # on an interrupt: the inputs in flight are lost, nothing else
            raise
        finally:
            pool.shutdown(wait=True, cancel_futures=True)


def run_pool(pool, size: int, todo: deque, suspects: deque, frames, report) -> None:
    """Run tasks in `pool` until none is left or a worker dies. Suspects (in flight when a worker
    died before) run alone, after a check that this pool's workers start at all."""
    if suspects and not starts(pool):
        for task in (*suspects, *todo):
            fail(task, NO_START, report)
        suspects.clear()
        todo.clear()
        return
    running: dict = {}  # future -> (task, whether it runs alone)
    while todo or suspects or running:
        try:
            submit(pool, size, todo, suspects, running)
        except BrokenProcessPool:  # a worker died while idle, or since the last wait
            if not running:
                return
        done, _ = wait(running, timeout=0.2, return_when=FIRST_COMPLETED)
        drain(frames, report)
        if any(isinstance(future.exception(), BrokenProcessPool) for future in done):
            done, _ = wait(running)  # a broken pool ends all its futures at once: collect every one
        lost = []
        for future in done:
            task, alone = running.pop(future)
            try:
                kind, result = future.result()
            except BrokenProcessPool:
                lost.append((task, alone))
                continue
            except Exception as exc:  # tasks return their errors; this is a bug, but one task's only
                fail(task, one_line(exc), report)
                continue
            report.video(result) if kind == "video" else report.photos(result)
        if lost:
            after_a_death(lost, suspects, report)
            return


def submit(pool, size: int, todo: deque, suspects: deque, running: dict) -> None:
    """Keep the pool busy: a suspect alone, or else up to `size` tasks."""
    if suspects and not running:
        queue, alone, limit = suspects, True, 1
    elif not suspects and not any(alone for _, alone in running.values()):
        queue, alone, limit = todo, False, size
    else:
        return
    while queue and len(running) < limit:
        task = queue.popleft()
        try:
            running[pool.submit(run_task, task)] = (task, alone)
        except BrokenProcessPool:  # back in line for the next pool
            queue.appendleft(task)
            raise


def after_a_death(lost: list, suspects: deque, report) -> None:
    """Tasks in flight when a worker died: each is run again alone, unless it ran alone (then it
    killed its worker: a failed row); a group of photos that did is split, one photo per task."""
    for task, alone in lost:
        if not alone:
            suspects.append(task)
        elif task[0] == "photos" and len(task[1]) > 1:
            suspects.extend(("photos", [item]) for item in task[1])
        else:
            fail(task, CRASHED, report)


def starts(pool) -> bool:
    """Whether the pool's workers get through their start-up (loading the model), so that a death
    after it can be blamed on the task."""
    try:
        return pool.submit(run_task, ("ping", None)).result() == ("ping", None)
    except BrokenProcessPool:
        return False


def fail(task, error: str, report) -> None:
    kind, payload = task
    if kind == "video":
        report.video(failed_video(payload, error))
    else:
        report.photos(failed_photos([item.source for item in payload], error))


def terminate(pool) -> None:
    """End a pool's workers now (concurrent.futures has no public call for it before Python 3.14)."""
    for process in list((getattr(pool, "_processes", None) or {}).values()):
        process.terminate()


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


def init_worker(config, annotate: bool, staging: str, frames, driver_pid: int, keep_partial: bool = False) -> None:
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C reaches the driver, which ends the pool
    die_with_parent(driver_pid)
    _WORKER.update(config=config, annotate=annotate, staging=Path(staging), frames=frames, keep_partial=keep_partial)
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
    if kind == "ping":
        return task
    if kind == "photos":
        return kind, analyse_photos(_WORKER["config"], [item.source for item in payload])
    return kind, analyse_video(_WORKER["config"], payload, _WORKER["staging"], _WORKER["annotate"],
                               progress=FrameCounter(_WORKER["frames"], payload.source),
                               keep_partial=_WORKER["keep_partial"])


class FrameCounter:
    """process_video's progress callback: tells the driver every few frames how far a video is."""

    def __init__(self, queue, source: str):
        self.queue, self.source, self.sent = queue, source, 0

    def __call__(self, done: int, total: int) -> None:
        if done - self.sent >= FRAMES_PER_REPORT:
            self.queue.put((self.source, done))
            self.sent = done
