"""Reading saved videos: any container OpenCV's FFmpeg reads, with clear errors for bad files."""

from __future__ import annotations

import math
from collections.abc import Iterator
from pathlib import Path

import cv2
import numpy as np

from ..errors import MediaError
from ..files import is_utf8_name, printable, require_file

DEFAULT_FPS = 30.0  # when a container does not say
# CAP_PROP_FRAME_COUNT is an estimate for some containers (no_face.mp4 reports 98 frames and
# decodes 95), so a video counts as cut short only when it ends well before its reported length.
FRAME_COUNT_TOLERANCE = 0.05
FRAME_COUNT_SLACK = 3


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
            raise MediaError(f"{self.path}: frame cannot be decoded ({exc.err})") from None
        return frame if ok else None

    def check_complete(self, frames_read: int) -> None:
        missing = self.frame_count - frames_read
        if self.frame_count and missing > max(FRAME_COUNT_SLACK, FRAME_COUNT_TOLERANCE * self.frame_count):
            raise MediaError(f"{self.path}: frame {frames_read + 1} of {self.frame_count} cannot be read "
                             "(the file is damaged or truncated)")
