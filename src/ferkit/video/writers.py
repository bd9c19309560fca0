"""Outputs of a processed video: the annotated video, the per-frame CSV and the timeline chart.

Each writer writes to a partial file (see ferkit.files.atomic_output), so a failed run leaves
no truncated output behind.
"""

from __future__ import annotations

import csv
import functools
import math
import tempfile
from pathlib import Path

import cv2
import numpy as np

from ..errors import MediaError
from ..inference.pipeline import Face
from ..labels import CLASS_NAMES
from ..vision.draw import EMOTION_COLOURS, draw_faces

# Codec per output container. 'mp4v' (MPEG-4 part 2) is in every OpenCV build but browsers do
# not play it; `browser_video_format` finds a codec they do.
VIDEO_FOURCCS = {".mp4": "mp4v", ".m4v": "mp4v", ".mov": "mp4v", ".mkv": "mp4v", ".avi": "MJPG", ".webm": "VP80"}
TIMELINE_FORMATS = (".png", ".svg", ".pdf", ".jpg", ".jpeg")
# det_score: the face detector's confidence (empty for Haar, which has none)
CSV_COLUMNS = ("frame", "time_s", "face_id", "x", "y", "w", "h", "det_score", "emotion", *CLASS_NAMES)


def video_fourcc(path: str | Path) -> str:
    """The codec for an annotated video, chosen by the file extension."""
    suffix = Path(path).suffix.lower()
    if suffix not in VIDEO_FOURCCS:
        raise MediaError(f"{path}: unsupported video extension (use {', '.join(VIDEO_FOURCCS)})")
    return VIDEO_FOURCCS[suffix]


@functools.cache
def browser_video_format() -> tuple[str, str]:
    """(fourcc, extension) of a video format browsers play that this OpenCV build can write:
    H.264 in MP4 when available, else VP8 in WebM (pip's opencv-python has no H.264 encoder),
    else MPEG-4 part 2 in MP4 (downloadable, but not playable in most browsers)."""
    for fourcc, suffix in (("avc1", ".mp4"), ("VP80", ".webm")):
        if can_write_video(fourcc, suffix):
            return fourcc, suffix
    return "mp4v", ".mp4"


def can_write_video(fourcc: str, suffix: str) -> bool:
    """Whether a two-frame video with this codec can be written and read back."""
    with tempfile.TemporaryDirectory() as folder:
        path = str(Path(folder) / f"probe{suffix}")
        writer = cv2.VideoWriter(path, cv2.VideoWriter_fourcc(*fourcc), 10, (64, 64))
        if not writer.isOpened():
            return False
        for value in (0, 255):
            writer.write(np.full((64, 64, 3), value, np.uint8))
        writer.release()
        capture = cv2.VideoCapture(path)
        ok = capture.read()[0]
        capture.release()
        return ok


class AnnotatedVideoWriter:
    """Draws boxes, labels and score bars on each frame and encodes the result.

    `paced` (a live source): each frame is held until the next one's time, so that the video plays at the
    pace it was recorded even when the camera gave fewer frames than its nominal rate."""

    def __init__(self, partial: Path, target: Path, fps: float, size: tuple[int, int], fourcc: str | None = None,
                 paced: bool = False):
        self.partial, self.target, self.size, self.fps, self.paced = partial, target, size, fps, paced
        self.written, self.previous = 0, None
        fourcc = fourcc or video_fourcc(target)
        self.writer = cv2.VideoWriter(str(partial), cv2.VideoWriter_fourcc(*fourcc), fps, size)
        if not self.writer.isOpened():
            raise MediaError(f"{target}: cannot write a {fourcc} video here (folder not writable, or codec missing)")

    def add(self, frame_index: int, seconds: float, frame: np.ndarray, faces: list[Face]) -> None:
        annotated = draw_faces(frame, faces)
        if annotated.shape[1::-1] != self.size:  # the writer silently drops frames of another size
            annotated = cv2.resize(annotated, self.size, interpolation=cv2.INTER_AREA)
        if self.paced and self.previous is not None:
            for _ in range(math.floor(seconds * self.fps + 1e-6) - self.written):
                self.writer.write(self.previous)
                self.written += 1
        self.writer.write(annotated)
        self.written += 1
        self.previous = annotated if self.paced else None

    def release(self) -> None:
        self.writer.release()  # a second call does nothing

    def close(self) -> None:
        """Finish the file; MediaError when the encoder wrote nothing."""
        self.release()
        if not self.partial.is_file() or self.partial.stat().st_size == 0:
            raise MediaError(f"{self.target}: the video encoder wrote nothing")


class CsvWriter:
    """One row per face per frame; a frame without faces gets one row with empty face columns."""

    def __init__(self, partial: Path, target: Path):
        self.target = target
        try:
            self.file = open(partial, "w", newline="")
        except OSError as exc:
            raise MediaError(f"{target}: cannot be written ({exc.strerror})") from None
        self.rows = csv.writer(self.file)
        self.rows.writerow(CSV_COLUMNS)

    def add(self, frame_index: int, seconds: float, frame: np.ndarray, faces: list[Face]) -> None:
        time_s = f"{seconds:.3f}"
        try:
            if not faces:
                self.rows.writerow([frame_index, time_s] + [""] * (len(CSV_COLUMNS) - 2))
            for face in faces:
                det_score = "" if face.det_score is None else f"{face.det_score:.4f}"
                self.rows.writerow([frame_index, time_s, face.face_id, *face.box, det_score, face.emotion,
                                    *(f"{s:.4f}" for s in face.scores)])
        except OSError as exc:  # named here: the other outputs' clean-up would report it as theirs
            raise MediaError(f"{self.target}: cannot be written ({exc.strerror or exc})") from None

    def release(self) -> None:
        self.file.close()  # a second call does nothing

    def close(self) -> None:
        try:  # the buffered last rows are written here: a full disk shows up now, named as this file's
            self.file.close()
        except OSError as exc:
            raise MediaError(f"{self.target}: cannot be written ({exc.strerror or exc})") from None


class FaceHistory:
    """Every face id's smoothed scores over time: the source of the summary and the timeline."""

    def __init__(self):
        self.times: dict[int, list[float]] = {}
        self.scores: dict[int, list[np.ndarray]] = {}

    def add(self, seconds: float, faces: list[Face]) -> None:
        for face in faces:
            self.times.setdefault(face.face_id, []).append(seconds)
            self.scores.setdefault(face.face_id, []).append(face.scores)

    @property
    def ids(self) -> list[int]:
        return sorted(self.times)

    def face_summary(self, face_id: int) -> dict:
        """Frames seen, first/last time, and the share of frames showing each expression."""
        emotions = np.argmax(np.stack(self.scores[face_id]), axis=1)
        counts = np.bincount(emotions, minlength=len(CLASS_NAMES))
        shares = counts / counts.sum()
        return {"frames": int(counts.sum()), "first_s": round(self.times[face_id][0], 3),
                "last_s": round(self.times[face_id][-1], 3), "emotion": CLASS_NAMES[int(np.argmax(counts))],
                "shares": {name: round(float(s), 4) for name, s in zip(CLASS_NAMES, shares)}}


def plot_timeline(history: FaceHistory, path: Path, duration_s: float, frame_s: float, max_faces: int = 8) -> None:
    """Stacked expression probabilities over time, one panel per face id (the longest-seen first);
    gaps where the face was out of view."""
    from matplotlib.patches import Rectangle

    from ..evaluation.plots import new_figure

    ids = sorted(history.ids, key=lambda i: -len(history.times[i]))[:max_faces]
    fig = new_figure(figsize=(10, 1.2 + 1.6 * max(1, len(ids))))
    axes = fig.subplots(max(1, len(ids)), 1, sharex=True, squeeze=False)
    colours = [tuple(c / 255 for c in EMOTION_COLOURS[name][::-1]) for name in CLASS_NAMES]
    for ax, face_id in zip(axes[:, 0], ids):
        times, scores = with_gaps(np.asarray(history.times[face_id]), np.stack(history.scores[face_id]), frame_s)
        stack_with_gaps(ax, times, scores, colours)
        ax.set_ylim(0, 1)
        ax.set_ylabel(f"face #{face_id}")
    if not ids:
        axes[0, 0].text(0.5, 0.5, "no faces found", ha="center", va="center", transform=axes[0, 0].transAxes)
    axes[-1, 0].set_xlim(0, max(duration_s, frame_s))
    axes[-1, 0].set_xlabel("time (s)")
    handles = [Rectangle((0, 0), 1, 1, color=c) for c in colours]
    fig.legend(handles, CLASS_NAMES, loc="upper center", ncol=len(CLASS_NAMES), frameon=False)
    fig.tight_layout(rect=(0, 0, 1, 1 - 0.35 / fig.get_figheight()))
    fig.savefig(path, dpi=100, format=path.suffix.lstrip(".").lower().replace("jpg", "jpeg"))


def with_gaps(times: np.ndarray, scores: np.ndarray, frame_s: float) -> tuple[np.ndarray, np.ndarray]:
    """Insert a NaN row wherever the face was unseen for more than a frame and a half."""
    breaks = np.flatnonzero(np.diff(times) > 1.5 * frame_s) + 1
    times = np.insert(times.astype(float), breaks, times[breaks - 1] + frame_s / 2)
    scores = np.insert(scores.astype(float), breaks, np.nan, axis=0)
    return times, scores


def stack_with_gaps(ax, times: np.ndarray, scores: np.ndarray, colours) -> None:
    """A stack plot whose NaN rows leave gaps (the face out of view) instead of dips to zero."""
    bottom = np.zeros(len(times))
    visible = ~np.isnan(scores[:, 0])
    for band, colour in zip(np.nan_to_num(scores).T, colours):
        ax.fill_between(times, bottom, bottom + band, where=visible, color=colour, linewidth=0)
        bottom = bottom + band
