"""Reading videos: saved files (any container OpenCV's FFmpeg reads) and live sources (a camera or a stream URL),
with clear one-line errors for bad ones."""

from __future__ import annotations

import math
import re
from collections.abc import Callable, Iterator
from pathlib import Path
from time import monotonic as live_clock  # a live frame's time; tests replace it alone

import cv2
import numpy as np

from ..errors import MediaError
from ..files import is_utf8_name, printable, require_file

DEFAULT_FPS = 30.0  # when a container does not say
# CAP_PROP_FRAME_COUNT is an estimate for some containers (no_face.mp4 reports 98 frames and
# decodes 95), so a video counts as cut short only when it ends well before its reported length.
FRAME_COUNT_TOLERANCE = 0.05
FRAME_COUNT_SLACK = 3


class DamagedVideo(MediaError):
    """A video file whose frames stop before its end (a decode error, or far fewer frames than it says); `reason`
    is the message without the file's name."""

    def __init__(self, path: Path, reason: str):
        super().__init__(f"{path}: {reason}")
        self.reason = reason


class VideoSource:
    """An opened video file: fps, size, approximate frame count and its frames.

    Raises MediaError for a missing, empty, non-video or unreadable file, and, at the end of
    `frames()`, for a video whose frames stop well before its reported length (damaged file).
    """

    def __init__(self, path: str | Path):
        self.path = require_file(path)
        if not is_utf8_name(self.path):  # OpenCV takes names as UTF-8 and crashes (segfault) on others
            raise MediaError(f"{printable(self.path)}: the file name is not valid UTF-8; rename it")
        if self.path.stat().st_size == 0:
            raise MediaError(f"{self.path}: the file is empty")
        if cv2.haveImageReader(str(self.path)):
            raise MediaError(f"{self.path}: is an image, not a video (use `ferkit predict` for images)")
        self.capture = cv2.VideoCapture(str(self.path))
        if not self.capture.isOpened():
            raise MediaError(f"{self.path}: not a video OpenCV can read (corrupt, or an unsupported format)")
        ok, self.first_frame = self.capture.read()
        if not ok or self.first_frame is None:
            self.capture.release()
            raise MediaError(f"{self.path}: no readable video frames (corrupt or not a video)")
        fps = self.capture.get(cv2.CAP_PROP_FPS)
        self.fps = fps if math.isfinite(fps) and 0 < fps <= 1000 else DEFAULT_FPS
        self.frame_count = max(0, int(self.capture.get(cv2.CAP_PROP_FRAME_COUNT)))  # 0: unknown
        self.height, self.width = self.first_frame.shape[:2]
        self._last_seconds = -1.0

    @property
    def size(self) -> tuple[int, int]:
        return self.width, self.height

    def frames(self) -> Iterator[tuple[int, float, np.ndarray]]:
        """(index, seconds, BGR frame) for every frame, then a check that the video was not cut
        short. The time is taken right after each read, so the frames may be read ahead."""
        index, frame = 0, self.first_frame
        try:
            while frame is not None:
                yield index, self.seconds(index), frame
                index += 1
                frame = self.read()
        finally:
            self.close()
        self.check_complete(index)

    def seconds(self, index: int) -> float:
        """Time of the frame last read: the container's timestamp, exact for variable frame rates;
        index / fps where the backend gives none or it runs backwards."""
        msec = self.capture.get(cv2.CAP_PROP_POS_MSEC)
        usable = math.isfinite(msec) and (msec > 0 or (msec == 0 and index == 0))  # a video starts at 0 or later
        seconds = msec / 1000 if usable else -1.0
        if seconds <= self._last_seconds:
            seconds = max(index / self.fps, self._last_seconds + 1e-6)
        self._last_seconds = seconds
        return seconds

    def close(self) -> None:
        self.capture.release()  # a second call does nothing

    def read(self) -> np.ndarray | None:
        try:
            ok, frame = self.capture.read()
        except cv2.error as exc:
            raise DamagedVideo(self.path, f"frame cannot be decoded ({exc.err})") from None
        return frame if ok else None

    def check_complete(self, frames_read: int) -> None:
        missing = self.frame_count - frames_read
        if self.frame_count and missing > max(FRAME_COUNT_SLACK, FRAME_COUNT_TOLERANCE * self.frame_count):
            raise DamagedVideo(self.path, f"frame {frames_read + 1} of {self.frame_count} cannot be read "
                               "(the file is damaged or truncated)")


def open_capture(source: int | str) -> cv2.VideoCapture | None:
    """An opened capture of a camera index, device or URL; None when it does not open."""
    capture = cv2.VideoCapture(source)
    if capture.isOpened():
        return capture
    capture.release()
    return None


def is_device(path: Path) -> bool:
    """A character device (a V4L2 camera, /dev/video0): opened as a capture, not read as a file."""
    try:
        return path.is_char_device()
    except OSError:
        return False


def live_input(source: int | str | Path) -> int | str | None:
    """What to open live: a camera index (an int, or digits naming no file), a device such as /dev/video0 or a
    stream URL; None for a saved file (or a path that names nothing, for VideoSource to refuse)."""
    if isinstance(source, int):
        return source
    text = str(source)
    if "://" in text:
        return text
    if Path(text).is_file():
        return None
    if re.fullmatch(r"-?\d+", text.strip()):
        return int(text)
    return text if is_device(Path(text)) else None


class LiveSource:
    """A camera (index 0 or more, or a device such as /dev/video0) or a stream URL: frames as they arrive, timed
    from the first one, until the source stops giving them (a camera: never; break out of the loop).

    Raises MediaError at once for a source that cannot be opened or gives no first frame: a missing camera
    would otherwise look like a video without frames."""

    def __init__(self, source: int | str, open_source: Callable[[int | str], cv2.VideoCapture | None] | None = None):
        if isinstance(source, bool) or (isinstance(source, int) and source < 0):
            raise MediaError(f"{source}: a camera index is 0 or more")
        self.path = source  # named as VideoSource's, for summaries
        what = "the camera" if isinstance(source, int) else "the stream" if "://" in source else "the device"
        self.what = what
        level = cv2.utils.logging.getLogLevel()
        cv2.utils.logging.setLogLevel(cv2.utils.logging.LOG_LEVEL_SILENT)  # its warnings would surround our line
        try:
            self.capture = (open_source or open_capture)(source)
            if self.capture is None:
                raise MediaError(f"{source}: {what} cannot be opened")
            ok, self.first_frame = self.capture.read()
            if not ok or self.first_frame is None:
                self.capture.release()
                raise MediaError(f"{source}: {what} opens but gives no frame")
        finally:
            cv2.utils.logging.setLogLevel(level)
        self.height, self.width = self.first_frame.shape[:2]
        fps = self.capture.get(cv2.CAP_PROP_FPS)  # what the camera says it delivers: an annotated video's rate
        self.fps = fps if math.isfinite(fps) and 0 < fps <= 1000 else DEFAULT_FPS
        self.frame_count = 0  # unknown: it runs until stopped
        self.stopped: str | None = None  # why frames() ended of itself (the source stopped or failed); None before

    @property
    def size(self) -> tuple[int, int]:
        return self.width, self.height

    def frames(self) -> Iterator[tuple[int, float, np.ndarray]]:
        """(index, seconds since the first frame, BGR frame) until a read fails (`stopped` then says how);
        closing releases the source."""
        index, frame, start = 0, self.first_frame, None
        try:
            while frame is not None:
                now = live_clock()
                start = now if start is None else start
                yield index, now - start, frame
                index += 1
                frame = self.read()
        finally:
            self.close()

    def read(self) -> np.ndarray | None:
        try:
            ok, frame = self.capture.read()
        except cv2.error as exc:  # a stream's decoder failing midway: what was recorded so far still stands
            self.stopped = f"{self.what} failed ({exc.err or exc})"
            return None
        if not ok or frame is None:
            self.stopped = f"{self.what} stopped giving frames"
            return None
        return frame

    def close(self) -> None:
        if self.capture is not None:  # once: the frame loop and its caller both close
            self.capture.release()
            self.capture = None


def open_video(video: int | str | Path) -> VideoSource | LiveSource:
    """A saved video file as a VideoSource; a camera index, device or stream URL (see `live_input`) as a
    LiveSource."""
    live = live_input(video)
    return VideoSource(video) if live is None else LiveSource(live)
