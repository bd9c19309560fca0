"""The server-side source (camera, looped file or URL) as a stream of annotated JPEG frames.

One `FrameBroadcaster` thread owns the capture and a FaceStream and serves every viewer: it starts
with the first viewer and stops when none has watched for `stream_idle_s`. Viewers wait on a
Condition for the newest JPEG, so a slow or departed viewer never slows the others down. A source
that drops is reopened with exponential back-off; meanwhile viewers get a frame saying so, and
`status()["error"]` says it too (the page shows it). `check_source` refuses at start a source that
cannot work at all (`ferkit serve` calls it before loading the model).
"""

from __future__ import annotations

import logging
import threading
import time
from pathlib import Path
from typing import Callable

import cv2
import numpy as np

from ...config import ServeConfig
from ...errors import MediaError
from ...inference.pipeline import Pipeline
from ...video.source import LiveSource, VideoSource, live_input, open_capture
from ...vision.draw import draw_faces, encode_jpeg
from .limits import Busy

BOUNDARY = "frame"
FIRST_RETRY_S, LAST_RETRY_S = 0.5, 8.0  # reopening a dropped source: exponential backoff between these
VIEWER_WAIT_S = 5.0  # a waiting viewer re-checks that the capture thread still runs this often
log = logging.getLogger(__name__)


def parse_source(source: str | int | None) -> int | str | None:
    """'0' -> camera 0; any other text is a video file or a stream URL; None or '' -> no source."""
    if source is None or not str(source).strip():
        return None
    text = str(source).strip()
    return int(text) if text.isdigit() else text


def check_source(source: str | int | None,
                 open_source: Callable[[int | str], cv2.VideoCapture | None] | None = None) -> None:
    """MediaError (one line) for a --source that cannot work, said at start: reopening with back-off
    is for a source that worked and then dropped. A local path must be a video with a readable
    frame; a camera index (0 or more), a device such as /dev/video0 or a URL must open and give
    a frame now."""
    source = parse_source(source)
    if source is None:
        return
    live = live_input(source)  # "-1" naming no file is a camera index, which LiveSource refuses
    try:
        if live is not None:
            LiveSource(live, open_source or open_capture).close()
        else:
            VideoSource(source).close()
    except MediaError as exc:
        raise MediaError(f"--source {exc}") from None


def mjpeg_part(jpeg: bytes) -> bytes:
    header = f"--{BOUNDARY}\r\nContent-Type: image/jpeg\r\nContent-Length: {len(jpeg)}\r\n\r\n"
    return header.encode() + jpeg + b"\r\n"


def message_frame(text: str, size=(640, 360)) -> np.ndarray:
    """A dark frame with one line of text: what viewers see while the source is unavailable."""
    frame = np.full((size[1], size[0], 3), 40, np.uint8)
    cv2.putText(frame, text, (16, size[1] // 2), cv2.FONT_HERSHEY_SIMPLEX, 0.55, (230, 230, 230), 1, cv2.LINE_AA)
    return frame


class Viewer:
    """One viewer's MJPEG parts, an iterator the WSGI server closes when the client goes away.

    A class rather than a generator: a generator that never started runs no `finally` when it
    is closed, so a viewer who left before the first frame would be counted forever."""

    def __init__(self, broadcaster: "FrameBroadcaster"):
        self._broadcaster, self._seen, self._closed = broadcaster, broadcaster._sequence, False

    def __iter__(self):
        return self

    def __next__(self) -> bytes:
        if self._closed:
            raise StopIteration
        jpeg, self._seen = self._broadcaster._next_frame(self._seen)
        if jpeg is None:  # the server is closing
            self.close()
            raise StopIteration
        return mjpeg_part(jpeg)

    def close(self) -> None:
        if not self._closed:
            self._closed = True
            self._broadcaster._leave()


class FrameBroadcaster:
    def __init__(self, pipeline: Pipeline, cfg: ServeConfig,
                 open_source: Callable[[int | str], cv2.VideoCapture | None] = open_capture,
                 max_viewers: int | None = None):
        self.pipeline, self.cfg, self.open_source = pipeline, cfg, open_source
        # Each viewer holds a server thread for as long as it watches: leave some for everything else.
        self.max_viewers = max_viewers or max(1, cfg.threads // 2)
        self.source = parse_source(cfg.source)
        # A file plays to its end and starts again at once; a camera or URL that stops is reopened later.
        self.loops = isinstance(self.source, str) and Path(self.source).is_file()
        self._cond = threading.Condition()
        self._closing = threading.Event()
        self._thread: threading.Thread | None = None
        self._jpeg: bytes | None = None
        self._sequence = 0  # number of frames published so far
        self._viewers = 0
        self._last_viewer_seen = time.monotonic()
        self.opens = 0  # successful (re)opens of the source
        self.fps = 0.0  # video frames published per second, smoothed; 0 while none come (stopped, reconnecting)
        self._published_at: float | None = None
        self.error: str | None = None

    @property
    def configured(self) -> bool:
        return self.source is not None

    @property
    def running(self) -> bool:
        return self._thread is not None and self._thread.is_alive()

    def status(self) -> dict:
        return {"configured": self.configured, "running": self.running, "viewers": self._viewers,
                "fps": round(self.fps, 1), "frames": self._sequence, "error": self.error}

    # --- viewers ---------------------------------------------------------------------------------
    def viewer(self) -> Viewer:
        """A new viewer of the newest frames (starts the capture if needed); Busy when full."""
        with self._cond:
            if self._closing.is_set():
                raise Busy("the server is shutting down", status=503, retry_after=5)
            if self._viewers >= self.max_viewers:
                raise Busy(f"the live stream already has its maximum of {self.max_viewers} viewers",
                           status=503, retry_after=5)
            self._viewers += 1
            self._last_viewer_seen = time.monotonic()
            self._start_if_stopped()
            return Viewer(self)

    def _leave(self) -> None:
        with self._cond:
            self._viewers -= 1
            self._last_viewer_seen = time.monotonic()

    def _start_if_stopped(self) -> None:
        """Called with the lock held; the thread clears self._thread under the same lock when it stops."""
        if self._thread is None and not self._closing.is_set():
            self._thread = threading.Thread(target=self._run, name="ferkit-video-feed", daemon=True)
            self._thread.start()

    def _next_frame(self, seen: int) -> tuple[bytes | None, int]:
        """Wait for a frame newer than number `seen`; (None, seen) once the server closes."""
        with self._cond:
            while self._sequence == seen and not self._closing.is_set():
                if not self._cond.wait(VIEWER_WAIT_S):
                    self._start_if_stopped()  # only if it died of an error: idle stops need zero viewers
            if self._closing.is_set():
                return None, seen
            return self._jpeg, self._sequence

    def close(self) -> None:
        self._closing.set()
        with self._cond:
            self._cond.notify_all()
            thread = self._thread
        if thread is not None:
            thread.join(timeout=5)

    # --- the capture thread ----------------------------------------------------------------------
    def _should_stop(self) -> bool:
        with self._cond:
            idle = self._viewers == 0 and time.monotonic() - self._last_viewer_seen > self.cfg.stream_idle_s
            if idle or self._closing.is_set():
                self._thread, self.fps = None, 0.0
                return True
            return False

    def _publish(self, jpeg: bytes, video: bool = True) -> None:
        """Hand `jpeg` to the viewers; a video frame (not a message frame) also counts towards the fps."""
        now = time.monotonic()
        if video and self._published_at is not None:  # a moving average of intervals, not of rates (less biased)
            interval = max(now - self._published_at, 1e-3)
            self.fps = 1.0 / interval if not self.fps else 1.0 / (0.9 / self.fps + 0.1 * interval)
        if video:
            self._published_at = now
        with self._cond:
            self._jpeg = jpeg
            self._sequence += 1
            self._cond.notify_all()

    def _run(self) -> None:
        try:
            self._capture_loop()
        except Exception as exc:  # never leave viewers waiting on a dead thread without a word
            log.exception("video feed stopped")
            self.error, self.fps = f"video feed stopped: {exc}", 0.0
            with self._cond:
                self._thread = None

    def _capture_loop(self) -> None:
        capture, retry_s = None, FIRST_RETRY_S
        try:
            while not self._should_stop():
                if capture is None:
                    capture = self.open_source(self.source)
                    if capture is None:
                        retry_s = self._retry_later("video source unavailable; retrying", retry_s)
                        continue
                    self.opens += 1
                    self.error, self.fps, self._published_at = None, 0.0, None
                    stream, frames_read, due = self.pipeline.stream(), 0, time.monotonic()
                    interval = 1.0 / self._target_fps(capture)
                try:
                    ok, frame = capture.read()
                except cv2.error:  # a stream's decoder failing midway: reopened like a stream that stopped
                    ok, frame = False, None
                if not ok or frame is None:
                    capture.release()
                    capture = None
                    if not (self.loops and frames_read):  # a file at its end loops at once; others wait
                        retry_s = self._retry_later("video source stopped; reopening", retry_s)
                    continue
                retry_s, frames_read = FIRST_RETRY_S, frames_read + 1
                faces = stream.process(frame)
                self._publish(encode_jpeg(draw_faces(frame, faces), self.cfg.jpeg_quality))
                due = self._pace(due, interval)
        finally:  # on errors too: a camera stays claimed until released
            if capture is not None:
                capture.release()

    def _target_fps(self, capture: cv2.VideoCapture) -> float:
        """The configured maximum, or a file's own frame rate when lower (files play at natural speed)."""
        source_fps = capture.get(cv2.CAP_PROP_FPS) if self.loops else 0.0
        fps = min(self.cfg.stream_max_fps, source_fps) if source_fps and source_fps > 0 else self.cfg.stream_max_fps
        return max(fps, 0.1)

    def _pace(self, due: float, interval: float) -> float:
        """Sleep until the next frame is due, without catching up on frames already late."""
        now = time.monotonic()
        due = max(due + interval, now)
        self._closing.wait(due - now)
        return due

    def _retry_later(self, message: str, seconds: float) -> float:
        """Show the message to viewers, wait `seconds`; the wait before the next retry (doubled, capped)."""
        self.error = f"{message} in {seconds:.1f} s"
        self.fps, self._published_at = 0.0, None  # no video comes meanwhile: the last rate would be stale
        self._publish(encode_jpeg(message_frame(self.error), self.cfg.jpeg_quality), video=False)
        self._closing.wait(seconds)
        return min(2 * seconds, LAST_RETRY_S)
