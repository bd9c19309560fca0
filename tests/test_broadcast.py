"""The MJPEG FrameBroadcaster (ferkit.web.engines.broadcast) driven directly, without Flask: scripted
captures, a scripted clock and a scripted `_closing` event whose waits advance that clock, so the
capture loop runs synchronously in the test's own thread and every wait it makes is recorded.

Pinned exactly: an MJPEG part's bytes, the message frame's pixels, the frame-rate arithmetic, the
reopen back-off sequence, what `_publish` stores (frame, count, smoothed fps) and whom it wakes,
and what a viewer sees (each new frame once, the newest one, the end when the server closes)."""

from __future__ import annotations

import logging
import threading
import time
from types import SimpleNamespace

import ferkit  # noqa: F401, I001  (before cv2, as everywhere in the tests)
import cv2
import numpy as np
import pytest

from conftest import FakeCapture, write_video
from ferkit.config import ServeConfig
from ferkit.vision.draw import encode_jpeg
from ferkit.web.engines import broadcast
from ferkit.web.engines.broadcast import FrameBroadcaster, mjpeg_part, message_frame
from ferkit.web.engines.limits import Busy

QUALITY = 55  # not encode_jpeg's default, so a call that drops the configured quality shows


# --- scripted helpers ------------------------------------------------------------------------------

class Clock:
    def __init__(self, now: float = 100.0):
        self.now = now

    def monotonic(self) -> float:
        return self.now


class ScriptedClosing:
    """Stands in for the broadcaster's `_closing` Event: each wait is recorded and advances the clock
    instead of sleeping; after `stop_after` waits it is set (the loop then ends)."""

    def __init__(self, clock: Clock, stop_after: int = 1000):
        self.clock, self.stop_after, self.waits, self._set = clock, stop_after, [], False

    def wait(self, seconds=None) -> bool:
        self.waits.append(seconds)
        self.clock.now += seconds
        if len(self.waits) >= self.stop_after:
            self._set = True
        return self._set

    def is_set(self) -> bool:
        return self._set

    def set(self) -> None:
        self._set = True


class FpsCapture(FakeCapture):
    """FakeCapture reporting `fps` for CAP_PROP_FPS (and 0 for any other property); counts releases."""

    def __init__(self, frames: int, fps: float = 0.0):
        super().__init__(frames)
        self.fps, self.released = fps, 0

    def get(self, prop):
        return self.fps if prop == cv2.CAP_PROP_FPS else 0.0

    def release(self):
        self.released += 1


class NoFacesPipeline:
    """A Pipeline stand-in: streams that find no face (so a published frame is the frame itself)."""

    def __init__(self):
        self.streams = 0

    def stream(self):
        self.streams += 1
        return SimpleNamespace(process=lambda frame: [])


@pytest.fixture
def clock(monkeypatch) -> Clock:
    clock = Clock()
    monkeypatch.setattr(broadcast, "time", SimpleNamespace(monotonic=clock.monotonic))
    return clock


def make_broadcaster(source="0", open_source=lambda source: None, **serve) -> FrameBroadcaster:
    serve.setdefault("jpeg_quality", QUALITY)
    return FrameBroadcaster(NoFacesPipeline(), ServeConfig(source=source, **serve), open_source)


def scripted_loop(b: FrameBroadcaster, clock: Clock, stop_after: int) -> tuple[ScriptedClosing, list[bytes]]:
    """Run the capture loop in this thread until `stop_after` waits; (the waits, every published JPEG)."""
    closing = ScriptedClosing(clock, stop_after)
    b._closing = closing
    published = []
    original = b._publish
    b._publish = lambda jpeg, video=True: (published.append(jpeg), original(jpeg, video))[1]
    b._viewers = 1  # someone watches: the loop never stops for idleness
    b._capture_loop()
    return closing, published


def in_thread(function, timeout: float = 5.0):
    """function() in a helper thread; (finished, result). A hang shows as finished=False, not as a hung test."""
    result = {}
    thread = threading.Thread(target=lambda: result.setdefault("value", function()), daemon=True)
    thread.start()
    thread.join(timeout)
    return not thread.is_alive(), result.get("value")


def message_jpeg(text: str) -> bytes:
    return encode_jpeg(message_frame(text), QUALITY)


def frame_jpeg() -> bytes:
    """What FakeCapture's grey frame becomes when published (no faces drawn)."""
    return encode_jpeg(np.full((90, 120, 3), 128, np.uint8), QUALITY)


# --- parse_source, open_capture, mjpeg_part and message_frame ----------------------------------

@pytest.mark.parametrize(("source", "parsed"), [
    (None, None), ("", None), ("   ", None), ("0", 0), (" 12 ", 12), (3, 3),
    (" clip.mp4 ", "clip.mp4"), ("rtsp://127.0.0.1:9/x", "rtsp://127.0.0.1:9/x"), ("-1", "-1"),
])
def test_parse_source(source, parsed):
    assert broadcast.parse_source(source) == parsed


def test_open_capture(tmp_path):
    assert broadcast.open_capture(str(tmp_path / "missing.avi")) is None
    video = write_video(tmp_path / "clip.avi", 2, size=(32, 24))
    capture = broadcast.open_capture(str(video))
    try:
        assert capture is not None and capture.isOpened()
        ok, frame = capture.read()
        assert ok and frame.shape == (24, 32, 3)
    finally:
        capture.release()


def test_status_of_an_unconfigured_broadcaster():
    b = make_broadcaster(source=None)
    assert not b.configured
    assert b.status() == {"configured": False, "running": False, "viewers": 0, "fps": 0.0, "frames": 0,
                          "error": None}


def test_mjpeg_part_exact_bytes():
    assert mjpeg_part(b"\xff\xd8abc\xff\xd9") == (b"--frame\r\nContent-Type: image/jpeg\r\nContent-Length: 7\r\n\r\n"
                                                   b"\xff\xd8abc\xff\xd9\r\n")
    assert mjpeg_part(b"") == b"--frame\r\nContent-Type: image/jpeg\r\nContent-Length: 0\r\n\r\n\r\n"


def expected_message(text: str, size=(640, 360)) -> np.ndarray:
    frame = np.full((size[1], size[0], 3), 40, np.uint8)
    cv2.putText(frame, text, (16, size[1] // 2), cv2.FONT_HERSHEY_SIMPLEX, 0.55, (230, 230, 230), 1, cv2.LINE_AA)
    return frame


@pytest.mark.parametrize("size", [(640, 360), (200, 101)])
def test_message_frame_pixels(size):
    text = "video source unavailable; retrying in 0.5 s"
    frame = message_frame(text, size) if size != (640, 360) else message_frame(text)
    assert frame.dtype == np.uint8 and frame.shape == (size[1], size[0], 3)
    assert np.array_equal(frame, expected_message(text, size))
    # Independently of cv2's drawing: a dark background, light grey text from x=16 on, around mid-height.
    assert (frame[0, 0] == 40).all() and (frame[-1, -1] == 40).all()
    assert 200 <= frame.max() <= 230  # anti-aliased: the brightest pixels reach about 230
    assert (frame[..., 0] == frame[..., 1]).all() and (frame[..., 1] == frame[..., 2]).all()  # grey
    ys, xs = np.nonzero((frame != 40).any(axis=2))
    assert 15 <= xs.min() <= 18
    # The baseline at mid-height: capitals above it, descenders (y, ;) a few pixels below.
    assert size[1] // 2 - 14 <= ys.min() and ys.max() <= size[1] // 2 + 6


def test_message_frame_depends_on_its_text():
    assert not np.array_equal(message_frame("a"), message_frame("b"))
    assert not np.array_equal(message_frame("a"), np.full((360, 640, 3), 40, np.uint8))


# --- _target_fps -----------------------------------------------------------------------------------

@pytest.mark.parametrize(("source_fps", "expected"), [
    (15.0, 15.0),  # a file slower than the maximum plays at its own rate
    (60.0, 30.0),  # ... a faster one at the maximum
    (0.5, 0.5),
    (0.05, 0.1),  # never below 0.1 frames a second
    (0.0, 30.0),  # unknown: the maximum
    (-1.0, 30.0),
])
def test_target_fps_of_a_file(tmp_path, source_fps, expected):
    video = tmp_path / "clip.mp4"
    video.write_bytes(b"")
    b = make_broadcaster(str(video), stream_max_fps=30.0)
    assert b.loops
    assert b._target_fps(FpsCapture(0, source_fps)) == expected


@pytest.mark.parametrize("source_fps", [15.0, 0.5, 0.0])
def test_target_fps_of_a_camera_or_url_is_the_maximum(source_fps):
    for source in ("0", "rtsp://127.0.0.1:9/none"):
        b = make_broadcaster(source, stream_max_fps=12.0)
        assert not b.loops
        assert b._target_fps(FpsCapture(0, source_fps)) == 12.0


def test_target_fps_floor():
    assert make_broadcaster(stream_max_fps=0.01)._target_fps(FpsCapture(0)) == 0.1


# --- _publish --------------------------------------------------------------------------------------

def test_publish_stores_counts_and_smooths_the_frame_rate(clock):
    b = make_broadcaster()
    b._publish(b"one")
    assert (b._jpeg, b._sequence, b.fps, b._published_at) == (b"one", 1, 0.0, 100.0)
    clock.now = 100.5
    b._publish(b"two")
    assert (b._jpeg, b._sequence, b._published_at) == (b"two", 2, 100.5)
    assert b.fps == pytest.approx(2.0)  # the first interval alone
    clock.now = 100.75
    b._publish(b"three")
    assert b._sequence == 3 and b._published_at == 100.75
    assert b.fps == pytest.approx(1.0 / (0.9 / 2.0 + 0.1 * 0.25))  # 2.105...: intervals averaged, not rates
    clock.now = 101.75
    b._publish(b"four")
    previous = 1.0 / (0.9 / 2.0 + 0.1 * 0.25)
    assert b.fps == pytest.approx(1.0 / (0.9 / previous + 0.1 * 1.0))
    assert b.status() == {"configured": True, "running": False, "viewers": 0, "fps": round(b.fps, 1),
                          "frames": 4, "error": None}


def test_publish_at_the_same_instant_counts_a_millisecond(clock):
    b = make_broadcaster()
    b._publish(b"a")
    b._publish(b"b")
    assert b.fps == pytest.approx(1000.0)


def test_publish_wakes_a_waiting_viewer(monkeypatch):
    monkeypatch.setattr(broadcast, "VIEWER_WAIT_S", 60.0)
    b = make_broadcaster()
    b._thread = SimpleNamespace(is_alive=lambda: True)  # "running": a viewer's timeout would start nothing
    waiting = threading.Event()
    original_wait = b._cond.wait
    b._cond.wait = lambda timeout=None: (waiting.set(), original_wait(timeout))[1]
    try:
        thread_result = {}
        thread = threading.Thread(target=lambda: thread_result.setdefault("r", b._next_frame(0)), daemon=True)
        thread.start()
        assert waiting.wait(5)
        b._publish(b"new")
        thread.join(5)
        assert not thread.is_alive(), "a publish must wake the viewers waiting for a frame"
        assert thread_result["r"] == (b"new", 1)
    finally:
        b._closing.set()
        with b._cond:
            b._cond.notify_all()


# --- the back-off and the capture loop -------------------------------------------------------------

def test_retry_later_shows_the_message_waits_and_doubles(clock):
    b = make_broadcaster()
    closing = b._closing = ScriptedClosing(clock)
    assert b._retry_later("video source unavailable; retrying", 0.5) == 1.0
    assert closing.waits == [0.5]
    assert b.error == "video source unavailable; retrying in 0.5 s"
    assert b._jpeg == message_jpeg("video source unavailable; retrying in 0.5 s") and b._sequence == 1
    assert b._retry_later("x", 3.0) == 6.0
    assert b._retry_later("x", 5.0) == 8.0  # capped
    assert b._retry_later("x", 8.0) == 8.0
    assert b.error == "x in 8.0 s" and closing.waits == [0.5, 3.0, 5.0, 8.0]


def test_unavailable_source_backs_off_from_first_to_last_retry(clock):
    attempts = []
    b = make_broadcaster(open_source=lambda source: attempts.append(source))
    closing, published = scripted_loop(b, clock, stop_after=7)
    assert closing.waits == [0.5, 1.0, 2.0, 4.0, 8.0, 8.0, 8.0]
    assert attempts == [0] * 7 and b.opens == 0
    assert published == [message_jpeg(f"video source unavailable; retrying in {s:.1f} s")
                         for s in (0.5, 1.0, 2.0, 4.0, 8.0, 8.0, 8.0)]
    assert b.error == "video source unavailable; retrying in 8.0 s" and b._sequence == 7


def test_backoff_constants_are_read_when_used(clock, monkeypatch):
    monkeypatch.setattr(broadcast, "FIRST_RETRY_S", 0.25)
    monkeypatch.setattr(broadcast, "LAST_RETRY_S", 1.5)
    b = make_broadcaster()
    closing, _ = scripted_loop(b, clock, stop_after=5)
    assert closing.waits == [0.25, 0.5, 1.0, 1.5, 1.5]


def test_dropped_camera_is_reopened_and_a_frame_resets_the_backoff(clock):
    first, second = FpsCapture(2, fps=5.0), FpsCapture(1)
    outcomes = iter([first, None, None, second])
    b = make_broadcaster(open_source=lambda source: next(outcomes, None), stream_max_fps=4.0)
    closing, published = scripted_loop(b, clock, stop_after=8)
    # 2 frames paced at 1/4 s (a camera's own fps is not used), drop: 0.5, fails: 1, 2; reopened:
    # 1 frame (resets the back-off), drop: 0.5, fails: 1.
    assert closing.waits == [0.25, 0.25, 0.5, 1.0, 2.0, 0.25, 0.5, 1.0]
    assert published == [frame_jpeg(), frame_jpeg(), message_jpeg("video source stopped; reopening in 0.5 s"),
                         message_jpeg("video source unavailable; retrying in 1.0 s"),
                         message_jpeg("video source unavailable; retrying in 2.0 s"),
                         frame_jpeg(), message_jpeg("video source stopped; reopening in 0.5 s"),
                         message_jpeg("video source unavailable; retrying in 1.0 s")]
    assert b.opens == 2 and b.pipeline.streams == 2  # a fresh FaceStream per open
    assert first.released == 1 and second.released == 1
    assert b.error == "video source unavailable; retrying in 1.0 s"


def test_reopen_clears_the_error_and_the_frame_rate(clock):
    outcomes = iter([None, FpsCapture(3)])
    b = make_broadcaster(open_source=lambda source: next(outcomes, None), stream_max_fps=4.0)
    rates = []
    original = b._publish
    b._publish = lambda jpeg, video=True: (original(jpeg, video), rates.append(b.fps))
    closing, published = scripted_loop(b, clock, stop_after=3)  # the failed open, then two frames
    assert closing.waits == [0.5, 0.25, 0.25]
    assert b.error is None and b.opens == 1
    # the interval between the two frames only, not the message frame's; 0 once the loop stopped
    assert rates == [0.0, 0.0, pytest.approx(4.0)] and b.fps == 0.0


def test_the_frame_rate_is_zero_while_the_source_is_lost_and_once_the_feed_stops(clock):
    """Message frames ("retrying") are not video: the fps said while reconnecting or stopped is 0, not the last."""
    outcomes = iter([FpsCapture(3)])
    b = make_broadcaster(open_source=lambda source: next(outcomes, None), stream_max_fps=4.0)
    rates = []
    original = b._publish
    b._publish = lambda jpeg, video=True: (original(jpeg, video), rates.append(b.status()["fps"]))
    scripted_loop(b, clock, stop_after=5)  # 3 frames at 1/4 s, the drop, one failed reopen
    assert rates == [0.0, 4.0, 4.0, 0.0, 0.0]
    b._viewers, clock.now = 0, clock.now + 60.0
    b.fps = 4.0
    assert b._should_stop() and b.status()["fps"] == 0.0


def test_a_read_without_a_frame_is_a_drop_and_stopping_releases_the_open_capture(clock):
    class Glitchy(FpsCapture):
        def read(self):
            ok, frame = super().read()
            return (True, None) if not ok else (ok, frame)  # "ok" but no frame

    glitchy, last = Glitchy(1), FpsCapture(5)
    outcomes = iter([glitchy, last])
    b = make_broadcaster(open_source=lambda source: next(outcomes, None), stream_max_fps=4.0)
    closing, published = scripted_loop(b, clock, stop_after=4)
    assert closing.waits == [0.25, 0.5, 0.25, 0.25]
    assert published == [frame_jpeg(), message_jpeg("video source stopped; reopening in 0.5 s"),
                         frame_jpeg(), frame_jpeg()]
    assert glitchy.released == 1
    assert last.released == 1 and last.frames == 3  # the loop stopped with it open: released all the same


def test_a_decoder_error_mid_stream_is_a_drop_reopened_not_the_end_of_the_feed(clock):
    class Failing(FpsCapture):
        def read(self):
            if self.frames == 3:  # two frames read
                raise cv2.error("decoder: invalid NAL unit")
            return super().read()

    failing, last = Failing(5), FpsCapture(5)
    outcomes = iter([failing, last])
    b = make_broadcaster(open_source=lambda source: next(outcomes, None), stream_max_fps=4.0)
    closing, published = scripted_loop(b, clock, stop_after=4)
    assert closing.waits == [0.25, 0.25, 0.5, 0.25]
    assert published == [frame_jpeg(), frame_jpeg(), message_jpeg("video source stopped; reopening in 0.5 s"),
                         frame_jpeg()]
    assert failing.released == 1 and b.opens == 2 and b.error is None


def test_a_file_loops_at_once_at_its_end_and_plays_at_its_own_rate(clock, tmp_path):
    video = tmp_path / "clip.mp4"
    video.write_bytes(b"")
    captures = [FpsCapture(2, fps=2.0), FpsCapture(1, fps=2.0), FpsCapture(0, fps=2.0)]
    outcomes = iter(captures)
    b = make_broadcaster(str(video), open_source=lambda source: next(outcomes, None), stream_max_fps=30.0)
    closing, published = scripted_loop(b, clock, stop_after=5)
    # 2 frames at 1/2 s, end: reopened at once, 1 frame, end: at once, an empty file: wait 0.5, open fails: 1.0
    assert closing.waits == [0.5, 0.5, 0.5, 0.5, 1.0]
    assert published[:3] == [frame_jpeg()] * 3
    assert published[3:] == [message_jpeg("video source stopped; reopening in 0.5 s"),
                             message_jpeg("video source unavailable; retrying in 1.0 s")]
    assert b.opens == 3 and [c.released for c in captures] == [1, 1, 1]


def test_pace_does_not_catch_up_on_late_frames(clock):
    b = make_broadcaster()
    closing = b._closing = ScriptedClosing(clock)
    assert b._pace(100.0, 0.25) == 100.25 and closing.waits == [0.25]
    clock.now = 101.0  # late
    assert b._pace(100.25, 0.25) == 101.0 and closing.waits == [0.25, 0.0]


def test_capture_loop_stops_when_no_one_watched_for_stream_idle_s(clock):
    b = make_broadcaster(stream_idle_s=2.0)
    b._thread = "capture thread"
    b._closing = ScriptedClosing(clock)
    clock.now = 102.0
    assert not b._should_stop() and b._thread == "capture thread"
    clock.now = 102.01
    b._viewers = 1
    assert not b._should_stop()
    b._viewers = 0
    assert b._should_stop() and b._thread is None


def test_capture_thread_error_is_logged_and_shown(caplog):
    def explode(source):
        raise RuntimeError("camera exploded")

    b = make_broadcaster(open_source=explode, stream_idle_s=60.0)
    b._thread = "this thread"
    with caplog.at_level(logging.ERROR, logger=broadcast.__name__):
        b._run()  # catches: a capture thread never dies silently
    assert b._thread is None and not b.running
    assert b.error == "video feed stopped: camera exploded" and b.status()["error"] == b.error
    records = [r for r in caplog.records if r.name == broadcast.__name__]
    assert [r.getMessage() for r in records] == ["video feed stopped"]
    assert records[0].exc_info[0] is RuntimeError


# --- viewers ---------------------------------------------------------------------------------------

def blocking_run(b: FrameBroadcaster):
    """Replace the capture thread's body: it records that it started and waits for `release`."""
    started, release = [], threading.Event()
    b._run = lambda: (started.append(threading.current_thread()), release.wait(10))
    return started, release


def test_viewer_refused_while_the_server_closes():
    b = make_broadcaster()
    b.close()
    with pytest.raises(Busy) as refused:
        b.viewer()
    assert str(refused.value) == "the server is shutting down"
    assert (refused.value.status, refused.value.retry_after) == (503, 5)
    assert b._viewers == 0 and b._thread is None  # no thread starts while closing


def test_viewer_refused_when_full_and_one_capture_thread_for_all(clock):
    b = FrameBroadcaster(NoFacesPipeline(), ServeConfig(source="0"), lambda source: None, max_viewers=2)
    started, release = blocking_run(b)
    thread = None
    try:
        clock.now = 123.0
        first = b.viewer()
        assert b._last_viewer_seen == 123.0 and b._viewers == 1
        thread = b._thread
        assert thread.name == "ferkit-video-feed" and thread.daemon is True and thread.is_alive()
        clock.now = 124.0
        second = b.viewer()
        assert b._thread is thread and b._last_viewer_seen == 124.0 and b._viewers == 2
        with pytest.raises(Busy) as refused:
            b.viewer()
        assert str(refused.value) == "the live stream already has its maximum of 2 viewers"
        assert (refused.value.status, refused.value.retry_after) == (503, 5)
        assert b._viewers == 2
        clock.now = 130.0
        second.close()
        second.close()  # twice: counted once
        assert b._viewers == 1 and b._last_viewer_seen == 130.0
        first.close()
        assert b._viewers == 0
        assert b.status()["viewers"] == 0
    finally:
        release.set()
        if thread is not None:
            thread.join(5)
    assert len(started) == 1


def test_max_viewers_defaults_to_half_the_threads():
    assert make_broadcaster(threads=8).max_viewers == 4
    assert make_broadcaster(threads=5).max_viewers == 2
    assert make_broadcaster(threads=1).max_viewers == 1


def test_start_if_stopped_starts_one_thread():
    b = make_broadcaster()
    started, release = blocking_run(b)
    try:
        with b._cond:
            b._start_if_stopped()
            thread = b._thread
            b._start_if_stopped()
        assert b._thread is thread and thread.daemon is True
    finally:
        release.set()
        thread.join(5)
    assert len(started) == 1


def test_viewer_gets_each_new_frame_once_the_newest_and_stops_when_the_server_closes():
    b = make_broadcaster()
    started, release = blocking_run(b)
    b._publish(b"old")  # before the viewer came: not shown to it
    viewer = b.viewer()
    try:
        assert iter(viewer) is viewer
        b._publish(b"first")
        assert next(viewer) == mjpeg_part(b"first")
        b._publish(b"second")
        b._publish(b"third")
        assert next(viewer) == mjpeg_part(b"third")  # the newest, not a backlog
        pending = Pending(b, lambda: next(viewer))  # nothing new: it waits ...
        b._publish(b"fourth")
        assert pending.result() == mjpeg_part(b"fourth")  # ... for the next one
    finally:
        release.set()
    b.close()
    with pytest.raises(StopIteration):
        next(viewer)
    assert b._viewers == 0
    with pytest.raises(StopIteration):
        next(viewer)
    assert b._viewers == 0 and len(started) == 1


class Pending:
    """function() running in a helper thread, returned once it waits on the broadcaster's condition."""

    def __init__(self, b: FrameBroadcaster, function):
        waiting, original_wait = threading.Event(), b._cond.wait
        b._cond.wait = lambda timeout=None: (waiting.set(), original_wait(timeout))[1]
        self._result = {}
        self._thread = threading.Thread(target=lambda: self._result.setdefault("value", function()), daemon=True)
        self._thread.start()
        assert waiting.wait(5), "it should be waiting for a frame"
        b._cond.wait = original_wait

    def result(self, timeout: float = 5.0):
        self._thread.join(timeout)
        assert not self._thread.is_alive(), "still waiting"
        return self._result["value"]


def test_viewer_waiting_when_the_server_closes_stops():
    b = make_broadcaster()
    started, release = blocking_run(b)
    viewer = b.viewer()
    result = {}

    def watch():
        try:
            next(viewer)
            result["got"] = "a frame"
        except StopIteration:
            result["got"] = "the end"

    thread = threading.Thread(target=watch, daemon=True)
    thread.start()
    release.set()
    b.close()
    thread.join(5)
    assert result == {"got": "the end"} and b._viewers == 0


def test_a_waiting_viewer_restarts_a_capture_thread_that_died(monkeypatch):
    monkeypatch.setattr(broadcast, "VIEWER_WAIT_S", 0.01)
    b = make_broadcaster()
    runs = []
    b._run = lambda: (runs.append(1), b._publish(b"back"))
    b._sequence = 5  # frames came, then the thread died (and cleared itself)
    try:
        finished, result = in_thread(lambda: b._next_frame(5))
        assert finished, "a viewer must restart a dead capture thread after VIEWER_WAIT_S"
        assert result == (b"back", 6) and runs == [1]
    finally:
        b.close()


def test_next_frame_returns_at_once_when_closing():
    b = make_broadcaster()
    b._publish(b"x")
    b._closing.set()
    assert b._next_frame(0) == (None, 0)
    assert b._next_frame(1) == (None, 1)


# --- survivors of the mutmut run of the fifth session ----------------------------------------------

def test_each_captured_frame_goes_to_the_stream_as_read(clock):
    class Numbered(FakeCapture):  # frame i is filled with 10 * i, so frames can be told apart
        def read(self):
            ok, frame = super().read()
            return ok, (None if frame is None else np.full_like(frame, 10 * (3 - self.frames)))

    seen = []
    b = make_broadcaster(open_source=lambda source: Numbered(3), stream_max_fps=4.0)
    b.pipeline.stream = lambda: SimpleNamespace(process=lambda frame: seen.append(frame) or [])
    scripted_loop(b, clock, stop_after=3)
    assert [int(frame[0, 0, 0]) for frame in seen] == [10, 20, 30]
    assert all(frame.shape == (90, 120, 3) for frame in seen)


def test_status_rounds_fps_to_one_decimal():
    b = make_broadcaster()
    b.fps = 12.3456
    assert b.status()["fps"] == 12.3
    b.fps = 7.06
    assert b.status()["fps"] == 7.1


def test_close_waits_for_the_capture_thread_to_end():
    b = make_broadcaster()
    ended = threading.Event()

    def capture():  # stands in for the capture loop: ends a little after the server starts closing
        b._closing.wait(5)
        time.sleep(0.2)
        ended.set()

    b._thread = threading.Thread(target=capture, daemon=True)
    b._thread.start()
    b.close()
    assert ended.is_set() and not b._thread.is_alive()
