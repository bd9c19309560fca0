"""The output folder of a batch run, kept only by the driver (workers hand their files over):

    OUT/videos/KEY.csv, KEY_timeline.png, KEY.json (and KEY.mp4 with annotate): `ferkit video`'s outputs
    OUT/photos/part-*.parquet   one Parquet dataset, a row per face of every photo
    OUT/summary.parquet, OUT/summary.csv   a row per input
    OUT/.partial/               work in progress; removed at the start of every run

Every file appears under its final name whole (written aside, then renamed). A video's JSON is
renamed last, so it marks the video done; a photo is done once a part holding it is renamed.
"""

from __future__ import annotations

import json
import os
import shutil
import uuid
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq

from ..errors import MediaError
from ..files import atomic_output
from .inputs import Item
from .tasks import PHOTO_SCHEMA, video_files


def output_folders(out: str | Path) -> tuple[Path, Path, Path]:
    """(videos, photos, staging): the folders of `out` that a run writes, absolute as the inputs are (the summary
    and each video's JSON name them)."""
    root = Path(out).expanduser().absolute()  # "~/results" as the shell would have it, even after --out=
    return root / "videos", root / "photos", root / ".partial"


class OutputFolder:
    def __init__(self, out: str | Path):
        self.videos, self.photos, self.staging = output_folders(out)
        self.root = self.videos.parent
        try:
            for folder in (self.videos, self.photos):
                folder.mkdir(parents=True, exist_ok=True)
            shutil.rmtree(self.staging, ignore_errors=True)  # what an interrupted run left in flight
            self.staging.mkdir()
        except OSError as exc:
            raise MediaError(f"{self.root}: cannot create the output folder ({exc.strerror})") from None

    # --- videos ---------------------------------------------------------------------------

    def video_targets(self, item: Item, annotate: bool) -> dict[str, Path]:
        return {kind: self.videos / name for kind, name in video_files(item.key, annotate).items()}

    def video_owner(self, key: str) -> str | None:
        """The input whose outputs videos/KEY.* are (its JSON's "input"), or None."""
        try:
            return json.loads((self.videos / f"{key}.json").read_text()).get("input")
        except (OSError, ValueError, AttributeError):
            return None

    def finished_video(self, item: Item, annotate: bool) -> dict | None:
        """The JSON summary of an earlier run of this input, if all its outputs are there."""
        targets = self.video_targets(item, annotate)
        try:
            summary = json.loads(targets["json"].read_text())
        except (OSError, ValueError):
            return None
        complete = summary.get("input") == item.source and all(path.is_file() for path in targets.values())
        return summary if complete else None

    def commit_video(self, item: Item, result: dict, annotate: bool) -> dict:
        """Move (or write) a worker's files to their final names, the JSON summary last; returns the
        summary as written, with the final output paths."""
        targets = self.video_targets(item, annotate)
        summary = {**result["summary"], "outputs": {kind: str(targets[kind]) for kind in result["files"]}}
        committed = []
        try:
            for kind, data in result["files"].items():
                with atomic_output(targets[kind]) as partial:
                    if isinstance(data, bytes):
                        partial.write_bytes(data)
                    else:
                        shutil.move(data, partial)
                committed.append(targets[kind])
            with atomic_output(targets["json"]) as partial:
                partial.write_text(json.dumps(summary) + "\n")  # the line `ferkit video --json` prints
        except BaseException:  # a failed video leaves none of its files under videos/
            for path in committed:
                path.unlink(missing_ok=True)
            raise
        for folder in {Path(data).parent for data in result["files"].values() if not isinstance(data, bytes)}:
            shutil.rmtree(folder, ignore_errors=True)  # the worker's emptied staging folder
        return summary

    # --- the settings the results were made with ------------------------------------------

    SETTINGS_FILE = "settings.json"

    def check_settings(self, settings: dict, force: bool) -> None:
        """Record the settings of this run's results; MediaError when the folder holds results made with others
        (a rerun would skip them as done, with no word of the change), unless `force` redoes them."""
        path = self.root / self.SETTINGS_FILE
        try:
            before = json.loads(path.read_text())
        except (OSError, ValueError):
            before = None
        if before is not None and before != settings and not force:
            changed = sorted(key for key in {*before, *settings} if before.get(key) != settings.get(key))
            raise MediaError(f"{self.root}: holds results made with other settings (changed: {', '.join(changed)}); "
                             "--force redoes them with these, or choose another --out")
        with atomic_output(path) as partial:
            partial.write_text(json.dumps(settings, indent=2, sort_keys=True) + "\n")

    # --- photos ---------------------------------------------------------------------------

    def photo_parts(self) -> list[Path]:
        return sorted(self.photos.glob("part-*.parquet"))

    def finished_photos(self) -> pa.Table:
        """Every row of the photo dataset written so far."""
        parts = [pq.read_table(part, schema=PHOTO_SCHEMA) for part in self.photo_parts()]
        return pa.concat_tables(parts) if parts else PHOTO_SCHEMA.empty_table()

    def forget_photos(self, sources: set[str], parts: list[Path] | None = None) -> None:
        """Drop these photos' rows (they are redone) from `parts` (default: all): each is rewritten without them."""
        for part in self.photo_parts() if parts is None else [part for part in parts if part.is_file()]:
            table = pq.read_table(part, schema=PHOTO_SCHEMA)
            keep = pa.array([path not in sources for path in table.column("path").to_pylist()], pa.bool_())
            if keep.true_count == len(table):
                continue
            if keep.true_count:
                self.write_photo_part(table.filter(keep), part)
            else:
                part.unlink()

    def write_photo_part(self, table: pa.Table, target: Path | None = None) -> Path:
        target = target or self.photos / f"part-{uuid.uuid4().hex[:12]}.parquet"
        with atomic_output(target) as partial:
            pq.write_table(table.select(PHOTO_SCHEMA.names).cast(PHOTO_SCHEMA), partial)
        return target

    def close(self) -> None:
        shutil.rmtree(self.staging, ignore_errors=True)
        for folder in (self.videos, self.photos):
            try:
                os.rmdir(folder)  # only when empty: no photos, no empty dataset folder
            except OSError:
                pass
