"""Batch analysis: many videos and photos, on this machine or a Ray cluster, one call.

    from ferkit.batch import analyse
    table = analyse(["videos/", "photos/*.jpg"], "results/")              # a process pool here
    table = analyse(["videos/"], "results/", engine="ray", address="auto")  # the same on a Ray cluster
    table.to_pandas()                                                     # the summary, one row per input

The summary is a pyarrow Table (pyarrow is needed for the Parquet outputs anyway; `.to_pandas()`
when pandas is installed). Engines only schedule: each input goes through the same Pipeline and
`process_video` as `ferkit predict` and `ferkit video`. Layout of the output folder: outputs.py.
"""

from __future__ import annotations

import importlib
import os
import sys
import time
from dataclasses import dataclass, replace
from pathlib import Path

import pyarrow as pa
import pyarrow.compute as pc

from ..config import Config
from ..errors import FerkitError, MediaError
from ..files import is_utf8_name, printable
from ..inference.pipeline import Pipeline
from .inputs import Item, expand_inputs, hashed_key, outside, plain_key
from .outputs import OutputFolder, output_folders
from .summary import failed_row, photo_row, summary_table, video_row, write_summary
from .tasks import one_line

__all__ = ["analyse", "run_batch", "ENGINES"]

ENGINES = {"local": "ferkit.batch.local", "ray": "ferkit.batch.ray_engine"}
# Photo rows go to a new Parquet part every PHOTOS_PER_PART rows or FLUSH_EVERY_S seconds (and at the
# end, Ctrl-C included): few parts, and a killed run loses at most that much finished work.
PHOTOS_PER_PART, FLUSH_EVERY_S = 2000, 30.0
KIND_ERRORS = {"missing": "no such file, folder or match", "unknown": "not a photo or video type ferkit knows",
               "bad-name": "the file name is not valid UTF-8; rename it"}


@dataclass
class Job:
    """What an engine runs: each video and photo through one Pipeline built from `config`."""

    config: Config
    videos: list[Item]
    photos: list[Item]
    staging: Path  # where local workers write a video's files before the driver renames them
    annotate: bool = False
    keep_partial: bool = False  # a video damaged midway keeps what was read before the damage


def analyse(paths, out, engine: str = "local", config: Config | None = None, *, address: str | None = None,
            workers: int | None = None, annotate: bool = False, force: bool = False,
            progress: bool = True, keep_partial: bool = False) -> pa.Table:
    """Analyse every video and photo in `paths` (files, folders, globs, list files, URLs) into `out`.

    engine: "local" (a process pool of `workers`, default one per core) or "ray" (`address`: None
    starts a private local Ray, "auto" or "ray://host:port" joins a cluster; `workers` caps the
    photo actors). `keep_partial`: a video damaged midway keeps the outputs of the frames read before the damage
    (its row is "done", with the damage in `error`), as `ferkit video --keep-partial`. Inputs whose outputs are
    complete are skipped unless `force`; files inside
    OUT/videos and OUT/.partial (the run's own outputs, when OUT is in an input folder) are no
    inputs. Returns the run summary, one row per input (see summary.SUMMARY_SCHEMA), also written
    as summary.parquet/.csv.
    Raises FerkitError only for what stops the whole run (no inputs, bad model, unwritable out).
    """
    if engine not in ENGINES:
        raise FerkitError(f"unknown engine {engine!r} (use {' or '.join(ENGINES)})")
    if workers is not None and workers < 1:
        raise FerkitError(f"workers must be at least 1, not {workers}")
    if not is_utf8_name(Path(out).resolve()):  # Parquet (pyarrow) takes paths as UTF-8 only: a traceback later
        raise MediaError(f"{printable(out)}: the output folder's name is not valid UTF-8; choose another folder")
    specs = [paths] if isinstance(paths, (str, Path)) else list(paths)  # a generator is read once
    if not specs:
        raise MediaError("no inputs given: name photos, videos, folders, globs or list files")
    found = expand_inputs(specs)
    # `batch DIR --out DIR`: a rerun must not take its own timelines (or annotated videos) for inputs,
    # nor may an annotated video replace an input; photos/ holds only Parquet, no input
    videos, _, staging = output_folders(out)
    items = outside(found, (videos, staging))
    if not items:
        ours = f" outside {videos} and {staging}, where this run writes" if found else ""
        raise MediaError(f"no photos or videos found in {', '.join(map(str, specs))}{ours}")
    config = config or Config()
    Pipeline.from_config(config)  # a bad model or detector fails here, once, not in every worker
    runner = importlib.import_module(ENGINES[engine])  # ImportError-free: ray_engine explains a missing extra
    folder = OutputFolder(out)
    folder.check_settings(result_settings(config), force)
    recorder = Recorder(folder, items, annotate, progress)
    def summary(reason_missing: str) -> pa.Table:
        table = summary_table([recorder.rows.get(item.source) or failed_row(item, reason_missing) for item in items])
        write_summary(table, folder.root)
        return table

    interrupted = False
    try:
        job = recorder.plan(config, force, keep_partial)
        runner.run(job, recorder, workers=workers, address=address)
    except KeyboardInterrupt:
        interrupted = True
        raise
    finally:
        recorder.close()
        folder.close()
        if interrupted:  # Ctrl-C or SIGTERM: the summary says what this run did, not what an earlier run did
            summary("the run was interrupted before this input finished; run again to finish it")
    return summary("no result came back from the engine (a worker died?); run again to retry")


def result_settings(config: Config) -> dict:
    """What a run's results depend on: the model (a bundled name, or the absolute path of a run folder or file), the
    detector's and the per-frame path's settings."""
    from dataclasses import asdict

    from ..inference.classifier import list_bundled_models, resolve_model

    model = str(config.model)
    model = resolve_model(model).name if model == "default" else model
    model = model if model in list_bundled_models() else os.path.abspath(model)
    return {"model": model, "detector": asdict(config.detector), "pipeline": asdict(config.pipeline)}


def run_batch(paths, out, config: Config, progress: bool = True, **options) -> int:
    """`ferkit batch`: run, print one line per failed input (stderr) and a total (stdout).

    Exit status, as GNU parallel's: the number of failed inputs (0: all done), 101 for more than 100.
    """
    started = time.perf_counter()
    table = analyse(paths, out, config=config, progress=progress and sys.stderr.isatty(), **options)
    rows = table.select(["input", "status", "frames", "error"]).to_pylist()
    for row in rows:
        if row["status"] == "failed":
            error = row["error"] if row["error"].startswith(row["input"]) else f"{row['input']}: {row['error']}"
            print(f"ferkit batch: failed: {error}", file=sys.stderr)
        elif row["error"]:  # a damaged video kept in part (--keep-partial)
            print(f"ferkit batch: warning: {row['input']}: {row['error']}; kept the {row['frames']} frames before it",
                  file=sys.stderr)
    counts = {status: sum(row["status"] == status for row in rows) for status in ("done", "skipped", "failed")}
    print(f"{len(rows)} input{'s' * (len(rows) != 1)}: {counts['done']} done, "
          f"{counts['skipped']} skipped (done before), {counts['failed']} failed in "
          f"{time.perf_counter() - started:.1f} s; summary: {Path(out).expanduser() / 'summary.csv'}")
    return min(counts["failed"], 101)


class Recorder:
    """The driver's side of a run: decides what is left to do, commits what workers hand back,
    keeps the summary rows and the progress bar."""

    def __init__(self, folder: OutputFolder, items: list[Item], annotate: bool, progress: bool):
        self.folder, self.items, self.annotate, self.show_progress = folder, items, annotate, progress
        self.by_source = {item.source: item for item in items}
        self.rows: dict[str, dict] = {}
        self.frames_by_source: dict[str, int] = {}
        self.photo_tables: list[pa.Table] = []
        self.bar, self.started, self.drawn, self.planned = None, time.perf_counter(), 0.0, 0
        self.flushed = self.started
        # --force: the parts from before this run, whose rows of a redone photo are dropped only when its new rows
        # are written (dropped up front, an interrupted run lost every photo it had not reached yet)
        self.stale_parts: list = []
        self.settled: set[str] = set()  # photos redone (or failed) since the last flush

    def plan(self, config: Config, force: bool, keep_partial: bool = False) -> Job:
        """Rows for what is complete already (or cannot be read at all); a Job for the rest."""
        self.settle_keys()
        photos = [item for item in self.items if item.kind == "photo"]
        if force:
            self.stale_parts = self.folder.photo_parts()
        done_photos = {} if force else group_rows(self.folder.finished_photos().to_pylist())
        videos, todo_photos = [], []
        for item in self.items:
            if item.kind in KIND_ERRORS:
                self.rows[item.source] = failed_row(item, f"{item.source}: {KIND_ERRORS[item.kind]}")
                self.settled.add(item.source)  # with --force, an unreadable photo keeps no old rows either
            elif item.kind == "photo":
                if item.source in done_photos:
                    self.rows[item.source] = photo_row(item, done_photos[item.source], "skipped", self.folder.photos)
                else:
                    todo_photos.append(item)
            else:
                summary = None if force else self.folder.finished_video(item, self.annotate)
                if summary:
                    self.rows[item.source] = video_row(item, summary, "skipped", self.folder.video_targets(
                        item, self.annotate)["json"])
                else:
                    videos.append(item)
        self.planned = len(self.rows)  # skipped or unreadable: counted as done from the start
        return Job(config, videos, todo_photos, self.folder.staging, self.annotate, keep_partial)

    def settle_keys(self) -> None:
        """A video keeps the key its finished outputs already have, and never takes one whose outputs are another
        input's (clip.mp4 of an earlier day, in the same --out): that one gets its hashed key instead."""
        for i, item in enumerate(self.items):
            if item.kind != "video" or not item.name:
                continue
            plain = plain_key(item.name, item.source)
            owner = self.folder.video_owner(plain)
            key = plain if owner == item.source else hashed_key(item.name, item.source) if owner else item.key
            if key != item.key:
                self.items[i] = replace(item, key=key)
        self.by_source = {item.source: item for item in self.items}

    # --- called by the engines, in the driver process ---------------------------------------

    def video(self, result: dict) -> None:
        item = result["item"]
        elapsed, node = round(result["elapsed_s"], 3), result["node"]
        if result["error"] is None:
            try:
                summary = self.folder.commit_video(item, result, self.annotate)
                row = video_row(item, summary, "done", self.folder.video_targets(item, self.annotate)["json"],
                                elapsed, node)
                self.frames_by_source[item.source] = summary["frames"]
            except FerkitError as exc:  # e.g. the output disk filled up: this input failed, not the run
                row = failed_row(item, one_line(exc), elapsed, node)
        else:
            row = failed_row(item, result["error"], elapsed, node)
        self.add(item, row)

    def photos(self, table: pa.Table) -> None:
        rows = group_rows(table.to_pylist())
        self.settled.update(rows)
        good = [source for source, photo in rows.items() if photo[0]["error"] is None]
        if good:
            self.photo_tables.append(table.filter(pc.is_null(table.column("error"))))
        for source, photo in rows.items():
            item = self.by_source[source]
            if photo[0]["error"] is None:
                self.frames_by_source[source] = 1
                self.add(item, photo_row(item, photo, "done", self.folder.photos))
            else:
                self.add(item, failed_row(item, photo[0]["error"], photo[0]["elapsed_s"], photo[0]["node"]))
        if sum(len(t) for t in self.photo_tables) >= PHOTOS_PER_PART or \
                time.perf_counter() - self.flushed > FLUSH_EVERY_S:
            self.flush_photos()

    def frames(self, source: str, done: int) -> None:
        self.frames_by_source[source] = done
        self.refresh()

    # --- bookkeeping --------------------------------------------------------------------------

    def add(self, item: Item, row: dict) -> None:
        self.rows[item.source] = row
        self.open_bar()
        if self.bar is not None:
            self.bar.update(1)
            self.refresh()

    def flush_photos(self) -> None:
        if self.stale_parts and self.settled:  # first: a kill between the two loses these photos, never doubles them
            self.folder.forget_photos(self.settled, self.stale_parts)
        self.settled = set()
        if self.photo_tables:
            self.folder.write_photo_part(pa.concat_tables(self.photo_tables))
            self.photo_tables = []
        self.flushed = time.perf_counter()

    def open_bar(self) -> None:
        """At the first result, so that an engine's start-up messages (Ray's) come before it."""
        if self.show_progress and self.bar is None:
            from tqdm.auto import tqdm

            self.bar = tqdm(total=len(self.items), initial=self.planned, unit="input", file=sys.stderr,
                            dynamic_ncols=True, smoothing=0.1)

    def refresh(self, final: bool = False) -> None:
        self.open_bar()
        now = time.perf_counter()
        if self.bar is not None and (final or now - self.drawn >= 0.5):  # redrawn twice a second at most
            self.drawn = now
            frames = sum(self.frames_by_source.values())
            self.bar.set_postfix_str(f"{frames} frames, {frames / max(now - self.started, 1e-9):.0f} frames/s")

    def close(self) -> None:
        """On success and on interrupts alike: what workers handed back is kept."""
        self.flush_photos()
        if self.bar is not None:
            self.refresh(final=True)  # the last count, not the one drawn up to half a second before
            self.bar.close()


def group_rows(rows: list[dict]) -> dict[str, list[dict]]:
    groups: dict[str, list[dict]] = {}
    for row in rows:
        groups.setdefault(row["path"], []).append(row)
    return groups
