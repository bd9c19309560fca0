"""The work on one input, the same for every engine (engines only decide where it runs): a video
goes through `video.process.process_video`, a group of photos through `Pipeline.analyse`."""

from __future__ import annotations

import os
import shutil
import socket
import tempfile
import time
import traceback
import urllib.request
import uuid
from contextlib import contextmanager
from pathlib import Path

import cv2
import numpy as np
import pyarrow as pa

from ..config import Config
from ..errors import FerkitError, MediaError
from ..inference.images import read_image
from ..inference.pipeline import Pipeline
from ..labels import CLASS_NAMES
from ..video.process import process_video
from .inputs import Item, is_url

PHOTO_SCHEMA = pa.schema([("path", pa.string()), ("face_id", pa.int32()), ("x", pa.int32()), ("y", pa.int32()),
                          ("w", pa.int32()), ("h", pa.int32()), ("det_score", pa.float32()),
                          ("emotion", pa.string()), *[(name, pa.float32()) for name in CLASS_NAMES]])
# What a photo task returns: the dataset's rows plus, per photo, how long it took, where, and its error.
PHOTO_RESULT_SCHEMA = PHOTO_SCHEMA.append(pa.field("elapsed_s", pa.float64())).append(
    pa.field("node", pa.string())).append(pa.field("error", pa.string()))

_PIPELINES: dict[str, Pipeline] = {}


def worker_setup() -> None:
    """Once per worker process: OpenCV ignores OMP_NUM_THREADS and would start a thread per core
    in every worker, so N workers on N cores would fight over N*N threads."""
    cv2.setNumThreads(1)


def pipeline_for(config: Config) -> Pipeline:
    """One loaded Pipeline per worker process and config (workers are reused across inputs)."""
    key = repr(config)
    if key not in _PIPELINES:
        worker_setup()
        _PIPELINES[key] = Pipeline.from_config(config)
    return _PIPELINES[key]


def node_name() -> str:
    return f"{socket.gethostname()}:{os.getpid()}"


def one_line(exc: BaseException) -> str:
    """A user-fixable error as its message; anything else with its type and where it happened."""
    if isinstance(exc, FerkitError):
        return " ".join(str(exc).split())
    where = traceback.extract_tb(exc.__traceback__)[-1] if exc.__traceback__ else None
    at = f" (at {Path(where.filename).name}:{where.lineno})" if where else ""
    return " ".join(f"{type(exc).__name__}: {exc}{at}".split())


@contextmanager
def local_copy(item: Item, folder: Path):
    """A path to read `item` from: the file itself, or a download of its URL into `folder`."""
    if not is_url(item.source):
        yield Path(item.source)
        return
    target = folder / f"download{Path(item.source.split('?')[0]).suffix.lower()}"
    folder.mkdir(parents=True, exist_ok=True)
    try:
        with urllib.request.urlopen(item.source, timeout=60) as response, open(target, "wb") as file:
            shutil.copyfileobj(response, file)
    except (OSError, ValueError) as exc:
        raise MediaError(f"{item.source}: cannot be downloaded ({getattr(exc, 'reason', None) or exc})") from None
    try:
        yield target
    finally:
        target.unlink(missing_ok=True)


def video_files(key: str, annotate: bool) -> dict[str, str]:
    """Output names of one video, relative to the videos folder: what `ferkit video` writes."""
    names = {"csv": f"{key}.csv", "timeline": f"{key}_timeline.png", "json": f"{key}.json"}
    return {"video": f"{key}.mp4", **names} if annotate else names


def analyse_video(config: Config, item: Item, staging: Path, annotate: bool = False, progress=None,
                  as_bytes: bool = False, keep_partial: bool = False) -> dict:
    """Process one video into a fresh folder under `staging`; never raises. `keep_partial`: as process_video's.

    Returns {"item", "summary" (process_video's) or None, "error", "files" (kind -> Path, or the
    bytes with as_bytes, for a driver on another machine), "elapsed_s", "node"}.
    """
    started, folder = time.perf_counter(), Path(staging) / uuid.uuid4().hex
    result = {"item": item, "summary": None, "error": None, "files": {}, "node": node_name()}
    path = None
    try:
        pipeline = pipeline_for(config)
        names = {kind: folder / name for kind, name in video_files("video", annotate).items() if kind != "json"}
        with local_copy(item, folder / "input") as path:
            result["summary"] = process_video(pipeline, path, names.get("video"), names["csv"], names["timeline"],
                                              progress_callback=progress, keep_partial=keep_partial)
        result["summary"]["input"] = item.source
        result["files"] = {kind: path.read_bytes() if as_bytes else path for kind, path in names.items()}
    except Exception as exc:  # one input's failure is a row of the summary; the run goes on
        result["error"] = one_line(exc).replace(str(path), item.source) if path else one_line(exc)
    finally:
        if as_bytes or result["error"]:
            shutil.rmtree(folder, ignore_errors=True)
    result["elapsed_s"] = time.perf_counter() - started
    return result


def failed_video(item: Item, error: str) -> dict:
    """What analyse_video returns for a video whose worker never returned (it died)."""
    return {"item": item, "summary": None, "error": error, "files": {}, "elapsed_s": 0.0, "node": None}


def failed_photos(sources: list[str], error: str) -> pa.Table:
    """What analyse_photos returns for photos whose worker never returned (it died)."""
    return pa.Table.from_pylist([{"path": source, "elapsed_s": 0.0, "node": None, "error": error}
                                 for source in sources], schema=PHOTO_RESULT_SCHEMA)


def analyse_photos(config: Config, sources: list[str]) -> pa.Table:
    """Every face of every photo (PHOTO_RESULT_SCHEMA); a photo without faces is one row with empty
    face columns, a failed one a row with its error. Decodes here, in the worker."""
    pipeline, rows, node = pipeline_for(config), [], node_name()
    for source in sources:
        started = time.perf_counter()
        try:
            with tempfile.TemporaryDirectory(prefix="ferkit-") as folder:
                with local_copy(Item(source, "photo", "photo"), Path(folder)) as path:
                    faces = pipeline.analyse(read_image(path))
            photo_rows = [face_row(source, i + 1, face) for i, face in enumerate(faces)] or [{"path": source}]
            error = None
        except Exception as exc:
            photo_rows, error = [{"path": source}], one_line(exc)
        elapsed = time.perf_counter() - started
        share = round(elapsed / len(photo_rows), 4)
        rows += [{**row, "elapsed_s": share, "node": node, "error": error} for row in photo_rows]
    return pa.Table.from_pylist(rows, schema=PHOTO_RESULT_SCHEMA)


def face_row(source: str, face_id: int, face) -> dict:
    """One face of a photo; ids count faces largest first, from 1 as in videos."""
    det_score = getattr(face, "det_score", None)
    return {"path": source, "face_id": face_id, **dict(zip("xywh", map(int, face.box))),
            "det_score": None if det_score is None else float(det_score), "emotion": face.emotion,
            **{name: float(s) for name, s in zip(CLASS_NAMES, np.asarray(face.scores, float))}}
