"""Batch speed: the same inputs through a plain loop over `ferkit video`, one process looping over
`process_video`, the local engine and the Ray engine, in one run.

    nice -n 10 python bench/bench_batch.py [--inputs 52] [--seconds 1.5] [--methods loop,inprocess,local,ray]

Inputs: --inputs short clips cut from the videos in ../shared/data/media/videos (re-encoded
segments, made once into a temporary folder). Every method writes the same per-video CSV and
timeline (the loop through `ferkit video --csv`, the engines through `ferkit.batch.analyse`).
Prints, per method: inputs/s, frames/s, CPU ms per frame and CPU share (CPU time of the method's
processes over wall time x cores), and the load average, since the machine may be shared. The
Ray run starts its private cluster inside the timing (start-up included) and reports that time.
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import cv2

from ferkit.batch import analyse
from ferkit.batch.local import available_cpus
from ferkit.config import Config, default_shared_dir
from ferkit.inference.pipeline import Pipeline
from ferkit.video.process import default_timeline, process_video

CLIPS = Path("data/media/videos")


def make_inputs(folder: Path, count: int, seconds: float) -> tuple[list[Path], int]:
    """`count` clips of about `seconds` each, cut in turn from every shared video; (paths, frames)."""
    sources = sorted((default_shared_dir() / CLIPS).glob("*.*"))
    if not sources:
        sys.exit(f"bench_batch: no videos in {default_shared_dir() / CLIPS}")
    folder.mkdir(parents=True, exist_ok=True)
    paths, frames, starts = [], 0, {source: 0 for source in sources}
    for i in range(count):
        source = sources[i % len(sources)]
        capture = cv2.VideoCapture(str(source))
        fps = capture.get(cv2.CAP_PROP_FPS) or 30
        total = int(capture.get(cv2.CAP_PROP_FRAME_COUNT))
        length = int(seconds * fps)
        start = starts[source] if starts[source] + length <= total - 5 else 0
        starts[source] = start + length
        capture.set(cv2.CAP_PROP_POS_FRAMES, start)
        target = folder / f"clip{i:03d}.mp4"
        writer = None
        for _ in range(length):
            ok, frame = capture.read()
            if not ok:
                break
            if writer is None:
                writer = cv2.VideoWriter(str(target), cv2.VideoWriter_fourcc(*"mp4v"), fps, frame.shape[1::-1])
            writer.write(frame)
            frames += 1
        writer.release()
        capture.release()
        paths.append(target)
    return paths, frames


class Clock:
    """Wall time and the CPU time of this process and its (waited-for) children."""

    def __enter__(self):
        self.wall, self.cpu = time.perf_counter(), cpu_seconds()
        return self

    def __exit__(self, *exc):
        self.wall, self.cpu = time.perf_counter() - self.wall, cpu_seconds() - self.cpu


def cpu_seconds() -> float:
    t = os.times()
    return t.user + t.system + t.children_user + t.children_system


def tree_cpu_seconds(pid: int) -> float:
    """CPU time of the live descendants of `pid` (Ray's raylet and workers are not waited for)."""
    ticks, todo, seen = 0, [pid], set()
    while todo:
        current = todo.pop()
        if current in seen:
            continue
        seen.add(current)
        try:
            fields = Path(f"/proc/{current}/stat").read_text().rsplit(")", 1)[1].split()
            if current != pid:
                ticks += int(fields[11]) + int(fields[12])  # utime, stime
            for task in Path(f"/proc/{current}/task").iterdir():
                todo += [int(c) for c in (task / "children").read_text().split()]
        except OSError:
            continue
    return ticks / os.sysconf("SC_CLK_TCK")


def run_loop(videos: list[Path], out: Path) -> None:
    """What users did before: a shell loop, one `ferkit video` process per file."""
    for video in videos:
        csv = out / f"{video.stem}.csv"
        subprocess.run([sys.executable, "-m", "ferkit.cli", "video", str(video), "--csv", str(csv), "--json",
                        "--no-progress"], check=True, stdout=subprocess.DEVNULL)


def run_inprocess(videos: list[Path], out: Path) -> None:
    """The best one process can do: one loaded Pipeline, process_video per file."""
    pipeline = Pipeline.from_config(Config())
    for video in videos:
        csv = out / f"{video.stem}.csv"
        process_video(pipeline, video, csv_path=csv, timeline_png=default_timeline(None, str(csv)))


def run_ray(folder: Path, out: Path) -> tuple[float, float]:
    """(start-up seconds, CPU seconds of Ray's processes) around the Ray engine."""
    import ray

    from ferkit.batch.ray_engine import OBJECT_STORE_BYTES, short_temp_dir

    os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
    started, own = time.perf_counter(), os.times()
    ray.init(address="local", _temp_dir=short_temp_dir(), object_store_memory=OBJECT_STORE_BYTES,
             include_dashboard=False, log_to_driver=False)
    startup = time.perf_counter() - started
    try:
        analyse([folder], out, engine="ray", progress=False)
        now = os.times()  # this driver, plus Ray's processes while they still live (none is waited for)
        return startup, now.user + now.system - own.user - own.system + tree_cpu_seconds(os.getpid())
    finally:
        ray.shutdown()


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--inputs", type=int, default=52)
    parser.add_argument("--seconds", type=float, default=1.5, help="length of each clip")
    parser.add_argument("--methods", default="loop,inprocess,local,ray")
    args = parser.parse_args(argv)
    cores = available_cpus()
    with tempfile.TemporaryDirectory(prefix="bench-batch-") as tmp:
        tmp = Path(tmp)
        videos, frames = make_inputs(tmp / "inputs", args.inputs, args.seconds)
        print(f"{len(videos)} clips, {frames} frames in all, from {default_shared_dir() / CLIPS}; {cores} cores; "
              f"load average before {os.getloadavg()[0]:.1f}")
        results = {}
        for method in args.methods.split(","):
            out = tmp / f"out-{method}"
            out.mkdir()
            extra = ""
            with Clock() as clock:
                if method == "loop":
                    run_loop(videos, out)
                elif method == "inprocess":
                    run_inprocess(videos, out)
                elif method == "local":
                    analyse([tmp / "inputs"], out, progress=False)
                elif method == "ray":
                    startup, ray_cpu = run_ray(tmp / "inputs", out)
                    extra = f", Ray start-up {startup:.1f} s"
            cpu = ray_cpu if method == "ray" else clock.cpu
            results[method] = clock.wall
            print(f"{method:>9}: {clock.wall:6.1f} s, {len(videos) / clock.wall:5.2f} inputs/s, "
                  f"{frames / clock.wall:6.1f} frames/s, {1000 * cpu / frames:5.2f} CPU ms/frame, "
                  f"CPU share {cpu / (clock.wall * cores):4.0%}{extra}; load average {os.getloadavg()[0]:.1f}")
            sys.stdout.flush()
            shutil.rmtree(out)
        best = min(results.values())
        print("wall time over the fastest: " + ", ".join(f"{m} {w / best:.2f}x" for m, w in results.items()))
    return 0


if __name__ == "__main__":
    sys.exit(main())
