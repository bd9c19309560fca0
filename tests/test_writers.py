"""ferkit.video.writers pinned down exactly: the codec per extension, the codec probe, the annotated
video writer (resizing, the frames it hands the encoder, its errors), the CSV writer's bytes, a
face's summary, the timeline figure (panels, limits, labels, legend, layout, size, file format) and
the gap insertion and stacking under it.

test_video.py runs these writers end to end through process_video; here each rule of the code is
checked with inputs chosen so that a changed constant, operator or argument gives another result.
"""

from __future__ import annotations

import cv2
import matplotlib
import numpy as np
import pytest
from conftest import video_frames

import ferkit.evaluation.plots as plots
import ferkit.video.writers as writers
from ferkit.errors import MediaError
from ferkit.inference.pipeline import Face
from ferkit.labels import CLASS_NAMES
from ferkit.video.writers import (AnnotatedVideoWriter, CsvWriter, FaceHistory, browser_video_format,
                                  can_write_video, plot_timeline, stack_with_gaps, video_fourcc, with_gaps)
from ferkit.vision.draw import EMOTION_COLOURS, draw_faces

FRAME_UNUSED = np.zeros((1, 1, 3), np.uint8)  # the CSV writer ignores the frame
# EMOTION_COLOURS are OpenCV's BGR 0-255; matplotlib wants RGB 0-1: reversed, divided by 255
RGB = [tuple(c / 255 for c in reversed(EMOTION_COLOURS[name])) for name in CLASS_NAMES]


def one_hot(name: str, strength: float = 0.7) -> np.ndarray:
    """Scores whose argmax is `name`: `strength` there, the rest shared evenly."""
    scores = np.full(len(CLASS_NAMES), (1 - strength) / (len(CLASS_NAMES) - 1))
    scores[CLASS_NAMES.index(name)] = strength
    return scores


# --- video_fourcc, can_write_video, browser_video_format ---------------------------------------

@pytest.mark.parametrize("name, fourcc", [("a.mp4", "mp4v"), ("b.M4V", "mp4v"), ("c.mov", "mp4v"),
                                          ("d.MKV", "mp4v"), ("e.Avi", "MJPG"), ("f.webm", "VP80")])
def test_video_fourcc_by_extension_in_any_case(name, fourcc):
    assert video_fourcc(name) == fourcc  # the suffix is lower-cased before the lookup


def test_video_fourcc_of_an_unsupported_extension_lists_the_supported_ones():
    # the message joins VIDEO_FOURCCS' keys, in their order, with ", "
    with pytest.raises(MediaError) as error:
        video_fourcc("clips/out.flv")
    assert str(error.value) == "clips/out.flv: unsupported video extension (use .mp4, .m4v, .mov, .mkv, .avi, .webm)"


@pytest.mark.parametrize("fourcc, suffix, expected", [
    ("MJPG", ".avi", True), ("mp4v", ".mp4", True), ("VP80", ".webm", True),  # in pip's OpenCV
    ("VP80", ".mp4", False),  # FFmpeg refuses VP8 in an MP4 container: the writer does not open
    ("ZZZZ", ".avi", False),  # no such codec
])
def test_can_write_video_in_this_opencv_build(fourcc, suffix, expected):
    assert can_write_video(fourcc, suffix) is expected


class RecordingVideoWriter:
    """Stands in for cv2.VideoWriter: keeps its arguments and a copy of every frame written."""

    made: list[RecordingVideoWriter] = []
    opens = True

    def __init__(self, path, fourcc, fps, size):
        self.path, self.fourcc, self.fps, self.size = path, fourcc, fps, size
        self.frames, self.released = [], 0
        RecordingVideoWriter.made.append(self)

    def isOpened(self):
        return self.opens

    def write(self, frame):
        self.frames.append(frame.copy())

    def release(self):
        self.released += 1


@pytest.fixture
def recorder(monkeypatch):
    """cv2.VideoWriter replaced by RecordingVideoWriter; the list of writers made."""
    monkeypatch.setattr(RecordingVideoWriter, "made", [])
    monkeypatch.setattr(cv2, "VideoWriter", RecordingVideoWriter)
    return RecordingVideoWriter.made


def test_the_probe_writes_frames_of_the_writers_own_size(recorder, monkeypatch):
    """A writer drops frames of another size (see test_writer_drops_frames_of_another_size_itself):
    the probe's frames must match the size it opened the writer with, or a working codec reads as
    broken. The probe's answer is whether the first frame reads back."""

    class Capture:
        def __init__(self, path):
            self.path = path

        def read(self):
            return True, np.zeros((64, 64, 3), np.uint8)

        def release(self):
            pass

    monkeypatch.setattr(cv2, "VideoCapture", Capture)
    assert can_write_video("MJPG", ".avi") is True
    (writer,) = recorder
    assert writer.path.endswith("probe.avi") and writer.fourcc == cv2.VideoWriter_fourcc(*"MJPG")
    assert len(writer.frames) == 2 and writer.released == 1
    assert [f.shape for f in writer.frames] == [(writer.size[1], writer.size[0], 3)] * 2
    assert [f.dtype for f in writer.frames] == [np.uint8] * 2
    assert writer.frames[0].max() < writer.frames[1].min()  # two different frames: dark, then bright


def test_writer_drops_frames_of_another_size_itself(tmp_path):
    """Why the probe and AnnotatedVideoWriter.add match the writer's size: OpenCV writes nothing
    for a frame of another size."""
    path = tmp_path / "drop.avi"
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"MJPG"), 10, (80, 60))
    for frame in video_frames(3, (160, 120)):
        writer.write(frame)
    writer.release()
    capture = cv2.VideoCapture(str(path))
    assert capture.read()[0] is False
    capture.release()


def test_the_probe_of_a_writer_that_does_not_open(recorder, monkeypatch):
    monkeypatch.setattr(RecordingVideoWriter, "opens", False)
    assert can_write_video("avc1", ".mp4") is False
    assert recorder[0].frames == []  # nothing is written to a writer that is not open


@pytest.mark.parametrize("writable, expected", [
    ({("avc1", ".mp4"), ("VP80", ".webm")}, ("avc1", ".mp4")),  # H.264 first
    ({("VP80", ".webm")}, ("VP80", ".webm")),  # then VP8
    (set(), ("mp4v", ".mp4")),  # else MPEG-4 part 2, which every build writes
])
def test_browser_video_format_order(monkeypatch, writable, expected):
    monkeypatch.setattr(writers, "can_write_video", lambda fourcc, suffix: (fourcc, suffix) in writable)
    assert browser_video_format.__wrapped__() == expected  # __wrapped__: past functools.cache


def test_browser_video_format_of_this_opencv_build():
    # pip's opencv-python(-headless) has no H.264 encoder (avc1 does not open) but writes VP8
    assert can_write_video("avc1", ".mp4") is False
    assert browser_video_format() == ("VP80", ".webm")


# --- AnnotatedVideoWriter ----------------------------------------------------------------------

FACES = [Face((20, 30, 50, 50), one_hot("happy"), face_id=3), Face((100, 10, 40, 60), one_hot("sad"), face_id=5)]


def test_annotated_writer_opens_the_partial_with_the_targets_codec(recorder, tmp_path):
    writer = AnnotatedVideoWriter(tmp_path / "p.avi", tmp_path / "out.avi", 12.5, (160, 120))
    (video,) = recorder
    assert (video.path, video.fourcc, video.fps, video.size) == (
        str(tmp_path / "p.avi"), cv2.VideoWriter_fourcc(*"MJPG"), 12.5, (160, 120))
    AnnotatedVideoWriter(tmp_path / "q.mp4", tmp_path / "out.mp4", 10, (160, 120), fourcc="VP80")
    assert recorder[1].fourcc == cv2.VideoWriter_fourcc(*"VP80")  # a given codec wins over the extension's
    assert writer.size == (160, 120)


def test_annotated_writer_writes_the_drawn_frame_unresized_at_its_own_size(recorder, tmp_path, monkeypatch):
    """A frame of the writer's size goes to the encoder exactly as draw_faces drew it, and is not
    passed through cv2.resize (an identity resize per frame is wasted work)."""
    resized = []
    real_resize = cv2.resize
    monkeypatch.setattr(cv2, "resize", lambda *a, **k: resized.append(a) or real_resize(*a, **k))
    writer = AnnotatedVideoWriter(tmp_path / "p.avi", tmp_path / "out.avi", 10, (160, 120))
    frame = next(video_frames(1, (160, 120)))
    writer.add(0, 0.0, frame, FACES)
    assert resized == []
    (written,) = recorder[0].frames
    assert np.array_equal(written, draw_faces(frame, FACES))
    assert not np.array_equal(written, frame)  # boxes and labels are drawn


@pytest.mark.parametrize("frame_size", [(300, 220), (100, 100), (200, 60)])
def test_annotated_writer_resizes_other_frames_with_inter_area(recorder, tmp_path, frame_size):
    """Frames of another size are drawn first, then resized to (width, height) = the writer's size
    with INTER_AREA (the encoder would drop them otherwise)."""
    writer = AnnotatedVideoWriter(tmp_path / "p.avi", tmp_path / "out.avi", 10, (160, 120))
    frame = next(video_frames(1, frame_size, seed=7))
    faces = [Face((10, 10, 40, 40), one_hot("fear"), face_id=1)]
    writer.add(4, 0.4, frame, faces)
    (written,) = recorder[0].frames
    expected = cv2.resize(draw_faces(frame, faces), (160, 120), interpolation=cv2.INTER_AREA)
    assert written.shape == (120, 160, 3)
    assert np.array_equal(written, expected)
    linear = cv2.resize(draw_faces(frame, faces), (160, 120), interpolation=cv2.INTER_LINEAR)
    assert not np.array_equal(written, linear)  # the interpolation matters for these frames


def test_a_paced_writer_holds_each_frame_until_the_next_one_s_time(recorder, tmp_path):
    """A live source's frames come late and unevenly: at 10 fps, frames at 0, 0.1, 0.5 and 0.52 s fill the
    video's slots 0, 1-4 (the 0.1 s frame held until 0.5 s), 5 and 6 (a frame late for its slot still gets
    one of its own); an unpaced writer writes each frame once."""
    frames = [np.full((120, 160, 3), value, np.uint8) for value in (10, 60, 110, 160)]
    times = [0.0, 0.1, 0.5, 0.52]
    paced = AnnotatedVideoWriter(tmp_path / "p.avi", tmp_path / "out.avi", 10, (160, 120), paced=True)
    plain = AnnotatedVideoWriter(tmp_path / "q.avi", tmp_path / "out2.avi", 10, (160, 120))
    for i, (seconds, frame) in enumerate(zip(times, frames)):
        paced.add(i, seconds, frame, [])
        plain.add(i, seconds, frame, [])
    assert [int(f[0, 0, 0]) for f in recorder[0].frames] == [10, 60, 60, 60, 60, 110, 160]
    assert [int(f[0, 0, 0]) for f in recorder[1].frames] == [10, 60, 110, 160]


def test_annotated_writer_to_a_real_mjpg_file(tmp_path):
    """Frames of two other sizes and one of the right size: all three end up in the video, at the
    writer's size, close to the expected drawn-and-resized frames (MJPG is lossy)."""
    frames = [next(video_frames(1, size, "square", seed)) for size, seed in (((320, 240), 1), ((80, 60), 2),
                                                                                ((160, 120), 3))]
    writer = AnnotatedVideoWriter(tmp_path / "p.avi", tmp_path / "out.avi", 10, (160, 120))
    for i, frame in enumerate(frames):
        writer.add(i, i / 10, frame, FACES[:1])
    writer.close()
    capture = cv2.VideoCapture(str(tmp_path / "p.avi"))
    decoded = [capture.read()[1] for _ in range(3)]
    assert capture.read()[0] is False
    capture.release()
    for frame, got in zip(frames, decoded):
        expected = cv2.resize(draw_faces(frame, FACES[:1]), (160, 120), interpolation=cv2.INTER_AREA)
        assert got.shape == (120, 160, 3)
        assert np.abs(got.astype(int) - expected.astype(int)).mean() < 4


def test_annotated_writer_that_cannot_open_names_target_and_codec(tmp_path):
    with pytest.raises(MediaError) as error:  # the partial's folder does not exist
        AnnotatedVideoWriter(tmp_path / "missing" / "p.avi", tmp_path / "out.avi", 10, (160, 120))
    assert str(error.value) == (f"{tmp_path / 'out.avi'}: cannot write a MJPG video here "
                                "(folder not writable, or codec missing)")


@pytest.mark.parametrize("content, fails", [(None, True), (b"", True), (b"x", False), (b"RIFF" * 100, False)])
def test_annotated_writer_close_fails_when_the_encoder_wrote_nothing(recorder, tmp_path, content, fails):
    """close() releases the encoder, then checks the partial: missing or 0 bytes -> MediaError naming
    the target; a single byte is something."""
    writer = AnnotatedVideoWriter(tmp_path / "p.avi", tmp_path / "out.avi", 10, (160, 120))
    if content is not None:
        (tmp_path / "p.avi").write_bytes(content)
    if fails:
        with pytest.raises(MediaError) as error:
            writer.close()
        assert str(error.value) == f"{tmp_path / 'out.avi'}: the video encoder wrote nothing"
    else:
        writer.close()
    assert recorder[0].released == 1


# --- CsvWriter -----------------------------------------------------------------------------------

def test_csv_bytes_exactly(tmp_path):
    """Header, then one row per face (det_score: 4 decimals, empty for None; scores: 4 decimals;
    time: 3 decimals); a frame without faces: frame and time, then 15 empty columns. csv's \\r\\n
    line ends, written as they are (newline="")."""
    writer = CsvWriter(tmp_path / "p.csv", tmp_path / "faces.csv")
    assert writer.target == tmp_path / "faces.csv"
    scores = np.array([0.05, 0.1, 0.15, 0.02, 0.5, 0.17, 0.01])
    writer.add(3, 0.12345, FRAME_UNUSED, [Face((1, 2, 30, 40), scores, face_id=2, det_score=0.876543),
                                          Face((50, 60, 20, 25), one_hot("angry", 0.4), face_id=9)])
    writer.add(4, 1.0, FRAME_UNUSED, [])
    writer.close()
    assert (tmp_path / "p.csv").read_bytes().decode() == (
        "frame,time_s,face_id,x,y,w,h,det_score,emotion,angry,disgust,fear,happy,sad,surprise,neutral\r\n"
        "3,0.123,2,1,2,30,40,0.8765,sad,0.0500,0.1000,0.1500,0.0200,0.5000,0.1700,0.0100\r\n"
        "3,0.123,9,50,60,20,25,,angry,0.4000,0.1000,0.1000,0.1000,0.1000,0.1000,0.1000\r\n"
        "4,1.000,,,,,,,,,,,,,,\r\n")


@pytest.mark.parametrize("folder, reason", [("missing/p.csv", "No such file or directory"),
                                            ("", "Is a directory")])
def test_csv_writer_that_cannot_open_names_the_target(tmp_path, folder, reason):
    with pytest.raises(MediaError) as error:
        CsvWriter(tmp_path / folder, tmp_path / "faces.csv")
    assert str(error.value) == f"{tmp_path / 'faces.csv'}: cannot be written ({reason})"


# --- FaceHistory ---------------------------------------------------------------------------------

def test_face_summary_exactly():
    """frames: how many scores; first_s/last_s: the first and last time, rounded to 3 decimals;
    emotion: the most frequent argmax (not the first frame's, not the mean's); shares: each class's
    count / frames, rounded to 4, in CLASS_NAMES order."""
    history = FaceHistory()
    sequence = ["sad", "happy", "happy", "neutral", "happy", "sad", "happy"]
    times = [0.12345, 0.5, 0.75, 1.0, 1.1, 1.23456, 1.98765]
    for t, name in zip(times, sequence):
        history.add(t, [Face((0, 0, 10, 10), one_hot(name, 0.9 if name == "sad" else 0.4), face_id=4)])
    history.add(0.3, [Face((0, 0, 10, 10), one_hot("angry"), face_id=2)])
    assert history.ids == [2, 4]
    assert history.face_summary(4) == {
        "frames": 7, "first_s": 0.123, "last_s": 1.988, "emotion": "happy",
        "shares": {"angry": 0.0, "disgust": 0.0, "fear": 0.0, "happy": 0.5714, "sad": 0.2857, "surprise": 0.0,
                   "neutral": 0.1429}}  # 4/7, 2/7, 1/7
    assert history.face_summary(2) == {"frames": 1, "first_s": 0.3, "last_s": 0.3, "emotion": "angry",
                                       "shares": {name: float(name == "angry") for name in CLASS_NAMES}}


# --- with_gaps, stack_with_gaps ------------------------------------------------------------------

def test_with_gaps_breaks_only_past_one_and_a_half_frames():
    """frame_s = 10: gaps of 14 and 15 (1.4 and exactly 1.5 frames) stay joined, 16 and 20 (1.6, 2
    frames) get a NaN row, at time = the last time before the gap + frame_s / 2."""
    times = np.array([0, 20, 30, 44, 59, 75, 85])  # gaps 20, 10, 14, 15, 16, 10
    scores = np.arange(7 * 7, dtype=np.float32).reshape(7, 7) / 100
    out_times, out_scores = with_gaps(times, scores, 10.0)
    assert out_times.dtype == np.float64 and out_scores.dtype == np.float64
    assert out_times.tolist() == [0, 5, 20, 30, 44, 59, 64, 75, 85]
    nan = [np.nan] * 7
    expected = np.vstack([scores[:1], [nan], scores[1:5], [nan], scores[5:]]).astype(float)
    assert out_scores.shape == (9, 7)
    np.testing.assert_array_equal(out_scores, expected)  # NaN where NaN, the rest unchanged


def test_with_gaps_of_realistic_frame_times():
    """25 fps (frame_s 0.04): 1.4 frames stays joined, 1.6 frames breaks, the gap's time is 0.02 s
    after the last frame; an int time array comes back as floats."""
    times = np.array([0.0, 0.04, 0.096, 0.16, 0.2])  # gaps 0.04, 0.056 (1.4), 0.064 (1.6), 0.04
    scores = np.eye(7)[[0, 1, 2, 3, 4]]
    out_times, out_scores = with_gaps(times, scores, 0.04)
    np.testing.assert_allclose(out_times, [0.0, 0.04, 0.096, 0.116, 0.16, 0.2])
    assert np.isnan(out_scores).all(axis=1).tolist() == [False, False, False, True, False, False]
    out_times, _ = with_gaps(np.array([0, 1, 5]), np.eye(7)[:3], 1)
    assert out_times.tolist() == [0.0, 1.0, 1.5, 5.0]  # 1 + 1 / 2, not truncated to an int


def test_with_gaps_without_gaps_changes_nothing():
    times, scores = with_gaps(np.array([0.0, 0.1, 0.2]), np.eye(7)[:3], 0.1)
    assert times.tolist() == [0.0, 0.1, 0.2] and np.array_equal(scores, np.eye(7)[:3])


class RecordingAxes:
    """Stands in for a matplotlib Axes: records fill_between's arguments."""

    def __init__(self):
        self.calls = []

    def fill_between(self, *args, **kwargs):
        self.calls.append(([np.array(a, copy=True) for a in args], dict(kwargs)))


def test_stack_with_gaps_calls():
    """One fill_between per band, in order: from the running bottom (the bands below, summed) to
    bottom + band; `where` hides the NaN rows (NaN counted as 0, so no band dips); each band's
    colour; linewidth 0 (no outlines between bands)."""
    times = np.array([0.0, 1.0, 1.5, 3.0])
    scores = np.array([[0.1, 0.3, 0.6], [0.5, 0.25, 0.25], [np.nan] * 3, [0.2, 0.7, 0.1]])
    ax = RecordingAxes()
    stack_with_gaps(ax, times, scores, ["c0", "c1", "c2"])
    bottoms = [[0, 0, 0, 0], [0.1, 0.5, 0, 0.2], [0.4, 0.75, 0, 0.9], [1.0, 1.0, 0, 1.0]]
    assert len(ax.calls) == 3
    for k, (args, kwargs) in enumerate(ax.calls):
        assert len(args) == 3
        np.testing.assert_array_equal(args[0], times)
        np.testing.assert_allclose(args[1], bottoms[k])
        np.testing.assert_allclose(args[2], bottoms[k + 1])
        assert kwargs.keys() == {"where", "color", "linewidth"}
        assert kwargs["where"].tolist() == [True, True, False, True]
        assert kwargs["color"] == f"c{k}" and kwargs["linewidth"] == 0


def test_stack_with_gaps_of_a_single_band():
    ax = RecordingAxes()
    stack_with_gaps(ax, np.array([0.0, 1.0, 2.0]), np.array([[0.5], [np.nan], [0.25]]), ["k"])
    ((args, kwargs),) = ax.calls
    assert [a.tolist() for a in args] == [[0.0, 1.0, 2.0], [0, 0, 0], [0.5, 0, 0.25]]
    assert kwargs["where"].tolist() == [True, False, True] and kwargs["color"] == "k"


# --- plot_timeline -------------------------------------------------------------------------------

@pytest.fixture
def figures(monkeypatch):
    """The Figures plot_timeline makes (it asks ferkit.evaluation.plots.new_figure for them)."""
    made = []
    real = plots.new_figure
    monkeypatch.setattr(plots, "new_figure", lambda **kwargs: made.append(real(**kwargs)) or made[-1])
    return made


def history_of(frames_per_id: dict[int, int], start: float = 0.3, frame_s: float = 0.1) -> FaceHistory:
    """Each face id seen for its number of frames from `start`, its expression cycling through the classes."""
    history = FaceHistory()
    for face_id, frames in frames_per_id.items():
        for i in range(frames):
            history.add(start + i * frame_s, [Face((0, 0, 10, 10), one_hot(CLASS_NAMES[i % 7]), face_id=face_id)])
    return history


def test_timeline_panels_longest_seen_first(figures, tmp_path):
    """One panel per face id, sorted by frames seen, most first (ties: the lower id first); y label
    "face #ID", y from 0 to 1; the shared x axis from 0 to the duration, labelled on the bottom panel."""
    plot_timeline(history_of({1: 3, 2: 6, 3: 4, 4: 4}), tmp_path / "t.png", 2.5, 0.1)
    (fig,) = figures
    axes = fig.axes
    assert len(axes) == 4
    assert [ax.get_ylabel() for ax in axes] == ["face #2", "face #3", "face #4", "face #1"]
    assert [ax.get_ylim() for ax in axes] == [(0, 1)] * 4
    assert [ax.get_xlim() for ax in axes] == [(0, 2.5)] * 4  # the data start at 0.3: 0 is set, not automatic
    assert all(axes[0].get_shared_x_axes().joined(axes[0], ax) for ax in axes)
    assert [ax.get_xlabel() for ax in axes] == ["", "", "", "time (s)"]
    assert all(len(ax.texts) == 0 for ax in axes)  # "no faces found" only when there are none
    for ax in axes:  # one filled band per class, in CLASS_NAMES order and colours
        assert len(ax.collections) == 7
        np.testing.assert_allclose([c.get_facecolor()[0][:3] for c in ax.collections], RGB)
    assert tuple(fig.get_size_inches()) == pytest.approx((10, 1.2 + 1.6 * 4))


def test_timeline_x_axis_reaches_at_least_one_frame(figures, tmp_path):
    plot_timeline(history_of({1: 1}, start=0.0), tmp_path / "t.png", 0.0, 0.04)  # a one-frame video
    assert figures[0].axes[0].get_xlim() == (0, 0.04)
    plot_timeline(history_of({1: 2}), tmp_path / "t.png", 0.45, 0.5)
    assert figures[1].axes[0].get_xlim() == (0, 0.5)


def test_timeline_bands_follow_the_scores_with_gaps(figures, tmp_path):
    """The panel's bands are stack_with_gaps(with_gaps(times, scores, frame_s)): a face seen at 0.3,
    0.4, then from 0.7: a gap after 0.4 (0.3 s > 1.5 frames), the top band ending at 1."""
    history = FaceHistory()
    for t, name in [(0.3, "happy"), (0.4, "happy"), (0.7, "sad"), (0.8, "sad")]:
        history.add(t, [Face((0, 0, 10, 10), one_hot(name), face_id=1)])
    plot_timeline(history, tmp_path / "t.png", 1.0, 0.1)
    top = figures[0].axes[0].collections[-1]
    xs = np.concatenate([path.vertices[:, 0] for path in top.get_paths()])
    ys = np.concatenate([path.vertices[:, 1] for path in top.get_paths()])
    assert len(top.get_paths()) == 2  # two separate pieces: the gap is not filled
    assert xs.min() == pytest.approx(0.3) and xs.max() == pytest.approx(0.8)
    assert not ((xs > 0.45 + 1e-9) & (xs < 0.7 - 1e-9)).any()
    assert ys.max() == pytest.approx(1.0)


@pytest.mark.parametrize("max_faces, panels", [(None, 8), (3, 3), (20, 10)])
def test_timeline_at_most_max_faces_panels(figures, tmp_path, max_faces, panels):
    """Ten faces, face N seen for N + 1 frames: the `max_faces` longest-seen (default 8) get a panel."""
    history = history_of({n: n + 1 for n in range(1, 11)})
    kwargs = {} if max_faces is None else {"max_faces": max_faces}
    plot_timeline(history, tmp_path / "t.png", 2.0, 0.1, **kwargs)
    (fig,) = figures
    assert [ax.get_ylabel() for ax in fig.axes] == [f"face #{n}" for n in range(10, 10 - panels, -1)]
    assert tuple(fig.get_size_inches()) == pytest.approx((10, 1.2 + 1.6 * panels))


def test_timeline_without_faces(figures, tmp_path):
    """One empty panel (the figure is sized for one) with "no faces found" centred in it (axes
    coordinates), no y label; the x axis and the legend as always."""
    plot_timeline(FaceHistory(), tmp_path / "t.png", 3.0, 0.1)
    (fig,) = figures
    (ax,) = fig.axes
    (text,) = ax.texts
    assert text.get_text() == "no faces found" and text.get_position() == (0.5, 0.5)
    assert text.get_horizontalalignment() == "center" and text.get_verticalalignment() == "center"
    assert text.get_transform() == ax.transAxes
    assert ax.get_ylabel() == "" and ax.get_xlabel() == "time (s)" and ax.get_xlim() == (0, 3.0)
    assert [t.get_text() for t in fig.legends[0].get_texts()] == list(CLASS_NAMES)
    assert tuple(fig.get_size_inches()) == pytest.approx((10, 2.8))


def test_timeline_legend_and_layout(figures, tmp_path):
    """A frameless legend of the 7 classes in order, in their colours (BGR -> RGB, / 255), on one row,
    centred at the top; tight_layout keeps the panels below it (rect top = 1 - 0.35 in / height)
    and spreads them over the figure's width."""
    plot_timeline(history_of({1: 5, 2: 3}), tmp_path / "t.png", 1.0, 0.1)
    (fig,) = figures
    (legend,) = fig.legends
    assert [t.get_text() for t in legend.get_texts()] == list(CLASS_NAMES)
    np.testing.assert_allclose([h.get_facecolor()[:3] for h in legend.legend_handles], RGB)
    assert RGB[0] == (220 / 255, 40 / 255, 40 / 255)  # angry is red
    assert legend.get_frame_on() is False
    box = legend.get_window_extent()
    width, height = fig.bbox.width, fig.bbox.height
    assert abs((box.x0 + box.x1) / 2 - width / 2) < 1 and height - box.y1 < 15
    assert len({round(t.get_window_extent().y0, 3) for t in legend.get_texts()}) == 1  # one row
    rect_top = 1 - 0.35 / fig.get_figheight()
    top = fig.axes[0].get_position()
    assert rect_top - 0.3 / fig.get_figheight() < top.y1 <= rect_top
    assert box.y0 / height >= top.y1  # the legend clears the top panel
    for ax in fig.axes:
        position = ax.get_position()
        assert position.x0 < 0.1 and 0.95 < position.x1 <= 1


@pytest.mark.parametrize("panels", [1, 3])
def test_timeline_png_size_at_100_dpi_whatever_the_settings(tmp_path, panels):
    """dpi 100 is passed to savefig: 10 in x (1.2 + 1.6 * panels) in -> 1000 x 280 or 600 pixels,
    even where the caller's matplotlib settings say otherwise."""
    with matplotlib.rc_context({"savefig.dpi": 72, "figure.dpi": 72}):
        plot_timeline(history_of({n: 3 for n in range(panels)}), tmp_path / "t.png", 1.0, 0.1)
    image = cv2.imread(str(tmp_path / "t.png"))
    assert image.shape == (round(100 * (1.2 + 1.6 * panels)), 1000, 3)


@pytest.mark.parametrize("name, magic", [("t.png", b"\x89PNG"), ("t.PNG", b"\x89PNG"), ("t.svg", b"<?xml"),
                                         ("t.pdf", b"%PDF"), ("t.jpg", b"\xff\xd8\xff"), ("t.JPG", b"\xff\xd8\xff"),
                                         ("t.jpeg", b"\xff\xd8\xff")])
def test_timeline_format_follows_the_suffix(tmp_path, name, magic):
    plot_timeline(history_of({1: 4}), tmp_path / name, 1.0, 0.1)
    assert (tmp_path / name).read_bytes().startswith(magic)

