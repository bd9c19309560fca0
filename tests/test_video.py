"""Saved videos: tracking ids, the per-frame CSV, the annotated video, timeline and summary, every
container, and bad input (missing, empty, corrupt, truncated, non-video, unwritable outputs).

Synthetic videos show bright squares that a small test detector finds, so ids, entries and exits
are exact; the real media in ../shared checks the same with Haar on real faces.
"""

from __future__ import annotations

import csv
import io
import json
import re
import shutil
import subprocess
import sys
from pathlib import Path

import cv2
import numpy as np
import pytest
from conftest import box_frames, bright_box_detector, corrupt_middle, overlap_threads, write_video

from ferkit.config import Config, PipelineConfig
from ferkit.errors import MediaError
from ferkit.inference.pipeline import Pipeline
from ferkit.labels import CLASS_NAMES
from ferkit.video.process import process_video
from ferkit.video.progress import ProgressBar
from ferkit.video.source import VideoSource
from ferkit.video.writers import CSV_COLUMNS, VIDEO_FOURCCS, CsvWriter, browser_video_format

FPS, SIZE, SIDE = 20, (160, 120), 40  # synthetic videos: 160x120 at 20 fps, 40-pixel "faces"
CFG = PipelineConfig()
FRAME_UNUSED = np.zeros((1, 1, 3), np.uint8)  # writers that do not draw ignore the frame


def square_frames(positions_per_frame) -> list[np.ndarray]:
    """One dark frame per entry, with a white SIDE x SIDE square at each (x, y) of the entry."""
    return box_frames([[(x, y, SIDE, SIDE) for x, y in positions] for positions in positions_per_frame], SIZE)


def moving_square(frames: int = 40, step: int = 2) -> list:
    return [[(10 + step * i, 40)] for i in range(frames)]


def read_csv(path: Path) -> list[dict]:
    with open(path, newline="") as handle:
        return list(csv.DictReader(handle))


def faces_by_frame(rows: list[dict]) -> dict[int, list[dict]]:
    frames = {}
    for row in rows:
        frames.setdefault(int(row["frame"]), [])
        if row["face_id"]:
            frames[int(row["frame"])].append(row)
    return frames


def count_frames(path: Path) -> tuple[int, tuple[int, int]]:
    capture = cv2.VideoCapture(str(path))
    size = (int(capture.get(cv2.CAP_PROP_FRAME_WIDTH)), int(capture.get(cv2.CAP_PROP_FRAME_HEIGHT)))
    frames = 0
    while capture.read()[0]:
        frames += 1
    return frames, size


@pytest.fixture(scope="module")
def squares(classifier) -> Pipeline:
    """The product's pipeline with the square detector in place of a face detector."""
    return Pipeline(classifier, bright_box_detector(), CFG)


@pytest.fixture
def moving_video(tmp_path) -> Path:
    return write_video(tmp_path / "moving.mp4", square_frames(moving_square()))


# --- tracking, entering, leaving -----------------------------------------------------------

def test_a_moving_face_keeps_one_id(squares, moving_video, tmp_path):
    summary = process_video(squares, moving_video, csv_path=tmp_path / "faces.csv")
    frames = faces_by_frame(read_csv(tmp_path / "faces.csv"))
    shown = [i for i, faces in frames.items() if faces]
    # confirmed at the second detection round, then shown in every frame to the end
    assert shown == list(range(CFG.detect_every, 40))
    assert {face["face_id"] for i in shown for face in frames[i]} == {"1"}
    assert summary["faces_seen"] == 1 and summary["faces"]["1"]["frames"] == 40 - CFG.detect_every
    xs = [int(frames[i][0]["x"]) for i in shown]
    assert xs == sorted(xs) and xs[-1] - xs[0] >= 60, "the box follows the face"


def test_two_faces_keep_their_own_ids(squares, tmp_path):
    positions = [[(5 + i, 10), (115 - i, 70)] for i in range(30)]
    video = write_video(tmp_path / "two.mp4", square_frames(positions))
    process_video(squares, video, csv_path=tmp_path / "faces.csv")
    rows = [row for row in read_csv(tmp_path / "faces.csv") if row["face_id"]]
    ids = {row["face_id"]: set() for row in rows}
    for row in rows:
        ids[row["face_id"]].add("top" if int(row["y"]) < 40 else "bottom")
    assert ids == {"1": {"top"}, "2": {"bottom"}} or ids == {"1": {"bottom"}, "2": {"top"}}


def test_a_face_that_leaves_and_comes_back_gets_a_new_id(squares, tmp_path):
    visible, away = 20, 25  # away for longer than a track survives (track_max_missed frames)
    positions = [[(60, 40)]] * visible + [[]] * away + [[(60, 40)]] * 15
    video = write_video(tmp_path / "leaves.mp4", square_frames(positions))
    summary = process_video(squares, video, csv_path=tmp_path / "faces.csv")
    frames = faces_by_frame(read_csv(tmp_path / "faces.csv"))
    assert len(frames) == len(positions)
    hidden_by = visible + 2 * CFG.detect_every  # a lost face is hidden within two detection rounds
    assert all(not frames[i] for i in range(hidden_by, visible + away))
    assert summary["faces_seen"] == 2
    assert summary["faces"]["1"]["last_s"] < hidden_by / FPS <= summary["faces"]["2"]["first_s"]


def test_a_face_sliding_out_of_the_frame(squares, tmp_path):
    positions = [[(60 + 4 * i, 40)] for i in range(40)]  # leaves by the right edge
    video = write_video(tmp_path / "slides.mp4", square_frames(positions))
    process_video(squares, video, csv_path=tmp_path / "faces.csv")
    frames = faces_by_frame(read_csv(tmp_path / "faces.csv"))
    assert frames[10] and not frames[39]
    assert {face["face_id"] for faces in frames.values() for face in faces} == {"1"}


def test_one_off_false_detections_are_never_shown(squares, tmp_path):
    positions = [[(60, 40)] if i == 9 else [] for i in range(30)]  # seen by one detection round only
    video = write_video(tmp_path / "blip.mp4", square_frames(positions))
    assert process_video(squares, video)["faces_seen"] == 0


def test_a_video_without_faces(squares, tmp_path):
    video = write_video(tmp_path / "empty.mp4", square_frames([[]] * 25))
    outputs = {"out_video": tmp_path / "out.mp4", "csv_path": tmp_path / "faces.csv",
               "timeline_png": tmp_path / "timeline.png"}
    summary = process_video(squares, video, **outputs)
    assert summary["frames"] == 25 and summary["faces_seen"] == 0 and summary["faces"] == {}
    rows = read_csv(tmp_path / "faces.csv")
    assert [int(r["frame"]) for r in rows] == list(range(25)), "one row per frame, face columns empty"
    assert all(r[c] == "" for r in rows for c in CSV_COLUMNS[2:])
    assert count_frames(tmp_path / "out.mp4") == (25, SIZE)
    assert cv2.imread(str(tmp_path / "timeline.png")) is not None


# --- outputs -------------------------------------------------------------------------------

def test_csv_columns_rows_and_times(squares, tmp_path):
    positions = [[(5, 10), (110, 70)] if i < 20 else [(5, 10)] for i in range(30)]
    video = write_video(tmp_path / "in.mp4", square_frames(positions))
    process_video(squares, video, csv_path=tmp_path / "faces.csv")
    with open(tmp_path / "faces.csv", newline="") as handle:
        header = next(csv.reader(handle))
    assert tuple(header) == CSV_COLUMNS == ("frame", "time_s", "face_id", "x", "y", "w", "h", "det_score",
                                            "emotion", *CLASS_NAMES)
    rows = read_csv(tmp_path / "faces.csv")
    frames = faces_by_frame(rows)
    assert len(rows) == sum(max(1, len(faces)) for faces in frames.values())
    assert sorted(frames) == list(range(30))
    assert max(len(faces) for faces in frames.values()) == 2
    for row in rows:
        assert float(row["time_s"]) == pytest.approx(int(row["frame"]) / FPS, abs=1e-3)
        if row["face_id"]:
            scores = [float(row[name]) for name in CLASS_NAMES]
            assert sum(scores) == pytest.approx(1.0, abs=1e-3)
            assert row["emotion"] == CLASS_NAMES[int(np.argmax(scores))]
            assert int(row["w"]) >= 38 and int(row["h"]) >= 38


def test_csv_box_columns_of_a_non_square_face(tmp_path):
    from ferkit.inference.pipeline import Face
    from ferkit.video.writers import CsvWriter

    scores = np.array([1, 2, 3, 4, 5, 6, 19]) / 40
    writer = CsvWriter(tmp_path / "partial.csv", tmp_path / "faces.csv")
    writer.add(7, 0.35, FRAME_UNUSED, [Face((11, 22, 30, 50), scores, face_id=4)])
    writer.add(8, 0.4, FRAME_UNUSED, [])
    writer.close()
    rows = read_csv(tmp_path / "partial.csv")
    empty = dict.fromkeys(CSV_COLUMNS, "")
    assert rows[0] == {**empty, "frame": "7", "time_s": "0.350", "face_id": "4", "x": "11", "y": "22", "w": "30",
                       "h": "50", "emotion": "neutral", **{name: f"{s:.4f}" for name, s in zip(CLASS_NAMES, scores)}}
    assert rows[1] == {**empty, "frame": "8", "time_s": "0.400"}


def test_a_csv_that_fails_as_it_closes_names_itself(tmp_path):
    """The last buffered rows reach the disk at close: a full disk then is this file's error, one line."""
    from ferkit.errors import MediaError
    from ferkit.video.writers import CsvWriter

    class FullAtClose:
        def __init__(self, file):
            self.file = file

        def close(self):
            self.file.close()
            raise OSError(28, "No space left on device")

    writer = CsvWriter(tmp_path / "partial.csv", tmp_path / "faces.csv")
    writer.file = FullAtClose(writer.file)
    with pytest.raises(MediaError) as error:
        writer.close()
    assert str(error.value) == f"{tmp_path / 'faces.csv'}: cannot be written (No space left on device)"


def test_csv_of_a_wide_face_in_a_video(squares, tmp_path):
    video = write_video(tmp_path / "wide.avi", box_frames([[(30, 40, 64, 32)]] * 12, SIZE))
    process_video(squares, video, csv_path=tmp_path / "faces.csv")
    boxes = {tuple(int(row[c]) for c in "xywh") for row in read_csv(tmp_path / "faces.csv") if row["face_id"]}
    assert boxes and all(abs(x - 30) <= 1 and abs(y - 40) <= 1 and abs(w - 64) <= 2 and abs(h - 32) <= 2
                         for x, y, w, h in boxes), boxes


class TimestampedCapture:
    """Stands in for cv2.VideoCapture: reports the given POS_MSEC values, one per frame read."""

    def __init__(self, msecs):
        self.msecs = iter(msecs)

    def get(self, prop):
        assert prop == cv2.CAP_PROP_POS_MSEC
        return next(self.msecs)

    def release(self):
        pass


@pytest.mark.parametrize("msecs, expected", [
    ([0, 40, 200, 240], [0, 0.04, 0.2, 0.24]),  # variable frame rate: the container's own times
    ([0, 0, 0, 0], [0, 1 / FPS, 2 / FPS, 3 / FPS]),  # a backend without timestamps: index / fps
    ([0, 100, 50, float("nan")], [0, 0.1, 0.1 + 1e-6, 3 / FPS]),  # never backwards, never NaN
])
def test_frame_times_follow_the_container(moving_video, msecs, expected):
    source = VideoSource(moving_video)
    source.close()
    source.capture = TimestampedCapture(msecs)
    assert [source.seconds(i) for i in range(4)] == pytest.approx(expected)


def test_annotated_video_timeline_and_summary(squares, moving_video, tmp_path):
    calls = []
    summary = process_video(squares, moving_video, tmp_path / "out" / "annotated.mp4", tmp_path / "faces.csv",
                            tmp_path / "timeline.png", progress_callback=lambda *progress: calls.append(progress))
    assert count_frames(tmp_path / "out" / "annotated.mp4") == (40, SIZE)
    first = cv2.VideoCapture(str(tmp_path / "out" / "annotated.mp4"))
    for _ in range(10):
        annotated = first.read()[1]
    source = cv2.VideoCapture(str(moving_video))
    for _ in range(10):
        plain = source.read()[1]
    assert np.abs(annotated.astype(int) - plain.astype(int)).max() > 100, "boxes and labels are drawn"
    timeline = cv2.imread(str(tmp_path / "timeline.png"))
    assert timeline is not None and timeline.shape[1] >= 800
    assert calls == [(i, 40) for i in range(1, 41)]
    assert summary["frames"] == 40 and summary["seconds"] == pytest.approx(2.0)
    assert summary["video_fps"] == pytest.approx(FPS) and summary["fps"] > 0
    assert summary["faces_seen"] == 1
    shares = summary["faces"]["1"]["shares"]
    assert list(shares) == list(CLASS_NAMES) and sum(shares.values()) == pytest.approx(1.0, abs=1e-3)
    assert summary["outputs"] == {"video": str(tmp_path / "out" / "annotated.mp4"),
                                  "csv": str(tmp_path / "faces.csv"), "timeline": str(tmp_path / "timeline.png")}
    json.dumps(summary)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["faces.csv", "moving.mp4", "out", "timeline.png"]


@pytest.mark.parametrize("suffix", sorted(VIDEO_FOURCCS))
def test_every_container_in_and_out(squares, tmp_path, suffix):
    video = write_video(tmp_path / f"in{suffix}", square_frames(moving_square(20, 3)))
    out = tmp_path / f"out{suffix}"
    summary = process_video(squares, video, out_video=out)
    assert summary["frames"] == 20 and summary["faces_seen"] == 1
    assert count_frames(out) == (20, SIZE)


def test_browser_playable_format(squares, moving_video, tmp_path):
    fourcc, suffix = browser_video_format()
    # pip's OpenCV has no H.264 encoder; VP8 in WebM plays in every current browser
    assert (fourcc, suffix) in {("avc1", ".mp4"), ("VP80", ".webm")}
    out = tmp_path / f"browser{suffix}"
    process_video(squares, moving_video, out_video=out, fourcc=fourcc)
    assert count_frames(out) == (40, SIZE)


def test_progress_bar_line():
    stream = io.StringIO()
    bar = ProgressBar(stream, mininterval=0, ncols=60)
    bar(5, 10)
    bar(12, 10)  # frame counts are estimates: the total grows, the bar stops at 100%
    bar.finish()
    lines = stream.getvalue().split("\r")
    assert [line[:25] for line in lines if "5/10" in line] == [" 50%|#####     | 5/10 [00"]
    assert lines[-1].startswith("100%|##########| 12/12 [") and stream.getvalue().endswith("\n")
    unknown = io.StringIO()
    bar = ProgressBar(unknown, mininterval=0)
    bar(7, 0)  # no frame count: frames and rate only
    bar.finish()
    assert unknown.getvalue().split("\r")[-1].startswith("7frame [")


# --- bad input and outputs -----------------------------------------------------------------

def truncate(video: Path, target: Path) -> Path:
    target.write_bytes(video.read_bytes()[: video.stat().st_size // 2])
    return target


def written(path: Path, data: bytes) -> Path:
    path.write_bytes(data)
    return path


def image_file(path: Path) -> Path:
    cv2.imwrite(str(path), np.zeros((40, 40, 3), np.uint8))
    return path


@pytest.fixture
def long_video(tmp_path) -> Path:
    return write_video(tmp_path / "long.mp4", square_frames(moving_square(60, 1)))


BAD_FILES = {  # kind: (make(tmp_path, a good 60-frame video) -> the bad input, expected message)
    "missing": (lambda tmp, video: tmp / "missing.mp4", "no such file"),
    "folder": (lambda tmp, video: tmp, "not a file"),
    "empty": (lambda tmp, video: written(tmp / "empty.mp4", b""), "empty"),
    "garbage": (lambda tmp, video: written(tmp / "g.mp4", np.random.default_rng(1).bytes(50_000)), "not a video"),
    "text": (lambda tmp, video: written(tmp / "notes.avi", b"not a video\n" * 100), "not a video"),
    "image": (lambda tmp, video: image_file(tmp / "photo.jpg"), "is an image"),
    "truncated mp4": (lambda tmp, video: truncate(video, tmp / "cut.mp4"), "not a video"),
    "corrupt middle": (lambda tmp, video: corrupt_middle(video, tmp / "bad.mp4"), "damaged or truncated"),
    "truncated mkv": (lambda tmp, video: truncate(write_video(tmp / "v.mkv", square_frames(moving_square(60, 1))),
                                                  tmp / "cut.mkv"), "damaged or truncated"),
    "truncated avi": (lambda tmp, video: truncate(write_video(tmp / "v.avi", square_frames(moving_square(60, 1))),
                                                  tmp / "cut.avi"), "damaged or truncated"),
}


@pytest.mark.parametrize("kind", list(BAD_FILES))
def test_bad_input_raises_media_error_and_leaves_no_output(squares, tmp_path, long_video, kind):
    make, message = BAD_FILES[kind]
    bad = make(tmp_path, long_video)
    out_dir = tmp_path / "out"
    with pytest.raises(MediaError, match=message):
        process_video(squares, bad, out_dir / "a.mp4", out_dir / "a.csv", out_dir / "a.png")
    assert not out_dir.exists() or list(out_dir.iterdir()) == []


def test_frame_count_of_the_damaged_file_is_reported(tmp_path):
    video = write_video(tmp_path / "v.avi", square_frames(moving_square(60, 1)))
    with pytest.raises(MediaError, match=r"frame \d+ of 60 cannot be read"):
        for _ in VideoSource(truncate(video, tmp_path / "cut.avi")).frames():
            pass


def frames_before_damage(video: Path) -> int:
    read = 0
    with pytest.raises(MediaError):
        for _ in VideoSource(video).frames():
            read += 1
    return read


def test_keep_partial_keeps_the_frames_read_before_the_damage(squares, tmp_path):
    whole = write_video(tmp_path / "v.avi", square_frames(moving_square(60, 1)))
    cut = truncate(whole, tmp_path / "cut.avi")
    read = frames_before_damage(cut)
    assert 0 < read < 60
    summary = process_video(squares, cut, tmp_path / "a.avi", tmp_path / "a.csv", tmp_path / "a.png",
                            keep_partial=True)
    assert summary["frames"] == read and summary["ended"] == f"frame {read + 1} of 60 cannot be read (the file " \
                                                              "is damaged or truncated)"
    process_video(squares, whole, csv_path=tmp_path / "whole.csv")
    assert read_csv(tmp_path / "a.csv") == [r for r in read_csv(tmp_path / "whole.csv") if int(r["frame"]) < read]
    assert count_frames(tmp_path / "a.avi")[0] == read and cv2.imread(str(tmp_path / "a.png")) is not None
    assert "ended" not in process_video(squares, whole, keep_partial=True)  # a whole file needs no saying


def test_keep_partial_does_not_keep_a_file_with_no_frame_or_an_interrupted_one(squares, tmp_path, long_video):
    with pytest.raises(MediaError, match="not a video"):  # its container is gone: nothing was read
        process_video(squares, truncate(long_video, tmp_path / "cut.mp4"), csv_path=tmp_path / "a.csv",
                      keep_partial=True)

    def stop_at_frame_10(done, total):
        if done == 10:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        process_video(squares, long_video, csv_path=tmp_path / "a.csv", progress_callback=stop_at_frame_10,
                      keep_partial=True)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["cut.mp4", "long.mp4"]


def test_cli_keep_partial_says_where_the_video_stopped(ferkit, tiny_model_dir, tmp_path):
    cut = truncate(write_video(tmp_path / "v.avi", square_frames(moving_square(60, 1))), tmp_path / "cut.avi")
    read = frames_before_damage(cut)
    reason = f"frame {read + 1} of 60 cannot be read (the file is damaged or truncated)"
    code, out, err = ferkit("video", cut, "--csv", tmp_path / "a.csv", "--model", tiny_model_dir)
    assert (code, out, err) == (2, "", f"ferkit video: error: {cut}: {reason}\n") and not (tmp_path / "a.csv").exists()
    code, out, err = ferkit("video", cut, "--csv", tmp_path / "a.csv", "--keep-partial", "--model", tiny_model_dir)
    assert (code, err) == (0, f"ferkit video: warning: {cut}: {reason}; kept the {read} frames before it\n")
    assert out.splitlines()[0].startswith(f"{cut}: {read} frames, ") and out.splitlines()[-1] == f"  ended: {reason}"
    frames = sorted({int(r["frame"]) for r in read_csv(tmp_path / "a.csv")})  # a row per frame, faces or not
    assert frames == list(range(read)) and (tmp_path / "a_timeline.png").is_file()


def test_a_failed_run_keeps_the_previous_outputs_whole(squares, tmp_path, long_video):
    previous = tmp_path / "faces.csv"
    previous.write_text("the previous, complete CSV\n")
    with pytest.raises(MediaError):
        process_video(squares, corrupt_middle(long_video, tmp_path / "bad.mp4"), csv_path=previous)
    assert previous.read_text() == "the previous, complete CSV\n"
    assert overlap_threads() == []  # the reader and the writer stopped before the files were released
    assert sorted(p.name for p in tmp_path.iterdir()) == ["bad.mp4", "faces.csv", "long.mp4"]


def test_a_caller_cancels_by_raising_from_the_progress_callback(squares, moving_video, tmp_path):
    class Cancelled(Exception):
        pass

    def cancel_at_frame_10(done, total):
        if done == 10:
            raise Cancelled

    with pytest.raises(Cancelled):
        process_video(squares, moving_video, tmp_path / "a.webm", tmp_path / "a.csv", tmp_path / "a.png",
                      progress_callback=cancel_at_frame_10)
    assert [p.name for p in tmp_path.iterdir()] == ["moving.mp4"]
    assert overlap_threads() == []


def test_a_failing_writer_stops_the_run_and_leaves_no_output(squares, moving_video, tmp_path, monkeypatch):
    written = []

    def disk_full_at_frame_7(self, frame_index, seconds, frame, faces):
        if frame_index == 7:
            raise MediaError("faces.csv: cannot be written (No space left on device)")
        written.append(frame_index)

    monkeypatch.setattr(CsvWriter, "add", disk_full_at_frame_7)
    calls = []
    with pytest.raises(MediaError, match="No space left on device"):
        process_video(squares, moving_video, tmp_path / "a.mp4", tmp_path / "faces.csv",
                      progress_callback=lambda *progress: calls.append(progress))
    assert written == list(range(7))
    assert len(calls) < 40  # the frame loop stopped early, at most a few frames past the failure
    assert [p.name for p in tmp_path.iterdir()] == ["moving.mp4"]
    assert overlap_threads() == []


@pytest.mark.parametrize("output", ["out_video", "csv_path", "timeline_png"])
def test_unwritable_output_fails_before_any_work(squares, moving_video, tmp_path, output):
    blocker = tmp_path / "file.txt"  # a file where a folder should be: unwritable even for root
    blocker.write_text("x")
    outputs = {"out_video": tmp_path / "a.mp4", "csv_path": tmp_path / "a.csv", "timeline_png": tmp_path / "a.png"}
    outputs[output] = blocker / Path(outputs[output]).name
    calls = []
    with pytest.raises(MediaError, match="file.txt"):
        process_video(squares, moving_video, progress_callback=lambda *a: calls.append(a), **outputs)
    assert calls == [], "no frame was processed"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["file.txt", "moving.mp4"]


@pytest.mark.parametrize("outputs, message", [
    ({"out_video": "annotated.xyz"}, "unsupported video extension"),
    ({"timeline_png": "timeline.txt"}, "timeline chart must be"),
    ({"csv_path": "moving.mp4"}, "may not overwrite the input"),
    ({"csv_path": "same.png", "timeline_png": "same.png"}, "same file is given for two outputs"),
    ({"out_video": "same.mp4", "csv_path": "same.mp4"}, "same file is given for two outputs"),
])
def test_bad_output_names(squares, moving_video, tmp_path, outputs, message):
    with pytest.raises(MediaError, match=message):
        process_video(squares, moving_video, **{k: tmp_path / v for k, v in outputs.items()})
    assert moving_video.stat().st_size > 0


# --- ferkit video --------------------------------------------------------------------------

def test_cli_bad_input_is_one_error_line_and_exit_2(ferkit, tmp_path, tiny_model_dir, long_video):
    bad = corrupt_middle(long_video, tmp_path / "bad.mp4")
    code, out, err = ferkit("video", bad, "--out", tmp_path / "o.mp4", "--csv", tmp_path / "o.csv", "--json",
                             "--model", tiny_model_dir)
    assert code == 2 and out == ""
    [line] = err.strip().splitlines()
    # the frame where decoding stops depends on the codec; it lies within the corrupted middle eighth
    match = re.fullmatch(rf"ferkit video: error: {re.escape(str(bad))}: frame (\d+) of 60 cannot be read "
                         r"\(the file is damaged or truncated\)", line)
    assert match and 20 <= int(match[1]) <= 45, line
    assert sorted(p.name for p in tmp_path.iterdir()) == ["bad.mp4", "long.mp4"]


def test_cli_missing_input(ferkit, tmp_path, tiny_model_dir):
    code, out, err = ferkit("video", tmp_path / "nope.mov", "--model", tiny_model_dir)
    assert code == 2 and err.strip() == f"ferkit video: error: {tmp_path / 'nope.mov'}: no such file"


def test_cli_json_summary_and_default_timeline(ferkit, tmp_path, tiny_model_dir, moving_video):
    code, out, err = ferkit("video", moving_video, "--csv", tmp_path / "faces.csv", "--json", "--model", tiny_model_dir)
    assert code == 0, err
    summary = json.loads(out)
    assert summary["frames"] == 40 and summary["faces_seen"] == 0  # Haar finds no face in squares
    assert summary["outputs"]["timeline"] == str(tmp_path / "faces_timeline.png")
    assert (tmp_path / "faces_timeline.png").is_file() and err == "", "no progress bar when stderr is not a terminal"


def test_cli_duration_stops_a_file_early(ferkit, tmp_path, tiny_model_dir, moving_video):
    """40 frames at 20 fps: --duration 1.3 keeps the frames before 1.3 s (26), and says 1.3 s."""
    code, out, err = ferkit("video", moving_video, "--csv", tmp_path / "f.csv", "--json", "--duration", "1.3",
                            "--model", tiny_model_dir)
    assert code == 0, err
    summary = json.loads(out)
    assert (summary["frames"], summary["seconds"]) == (26, 1.3)
    assert [int(row["frame"]) for row in read_csv(tmp_path / "f.csv")] == list(range(26))


@pytest.mark.parametrize("value, reason", [("0", "0 is outside (0, inf)"), ("-2", "-2 is outside (0, inf)"),
                                           ("nan", "nan is outside (0, inf)"), ("soon", "'soon' is not a number")])
def test_cli_bad_duration_is_one_error_line(ferkit, tiny_model_dir, moving_video, value, reason):
    code, out, err = ferkit("video", moving_video, f"--duration={value}", "--model", tiny_model_dir)
    assert (code, out, err) == (2, "", f"ferkit video: error: argument --duration: {reason} (see ferkit video --help)\n")


@pytest.fixture
def camera_clip(tmp_path, monkeypatch):
    """Camera 1 is moving.mp4 (40 frames of a moving square) read as a camera that says it gives 20 fps; any
    other index opens nothing. Returns the cameras opened."""
    from conftest import ClipCamera

    from ferkit.video import source

    clip = write_video(tmp_path / "camera.mp4", square_frames(moving_square()))
    opened = []

    def open_capture(index):
        if index != 1:
            return None
        opened.append(ClipCamera(clip, fps=FPS))
        return opened[-1]

    monkeypatch.setattr(source, "open_capture", open_capture)
    return opened


def test_a_camera_is_recorded_like_a_file_timed_by_its_own_clock(squares, camera_clip, tmp_path, monkeypatch):
    """The same tracked faces as the file gives, times from the clock (here 0.25 s a frame), the annotated
    video paced to that clock (20 fps x 0.25 s: 5 slots a frame), the camera released."""
    from ferkit.video import source

    ticks = iter(range(10_000))
    monkeypatch.setattr(source, "live_clock", lambda: next(ticks) * 0.25)
    summary = process_video(squares, 1, out_video=tmp_path / "cam.avi", csv_path=tmp_path / "cam.csv")
    from_file = process_video(squares, square_video := write_video(tmp_path / "same.mp4",
                                                                   square_frames(moving_square())),
                              csv_path=tmp_path / "file.csv")
    rows, file_rows = read_csv(tmp_path / "cam.csv"), read_csv(tmp_path / "file.csv")
    assert [{k: v for k, v in r.items() if k != "time_s"} for r in rows] == [
        {k: v for k, v in r.items() if k != "time_s"} for r in file_rows]
    assert sorted({float(r["time_s"]) for r in rows}) == [i * 0.25 for i in range(40)]
    assert (summary["input"], summary["frames"], summary["seconds"], summary["video_fps"]) == ("1", 40, 9.8, 20.0)
    untimed = [{i: {k: v for k, v in face.items() if not k.endswith("_s")} for i, face in run["faces"].items()}
               for run in (summary, from_file)]
    assert untimed[0] == untimed[1] and square_video.is_file()
    assert (summary["faces"]["1"]["first_s"], summary["faces"]["1"]["last_s"]) == (0.75, 9.75)  # frames 3 and 39
    assert count_frames(tmp_path / "cam.avi") == (39 * 5 + 1, SIZE)
    assert [camera.released for camera in camera_clip] == [1] and summary["ended"] == "the camera stopped giving frames"
    assert "ended" not in from_file  # a file's end needs no saying


def test_ctrl_c_ends_a_camera_recording_with_its_outputs_whole(squares, camera_clip, tmp_path, monkeypatch):
    """Ctrl-C is how a camera recording ends: the frames so far are kept. A file interrupted is removed."""
    from conftest import ClipCamera

    real_read = ClipCamera.read

    def read(self, count=iter(range(10_000))):
        if next(count) == 12:
            raise KeyboardInterrupt
        return real_read(self)

    monkeypatch.setattr(ClipCamera, "read", read)
    try:
        summary = process_video(squares, 1, csv_path=tmp_path / "cam.csv", timeline_png=tmp_path / "cam.png")
    except KeyboardInterrupt:  # uncaught, it would stop pytest itself
        pytest.fail("Ctrl-C escaped the camera recording")
    assert summary["frames"] == 12 and [int(r["frame"]) for r in read_csv(tmp_path / "cam.csv")] == list(range(12))
    assert (tmp_path / "cam.png").is_file() and [camera.released for camera in camera_clip] == [1]
    assert summary["ended"] == "interrupted"


def test_a_stream_failing_midway_ends_the_recording_with_its_outputs_kept(ferkit, camera_clip, tmp_path,
                                                                          tiny_model_dir, monkeypatch):
    """A decoder error on the 13th read ends the recording like a stream that stops: 12 frames kept, said why."""
    from conftest import ClipCamera

    real_read = ClipCamera.read

    def read(self):
        self.reads = getattr(self, "reads", 0) + 1
        if self.reads == 13:  # a real OpenCV error: the binding keeps `err` on the class, set by the last one raised
            cv2.cvtColor(np.zeros((0, 0), np.uint8), cv2.COLOR_GRAY2BGR)
        return real_read(self)

    monkeypatch.setattr(ClipCamera, "read", read)
    code, out, err = ferkit("video", "1", "--csv", tmp_path / "cam.csv", "--model", tiny_model_dir)
    assert (code, err) == (0, "recording 1 until Ctrl-C\n")
    assert out.splitlines()[0].startswith("1: 12 frames, ")
    assert out.splitlines()[-1] == "  ended: the camera failed (!_src.empty())"
    assert [int(r["frame"]) for r in read_csv(tmp_path / "cam.csv")] == list(range(12))
    # opened once (before the model loads) and kept for the recording: a camera opened twice may refuse the second
    assert (tmp_path / "cam_timeline.png").is_file() and [camera.released for camera in camera_clip] == [1]


def test_a_camera_opened_before_a_model_that_fails_to_load_is_released(ferkit, camera_clip, tmp_path):
    code, out, err = ferkit("video", "1", "--csv", tmp_path / "cam.csv", "--model", tmp_path / "no-model")
    assert (code, out) == (2, "") and err.startswith("ferkit video: error: ") and "no-model" in err
    assert [camera.released for camera in camera_clip] == [1] and not (tmp_path / "cam.csv").exists()


def test_a_file_interrupted_leaves_no_output(squares, moving_video, tmp_path):
    def interrupt(done, total):
        if done == 5:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        process_video(squares, moving_video, csv_path=tmp_path / "f.csv", progress_callback=interrupt)
    assert not (tmp_path / "f.csv").exists()


def test_cli_records_a_camera_for_its_duration(ferkit, camera_clip, tmp_path, tiny_model_dir, monkeypatch):
    from ferkit.video import source

    ticks = iter(range(10_000))
    monkeypatch.setattr(source, "live_clock", lambda: next(ticks) * 0.1)
    code, out, err = ferkit("video", "1", "--csv", tmp_path / "cam.csv", "--duration", "2", "--json",
                            "--model", tiny_model_dir)
    assert (code, err) == (0, "recording 1 for 2 s (or Ctrl-C)\n")
    summary = json.loads(out)
    assert (summary["input"], summary["frames"], summary["seconds"]) == ("1", 20, 1.95)  # 1.9 s + 1 / 20 fps
    assert summary["ended"] == "duration"
    assert summary["outputs"]["timeline"] == str(tmp_path / "cam_timeline.png")


@pytest.mark.parametrize("camera, message", [("0", "0: the camera cannot be opened"),
                                             ("-1", "-1: a camera index is 0 or more")])
def test_cli_camera_that_cannot_be_used_is_one_error_line(ferkit, camera_clip, tmp_path, tiny_model_dir, camera,
                                                          message):
    code, out, err = ferkit("video", camera, "--csv", tmp_path / "cam.csv", "--model", tiny_model_dir)
    assert (code, out) == (2, "") and err.splitlines()[-1] == f"ferkit video: error: {message}"
    assert not (tmp_path / "cam.csv").exists()


@pytest.mark.parametrize("source, reason", [("99", "the camera cannot be opened"),
                                            ("rtsp://127.0.0.1:9/none", "the stream cannot be opened")])
def test_cli_camera_or_stream_that_cannot_be_opened_is_one_line(tiny_model_dir, tmp_path, source, reason):
    """Through a real process: nothing else on stderr (no OpenCV or FFmpeg warning, no "recording" line)."""
    result = subprocess.run([sys.executable, "-m", "ferkit.cli", "video", source, "--csv", str(tmp_path / "c.csv"),
                             "--model", str(tiny_model_dir)], capture_output=True, text=True, timeout=60)
    assert (result.returncode, result.stderr, result.stdout) == (2, f"ferkit video: error: {source}: {reason}\n", "")
    assert list(tmp_path.iterdir()) == []


def test_sigterm_ends_a_video_like_ctrl_c_and_leaves_no_partial_file(tiny_model_dir, tmp_path):
    """`kill`, `timeout` or a container stopping sends SIGTERM: the run unwinds, its partial outputs removed."""
    import signal
    import time

    clip = write_video(tmp_path / "long.mp4", 3000)
    work = tmp_path / "out"
    work.mkdir()
    process = subprocess.Popen([sys.executable, "-m", "ferkit.cli", "video", str(clip), "--csv", str(work / "f.csv"),
                                "--out", str(work / "f.mp4"), "--model", str(tiny_model_dir), "--no-progress"],
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 60
    while not any(work.iterdir()) and time.monotonic() < deadline and process.poll() is None:
        time.sleep(0.05)  # the partial outputs exist once the first frame is on its way
    assert process.poll() is None, "the video ended before it could be stopped"
    process.send_signal(signal.SIGTERM)
    out, err = process.communicate(timeout=60)
    assert (process.returncode, out, err) == (143, "", "ferkit video: terminated\n")
    assert list(work.iterdir()) == []


def test_an_output_named_as_a_folder_is_refused_before_any_work(squares, moving_video, tmp_path):
    (tmp_path / "results").mkdir()
    for path in (str(tmp_path / "new") + "/", tmp_path / "results"):
        with pytest.raises(MediaError, match=re.escape(f"{path}: is a folder; the csv output needs a file name")):
            process_video(squares, moving_video, csv_path=path)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["moving.mp4", "results"]
    assert list((tmp_path / "results").iterdir()) == []


# --- real media ----------------------------------------------------------------------------

@pytest.fixture
def videos(shared_dir) -> Path:
    return shared_dir / "data" / "media" / "videos"


@pytest.fixture(scope="module")
def haar(tiny_model_dir) -> Pipeline:
    return Pipeline.from_config(Config(model=str(tiny_model_dir)))


@pytest.mark.shared
def test_real_video_with_one_face(haar, videos, tmp_path):
    summary = process_video(haar, videos / "single_face.mp4", csv_path=tmp_path / "faces.csv")
    assert summary["frames"] == 72 and summary["faces_seen"] == 1
    assert summary["faces"]["1"]["frames"] >= 60


@pytest.mark.shared
@pytest.mark.parametrize("every", [9, 10, 30])
def test_real_video_with_one_face_at_any_detect_every(haar, videos, every):
    """The face is confirmed at the second detection round (frame `every`) and shown to the last
    frame: 72 - every frames. From 10 on, no face was found at all (tracks ended between rounds)."""
    pipeline = Pipeline(haar.classifier, haar.detector, PipelineConfig(detect_every=every))
    summary = process_video(pipeline, videos / "single_face.mp4")
    assert summary["faces_seen"] == 1 and summary["faces"]["1"]["frames"] == 72 - every


@pytest.mark.shared
def test_real_video_without_faces(haar, videos):
    """no_face.mp4 reports 98 frames and decodes 95: a frame-count estimate, not a damaged file."""
    summary = process_video(haar, videos / "no_face.mp4")
    assert summary["frames"] == 95 and summary["faces_seen"] == 0


@pytest.mark.shared
def test_real_video_where_the_face_leaves(haar, videos, tmp_path):
    summary = process_video(haar, videos / "face_noface.mov", csv_path=tmp_path / "faces.csv")
    frames = faces_by_frame(read_csv(tmp_path / "faces.csv"))
    assert summary["frames"] == len(frames) == 169 and summary["faces_seen"] >= 1
    last_face = max(i for i, faces in frames.items() if faces)
    assert 30 < last_face < 140, "the face is in view for a while, then gone to the end"


@pytest.mark.shared
@pytest.mark.parametrize("damage", [truncate, corrupt_middle])
def test_damaged_real_video(haar, videos, tmp_path, damage):
    bad = damage(videos / "WolfgangLanger_Pexels.mp4", tmp_path / "damaged.mp4")
    with pytest.raises(MediaError, match="of 472 cannot be read"):
        process_video(haar, bad, csv_path=tmp_path / "faces.csv")
    assert not (tmp_path / "faces.csv").exists()


@pytest.mark.shared
@pytest.mark.slow
def test_cli_on_the_long_real_video(ferkit, tmp_path, tiny_model_dir, videos):
    video = tmp_path / "clip.mp4"
    shutil.copy(videos / "WolfgangLanger_Pexels.mp4", video)
    code, out, err = ferkit("video", video, "--out", tmp_path / "annotated.mp4", "--csv", tmp_path / "faces.csv",
                             "--json", "--no-progress", "--model", tiny_model_dir)
    assert code == 0, err
    summary = json.loads(out)
    assert summary["frames"] == 472 and summary["seconds"] == pytest.approx(19.7, abs=0.1)
    main_face = max(summary["faces"].values(), key=lambda face: face["frames"])
    assert main_face["frames"] >= 400, "one woman, tracked under one id nearly throughout"
    assert count_frames(tmp_path / "annotated.mp4") == (472, (640, 360))
    assert len({row["frame"] for row in read_csv(tmp_path / "faces.csv")}) == 472
    assert (tmp_path / "faces_timeline.png").is_file()
