"""VideoSource (ferkit.video.source) pinned exactly: the checks on opening (empty, image, unreadable,
no first frame) word for word, the fps bounds and their fallback, the frame count, the frame
timestamps of `seconds()`, `read()` and the truncated-file check of `check_complete()` at its
boundaries.

Most cases cannot come from a real file (a backend reporting fps 1000.5, a first read of
(True, None), a timestamp of NaN), so a scripted stand-in for cv2.VideoCapture plays them; a few
tests use real files written by conftest.write_video to show the same rules on OpenCV itself.
"""

from __future__ import annotations

import os
import subprocess
import sys

import cv2
import numpy as np
import pytest
from conftest import run_ferkit, write_video

from ferkit.errors import MediaError
from ferkit.video import source as source_module
from ferkit.video.source import DEFAULT_FPS, VideoSource

FRAME = np.full((6, 8, 3), 7, np.uint8)  # height 6, width 8
NAN, INF = float("nan"), float("inf")


class ScriptedCapture:
    """Stands in for cv2.VideoCapture: `reads` are what read() returns in turn (an exception in the
    list is raised instead), `props` what get() returns per property (a list: one value per call,
    the last one repeated)."""

    def __init__(self, reads=((True, FRAME),), props=None, opened=True):
        self.reads = list(reads)
        self.props = {cv2.CAP_PROP_FPS: 20.0, cv2.CAP_PROP_FRAME_COUNT: 0.0, cv2.CAP_PROP_POS_MSEC: 0.0,
                      **(props or {})}
        self.opened = opened
        self.released = 0

    def isOpened(self):  # noqa: N802 (OpenCV's name)
        return self.opened

    def read(self):
        result = self.reads.pop(0) if self.reads else (False, None)
        if isinstance(result, BaseException):
            raise result
        return result

    def get(self, prop):
        value = self.props[prop]
        if isinstance(value, list):
            return value.pop(0) if len(value) > 1 else value[0]
        return value

    def release(self):
        self.released += 1


@pytest.fixture
def fake_file(tmp_path):
    """A non-empty file that is no image (so VideoSource hands it to the capture)."""
    path = tmp_path / "clip.mp4"
    path.write_bytes(b"scripted, not decoded\n" * 4)
    assert not cv2.haveImageReader(str(path))
    return path


@pytest.fixture
def scripted(monkeypatch, fake_file):
    """scripted(reads=..., props=..., opened=...) -> (VideoSource or the MediaError, the capture).
    cv2.VideoCapture inside ferkit.video.source is replaced by one ScriptedCapture for the call."""

    def open_source(**kwargs):
        capture = ScriptedCapture(**kwargs)
        opened_paths = []

        def video_capture(path):
            opened_paths.append(path)
            return capture

        monkeypatch.setattr(source_module.cv2, "VideoCapture", video_capture)
        try:
            result = VideoSource(fake_file)
        except MediaError as error:
            result = error
        assert opened_paths == [str(fake_file)]
        return result, capture

    return open_source


def real_error() -> cv2.error:
    """A cv2.error as OpenCV raises it (with .err set): converting an empty image."""
    try:
        cv2.cvtColor(np.zeros((0, 0), np.uint8), cv2.COLOR_GRAY2BGR)
    except cv2.error as error:
        return error
    raise AssertionError("cvtColor of an empty image did not fail")


# --- opening ---------------------------------------------------------------------------------------

def test_an_empty_file_is_refused_as_empty(tmp_path):
    path = tmp_path / "empty.mp4"
    path.write_bytes(b"")
    with pytest.raises(MediaError) as error:
        VideoSource(path)
    assert str(error.value) == f"{path}: the file is empty"  # size 0: the empty-file check


def test_a_one_byte_file_is_not_empty_but_no_video(tmp_path):
    """One byte is not an empty file (size 1 != 0), so it reaches OpenCV, which cannot open it."""
    path = tmp_path / "one.mp4"
    path.write_bytes(b"x")
    with pytest.raises(MediaError) as error:
        VideoSource(path)
    assert str(error.value) == f"{path}: not a video OpenCV can read (corrupt, or an unsupported format)"


def test_an_image_is_refused_before_opening(tmp_path, monkeypatch):
    path = tmp_path / "photo.png"
    assert cv2.imwrite(str(path), FRAME)
    monkeypatch.setattr(source_module.cv2, "VideoCapture", lambda p: pytest.fail("an image was opened as video"))
    with pytest.raises(MediaError) as error:
        VideoSource(path)
    assert str(error.value) == f"{path}: is an image, not a video (use `ferkit predict` for images)"


def test_a_name_that_is_not_utf8_is_refused_before_opencv_sees_it(tmp_path):
    # cv2.haveImageReader crashed (segfault) on it; run in a fresh interpreter so a crash fails only this test
    video = write_video(tmp_path / "v.mp4", 3).rename(tmp_path / os.fsdecode(b"v\xff.mp4"))
    probe = "import sys; from ferkit.video.source import VideoSource; VideoSource(sys.argv[1])"
    done = subprocess.run([sys.executable, "-c", probe, str(video)], capture_output=True, text=True, timeout=120)
    assert done.returncode == 1 and done.stderr.splitlines()[-1] == \
           f"ferkit.errors.MediaError: {tmp_path}/v\\xff.mp4: the file name is not valid UTF-8; rename it"
    done = run_ferkit("video", video, "--csv", tmp_path / "f.csv")
    assert (done.returncode, done.stdout) == (2, "")
    assert done.stderr == f"ferkit video: error: {tmp_path}/v\\xff.mp4: the file name is not valid UTF-8; rename it\n"
    assert sorted(p.name for p in tmp_path.iterdir()) == [video.name], "no output"


def test_a_capture_that_does_not_open(scripted, fake_file):
    error, _ = scripted(opened=False)
    assert isinstance(error, MediaError)
    assert str(error) == f"{fake_file}: not a video OpenCV can read (corrupt, or an unsupported format)"


@pytest.mark.parametrize("first_read", [
    (False, None),   # nothing read
    (True, None),    # "ok" but no frame: the frame is None, so still no readable frame
    (False, FRAME),  # a frame but not ok: ok is False, so still no readable frame
], ids=["false-none", "true-none", "false-frame"])
def test_no_readable_first_frame(scripted, fake_file, first_read):
    """Either half of `not ok or first_frame is None` alone refuses the file, and the capture is
    released before the error."""
    error, capture = scripted(reads=[first_read])
    assert isinstance(error, MediaError)
    assert str(error) == f"{fake_file}: no readable video frames (corrupt or not a video)"
    assert capture.released == 1


def test_the_first_frame_gives_the_size(scripted):
    source, capture = scripted(reads=[(True, FRAME)])
    assert source.first_frame is FRAME
    assert (source.width, source.height) == (8, 6) and source.size == (8, 6)  # shape (6, 8, 3)
    assert capture.released == 0


# --- fps -------------------------------------------------------------------------------------------

@pytest.mark.parametrize("reported, expected", [
    (20.0, 20.0),        # inside (0, 1000]: kept
    (0.5, 0.5),          # above 0, below 1: kept (the lower bound is 0, not 1)
    (1000.0, 1000.0),    # the upper bound itself: kept (<= 1000)
    (1e-3, 1e-3),        # just above 0: kept
    (0.0, DEFAULT_FPS),  # 0 is no frame rate: the default (0 < fps is strict)
    (-25.0, DEFAULT_FPS),   # negative: the default
    (1000.5, DEFAULT_FPS),  # above 1000 (and below 1001): the default
    (2000.0, DEFAULT_FPS),  # far above: the default
    (NAN, DEFAULT_FPS),     # not finite: the default
    (INF, DEFAULT_FPS),
    (-INF, DEFAULT_FPS),
])
def test_fps_bounds_and_fallback(scripted, reported, expected):
    source, _ = scripted(props={cv2.CAP_PROP_FPS: reported})
    assert DEFAULT_FPS == 30.0
    assert source.fps == expected


def test_fps_and_frame_count_of_a_real_file(tmp_path):
    video = write_video(tmp_path / "v.avi", 12, fps=25.0)
    source = VideoSource(video)
    assert (source.fps, source.frame_count, source.size) == (25.0, 12, (160, 120))
    source.close()


# --- frame count -----------------------------------------------------------------------------------

@pytest.mark.parametrize("reported, expected", [
    (98.0, 98),   # as reported
    (12.9, 12),   # int() truncates
    (1.0, 1),
    (0.0, 0),     # 0 stays 0: "unknown", not one frame
    (-1.0, 0),    # a negative estimate (some backends): clamped to 0, unknown
])
def test_frame_count(scripted, reported, expected):
    source, _ = scripted(props={cv2.CAP_PROP_FRAME_COUNT: reported})
    assert source.frame_count == expected


# --- frame times -----------------------------------------------------------------------------------

def times(scripted, msecs, fps=20.0, indexes=None):
    """seconds(i) for each i of `indexes` (0, 1, 2, ... by default), the backend reporting `msecs`
    in turn."""
    source, _ = scripted(props={cv2.CAP_PROP_FPS: fps, cv2.CAP_PROP_POS_MSEC: list(msecs)})
    return [source.seconds(i) for i in (indexes if indexes is not None else range(len(msecs)))]


def test_container_times_are_used_as_they_are(scripted):
    # finite and > 0 (or frame 0): msec / 1000, however uneven (a variable frame rate)
    assert times(scripted, [0, 40, 200, 240]) == [0.0, 0.04, 0.2, 0.24]


def test_a_first_frame_that_starts_late_keeps_its_time(scripted):
    assert times(scripted, [33, 66]) == [0.033, 0.066]


def test_sub_millisecond_times_count_as_container_times(scripted):
    """msec 1 (and 0.5) is > 0, so it is a container time: 0.001 s (0.0005 s), not index / fps (0.05)."""
    assert times(scripted, [0, 1]) == [0.0, 0.001]
    assert times(scripted, [0, 0.5]) == [0.0, 0.0005]


def test_zero_after_the_first_frame_means_no_time(scripted):
    # msec 0 counts as a time only for frame 0; later, 0 means "none": index / fps at 20 fps
    assert times(scripted, [0, 0, 0, 0]) == [0.0, 0.05, 0.1, 0.15]


def test_zero_for_a_later_frame_is_index_over_fps_even_as_the_first_call(scripted):
    """seconds(1) before any other call, msec 0: 0 is no time for frame 1 (only frame 0 may be at 0),
    so 1 / fps = 0.05, not 0.0; likewise seconds(3) = 3 / 20."""
    assert times(scripted, [0], indexes=[1]) == [0.05]
    assert times(scripted, [0], indexes=[3]) == [pytest.approx(0.15)]


@pytest.mark.parametrize("bad", [NAN, INF, -INF])
def test_a_first_frame_without_a_finite_time_is_at_zero(scripted, bad):
    """Not finite at frame 0: no container time (-1), which is not after the start (-1 <= -1), so
    max(0 / fps, -1 + 1e-6) = 0.0 exactly; never NaN, inf or negative."""
    assert times(scripted, [bad]) == [0.0]


@pytest.mark.parametrize("bad", [NAN, INF, -INF, -40.0])
def test_a_later_frame_without_a_usable_time_is_index_over_fps(scripted, bad):
    # frame 2 at 20 fps: 2 / 20 = 0.1 (above the last time 0.04 + 1e-6)
    assert times(scripted, [0, 40, bad]) == [0.0, 0.04, pytest.approx(0.1)]


@pytest.mark.parametrize("negative", [-1500.0, -40.0, -0.5])
def test_a_negative_first_time_is_zero(scripted, negative):
    # a negative container time is no time at all (a video starts at 0): frame 0 at 0 / fps = 0.0,
    # the next frames at their own times (before the fix -40 gave -0.04 and -1500 gave 0.0)
    assert times(scripted, [negative, 60]) == [0.0, 0.06]


def test_a_repeated_time_is_not_kept(scripted):
    """Frame 1 reports frame 0's 40 ms again: 0.04 <= 0.04 is not later, so the frame gets
    max(1 / 20, 0.04 + 1e-6) = 0.05; frame 2's equal 0.04 gets max(0.1, 0.05 + 1e-6) = 0.1."""
    assert times(scripted, [40, 40, 40]) == [0.04, 0.05, pytest.approx(0.1)]


def test_a_repeated_time_past_index_over_fps_moves_on_by_a_microsecond(scripted):
    # 500 ms twice at frame 0 and 1: max(1 / 20, 0.5 + 1e-6) = 0.500001
    assert times(scripted, [500, 500]) == [0.5, pytest.approx(0.5 + 1e-6, abs=1e-12)]


def test_a_time_running_backwards_is_never_used(scripted):
    # 0.1 then 0.05 (< 0.1): max(2 / 20, 0.1 + 1e-6) = 0.100001
    assert times(scripted, [0, 100, 50]) == [0.0, 0.1, pytest.approx(0.1 + 1e-6, abs=1e-12)]


def test_index_over_fps_uses_the_fallback_fps(scripted):
    # fps NaN -> 30: frame 3 without a time is at 3 / 30 = 0.1
    assert times(scripted, [0, 0, 0, 0], fps=NAN) == [0.0, pytest.approx(1 / 30), pytest.approx(2 / 30), 0.1]


def test_times_of_a_real_file(tmp_path):
    source = VideoSource(write_video(tmp_path / "v.mp4", 5, fps=20.0))
    assert [round(seconds, 6) for _, seconds, _ in source.frames()] == [0.0, 0.05, 0.1, 0.15, 0.2]


# --- reading ---------------------------------------------------------------------------------------

def test_read_returns_the_frame_when_ok(scripted):
    other = np.zeros((6, 8, 3), np.uint8)
    source, _ = scripted(reads=[(True, FRAME), (True, other)])
    assert source.read() is other


@pytest.mark.parametrize("result", [(False, FRAME), (False, None)], ids=["frame", "none"])
def test_read_returns_none_when_not_ok(scripted, result):
    source, _ = scripted(reads=[(True, FRAME), result])
    assert source.read() is None  # not ok: None, even with a frame beside it


def test_a_decoding_error_is_a_media_error(scripted, fake_file):
    error = real_error()
    source, _ = scripted(reads=[(True, FRAME), error])
    with pytest.raises(MediaError) as raised:
        source.read()
    assert str(raised.value) == f"{fake_file}: frame cannot be decoded ({error.err})"
    assert str(raised.value) == f"{fake_file}: frame cannot be decoded (!_src.empty())"
    assert raised.value.__cause__ is None and raised.value.__suppress_context__


def test_frames_yields_every_frame_then_closes(scripted):
    frames = [np.full((6, 8, 3), i, np.uint8) for i in range(3)]
    source, capture = scripted(reads=[(True, f) for f in frames],
                               props={cv2.CAP_PROP_FRAME_COUNT: 3.0, cv2.CAP_PROP_POS_MSEC: [0, 50, 100, 100]})
    got = list(source.frames())
    assert [(i, s) for i, s, _ in got] == [(0, 0.0), (1, 0.05), (2, 0.1)]
    assert all(frame is expected for (_, _, frame), expected in zip(got, frames))
    assert capture.released == 1


# --- check_complete --------------------------------------------------------------------------------

def source_of(scripted, frame_count):
    source, _ = scripted(props={cv2.CAP_PROP_FRAME_COUNT: float(frame_count)})
    assert source.frame_count == frame_count
    return source


# tolerance: more than max(3, 5% of the count) frames missing. 20 frames: max(3, 1.0) = 3;
# 200 frames: max(3, 10.0) = 10; 60 frames: max(3, 3.0) = 3; 1000 frames: 50.
@pytest.mark.parametrize("count, complete_from", [(20, 17), (60, 57), (200, 190), (1000, 950)])
def test_missing_frames_up_to_the_tolerance_are_fine(scripted, count, complete_from):
    source = source_of(scripted, count)
    for frames_read in (complete_from, complete_from + 1, count, count + 5):  # more than reported: fine too
        source.check_complete(frames_read)


@pytest.mark.parametrize("count, cut_at", [(20, 16), (60, 56), (200, 189), (1000, 949), (20, 0), (200, 1)])
def test_one_more_missing_frame_is_a_damaged_file(scripted, fake_file, count, cut_at):
    """cut_at frames read: the first one missing is frame cut_at + 1 (counting from 1)."""
    source = source_of(scripted, count)
    with pytest.raises(MediaError) as error:
        source.check_complete(cut_at)
    assert str(error.value) == (f"{fake_file}: frame {cut_at + 1} of {count} cannot be read "
                                "(the file is damaged or truncated)")


def test_exact_message_for_a_20_frame_video_cut_after_16(scripted, fake_file):
    source = source_of(scripted, 20)
    with pytest.raises(MediaError) as error:
        source.check_complete(16)  # 4 missing > 3: frame 17 is the first that cannot be read
    assert str(error.value) == f"{fake_file}: frame 17 of 20 cannot be read (the file is damaged or truncated)"


@pytest.mark.parametrize("frames_read", [0, 1, 500])
def test_an_unknown_frame_count_is_never_incomplete(scripted, frames_read):
    for reported in (0.0, -1.0):  # both mean unknown (frame_count 0): no check at all
        source, _ = scripted(props={cv2.CAP_PROP_FRAME_COUNT: reported})
        assert source.frame_count == 0
        source.check_complete(frames_read)


def test_frames_checks_completeness_at_the_end(scripted, fake_file):
    """20 reported, 16 decoded: every decoded frame is yielded, then the error names frame 17."""
    reads = [(True, FRAME)] * 16
    source, capture = scripted(reads=reads, props={cv2.CAP_PROP_FRAME_COUNT: 20.0})
    seen = []
    with pytest.raises(MediaError) as error:
        for index, _, _ in source.frames():
            seen.append(index)
    assert seen == list(range(16))
    assert str(error.value) == f"{fake_file}: frame 17 of 20 cannot be read (the file is damaged or truncated)"
    assert capture.released == 1


def test_frames_of_a_video_three_short_is_complete(scripted):
    source, _ = scripted(reads=[(True, FRAME)] * 17, props={cv2.CAP_PROP_FRAME_COUNT: 20.0})
    assert len(list(source.frames())) == 17  # 3 missing, not more than max(3, 1.0)
