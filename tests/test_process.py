"""process.py pinned exactly: the summary of a scripted run as a whole, format_summary's text,
default_timeline's path rules, run_video (`ferkit video`) text/JSON output and progress bar,
check_outputs' messages word for word, and open_outputs' errors for partial files that cannot be
created. (Found missing by mutation testing, issue 10.)

The scripted pipeline finds white squares (bright_box_detector) and classifies every face with the
same scores (ConstantClassifier), so ids, frames, times, expressions and shares are exact; no
model is loaded.
"""

from __future__ import annotations

import io
import os
import json
import re
import sys
from pathlib import Path
from types import SimpleNamespace

import cv2
import numpy as np
import pytest
from conftest import box_frames, bright_box_detector, write_video

import ferkit.files
from ferkit.config import Config, PipelineConfig
from ferkit.errors import MediaError
from ferkit.inference.pipeline import Face, Pipeline
from ferkit.labels import CLASS_NAMES
from ferkit.video import process
from ferkit.video.process import check_outputs, default_timeline, format_summary, process_video, run_video, summarise
from ferkit.video.writers import FaceHistory

FPS, SIZE, FRAMES = 7.5, (160, 120), 40  # a non-integer frame rate and a non-square frame
CFG = PipelineConfig()
# every face, every frame: happy first; the smoothed mean of equal scores is the same scores
SCORES = np.array([0.05, 0.05, 0.1, 0.5, 0.1, 0.15, 0.05])
HAPPY_ONLY = {name: 1.0 if name == "happy" else 0.0 for name in CLASS_NAMES}


class ConstantClassifier:
    """Stands in for FacialExpressionModel: SCORES for every crop."""

    def predict_proba(self, crops, tta=False, uniform_prior=False):
        return np.tile(SCORES, (len(crops), 1))


@pytest.fixture(scope="module")
def scripted() -> Pipeline:
    return Pipeline(ConstantClassifier(), bright_box_detector(), CFG)


@pytest.fixture
def video(tmp_path) -> Path:
    """40 frames at 7.5 fps of one square sliding right. AVI (MJPG) stores 7.5 fps exactly and
    gives frame i the container time i / 7.5 s."""
    frames = box_frames([[(10 + 2 * i, 40, 40, 40)] for i in range(FRAMES)], SIZE)
    return write_video(tmp_path / "moving.avi", frames, fps=FPS)


def expected_summary(video: Path, outputs: dict) -> dict:
    """The summary of `video` through `scripted`, without the processing fps (timing-dependent).

    seconds: 40 / 7.5 = 5.3333 -> 5.333; video_fps 7.5 (not rounded to 8); width 160, height 120.
    The face is confirmed at the second detection round (frame detect_every = 3, at 3 / 7.5 =
    0.4 s) and shown to the last frame (39 / 7.5 = 5.2 s): 40 - 3 = 37 frames, all happy."""
    first = CFG.detect_every
    return {"input": str(video), "frames": FRAMES, "seconds": 5.333, "video_fps": 7.5, "width": 160,
            "height": 120, "faces_seen": 1,
            "faces": {"1": {"frames": FRAMES - first, "first_s": round(first / FPS, 3), "last_s": 5.2,
                            "emotion": "happy", "shares": HAPPY_ONLY}},
            "outputs": {kind: str(path) for kind, path in outputs.items()}}


def video_codec(path: Path) -> bytes:
    capture = cv2.VideoCapture(str(path))
    code = int(capture.get(cv2.CAP_PROP_FOURCC))
    frames = 0
    while capture.read()[0]:
        frames += 1
    capture.release()
    return code.to_bytes(4, "little"), frames


# --- process_video and summarise -------------------------------------------------------------

def test_summary_of_a_scripted_run_as_a_whole(scripted, video, tmp_path, monkeypatch):
    timelines = []
    plot = process.plot_timeline

    def spy(history, path, duration_s, frame_s):
        timelines.append((duration_s, frame_s))
        plot(history, path, duration_s, frame_s)

    monkeypatch.setattr(process, "plot_timeline", spy)
    outputs = {"video": tmp_path / "annotated.mp4", "csv": tmp_path / "faces.csv", "timeline": tmp_path / "chart.png"}
    summary = process_video(scripted, video, *outputs.values())
    fps = summary.pop("fps")
    assert isinstance(fps, float) and fps > 0 and fps == round(fps, 1)  # frames per second of work, 1 decimal
    assert summary == expected_summary(video, outputs)
    assert list(summary) == ["input", "frames", "seconds", "video_fps", "width", "height", "faces_seen", "faces",
                             "outputs"]
    # the chart spans the whole video (frames / fps) and knows one frame's time (1 / fps) for its gaps
    assert timelines == [(FRAMES / FPS, 1 / FPS)]
    assert cv2.imread(str(tmp_path / "chart.png")) is not None
    json.dumps(summary)


@pytest.mark.parametrize("every", [1, 3, 9, 10, 20, 39])
def test_any_detect_every_shows_a_still_face_from_its_second_detection_round(tmp_path, every):
    """A still square for 40 frames, the default track_max_missed (8) and track_min_hits (2): the face
    is confirmed at frame `every` (the second round) and shown to the last frame, 39 / 7.5 = 5.2 s.
    A --detect-every of 10 or more found no face at all when coasting ended tracks between rounds."""
    still = write_video(tmp_path / "still.avi", box_frames([[(60, 40, 40, 40)]] * FRAMES, SIZE), fps=FPS)
    pipeline = Pipeline(ConstantClassifier(), bright_box_detector(), PipelineConfig(detect_every=every))
    summary = process_video(pipeline, still)
    assert summary["faces"] == {"1": {"frames": FRAMES - every, "first_s": round(every / FPS, 3), "last_s": 5.2,
                                      "emotion": "happy", "shares": HAPPY_ONLY}}


def test_summarise_rounds_and_counts(tmp_path):
    """summarise alone, with a given processing time: fps = frames / elapsed to 1 decimal."""
    source = SimpleNamespace(path=tmp_path / "v.mp4", fps=60000 / 1001, width=640, height=360)
    history = FaceHistory()
    sad = np.eye(len(CLASS_NAMES))[CLASS_NAMES.index("sad")]
    for i, seconds in enumerate([0.0334, 0.0667, 0.1001]):
        history.add(seconds, [Face((0, 0, 9, 9), SCORES, face_id=4)] + ([Face((9, 9, 9, 9), sad, 2)] if i else []))
    summary = summarise(source, history, 7, 0.3, {"csv": tmp_path / "f.csv"}, 7 / source.fps)
    assert summary == {
        "input": str(tmp_path / "v.mp4"), "frames": 7,
        "seconds": 0.117,  # 7 / 59.94006 = 0.11678
        "video_fps": 59.94,  # 59.94006 to 3 decimals (59.9401 to 4)
        "width": 640, "height": 360,
        "fps": 23.3,  # 7 / 0.3 = 23.33
        "faces_seen": 2,
        "faces": {"2": {"frames": 2, "first_s": 0.067, "last_s": 0.1, "emotion": "sad",
                        "shares": {name: 1.0 if name == "sad" else 0.0 for name in CLASS_NAMES}},
                  "4": {"frames": 3, "first_s": 0.033, "last_s": 0.1, "emotion": "happy", "shares": HAPPY_ONLY}},
        "outputs": {"csv": str(tmp_path / "f.csv")}}
    # no measurable time: divided by 1e-9 s, not by zero
    assert summarise(source, FaceHistory(), 7, 0.0, {}, 0.1)["fps"] == round(7 / 1e-9, 1)


def test_the_given_codec_is_used_instead_of_the_extensions(scripted, video, tmp_path):
    # .avi would get MJPG; with fourcc mp4v the file holds MPEG-4 part 2 (FFmpeg's tag FMP4)
    process_video(scripted, video, out_video=tmp_path / "a.avi", fourcc="mp4v")
    assert video_codec(tmp_path / "a.avi") == (b"FMP4", FRAMES)
    process_video(scripted, video, out_video=tmp_path / "b.avi")
    assert video_codec(tmp_path / "b.avi") == (b"MJPG", FRAMES)


def test_a_given_codec_allows_an_extension_without_a_default_codec(scripted, video, tmp_path):
    # .flv has no codec in VIDEO_FOURCCS, so it is refused without a fourcc, and written with one
    with pytest.raises(MediaError, match=r"a\.flv: unsupported video extension"):
        process_video(scripted, video, out_video=tmp_path / "a.flv")
    summary = process_video(scripted, video, out_video=tmp_path / "a.flv", fourcc="FLV1")
    assert summary["outputs"] == {"video": str(tmp_path / "a.flv")}
    assert video_codec(tmp_path / "a.flv") == (b"flv1", FRAMES)


@pytest.fixture
def partials_cannot_be_created(tmp_path, monkeypatch):
    """Every partial file is named inside a folder that does not exist, so creating it fails with
    ENOENT although the output's own folder exists."""
    monkeypatch.setattr(ferkit.files, "partial_path", lambda target: target.parent / "missing" / target.name)


@pytest.mark.parametrize("kind", ["csv_path", "timeline_png"])
def test_an_output_that_cannot_be_created_is_named_in_the_error(scripted, video, tmp_path, partials_cannot_be_created,
                                                               kind):
    target = tmp_path / ("faces.csv" if kind == "csv_path" else "chart.png")
    calls = []
    with pytest.raises(MediaError) as error:
        process_video(scripted, video, progress_callback=lambda *a: calls.append(a), **{kind: target})
    # the CSV is opened, the chart touched, before the first frame: the message names the output
    assert str(error.value) == f"{target}: cannot be written (No such file or directory)"
    assert calls == []
    assert sorted(p.name for p in tmp_path.iterdir()) == ["moving.avi"]


# --- check_outputs ---------------------------------------------------------------------------

@pytest.fixture
def here(tmp_path, monkeypatch) -> Path:
    """tmp_path as the working folder: outputs given as relative names are reported as given."""
    monkeypatch.chdir(tmp_path)
    return tmp_path


def test_check_outputs_refuses_the_input_as_an_output(here):
    with pytest.raises(MediaError) as error:
        check_outputs(here / "in.mp4", {"video": Path("out.mp4"), "csv": Path("in.mp4")}, None)
    assert str(error.value) == "in.mp4: an output may not overwrite the input video"  # as given, not resolved


def test_check_outputs_refuses_a_video_folder_whose_name_is_not_utf8(here):
    """cv2.VideoWriter segfaults on such a path: refused by name, before OpenCV sees it."""
    folder = here / os.fsdecode(b"clips\xff")
    folder.mkdir()
    with pytest.raises(MediaError) as error:
        check_outputs(here / "in.mp4", {"video": folder / "out.mp4"}, None)
    assert str(error.value) == (f"{here}/clips\\xff/out.mp4: its folder's name is not valid UTF-8; "
                                "choose another folder")
    check_outputs(here / "in.mp4", {"csv": folder / "out.csv"}, None)  # Python writes the CSV: any name will do


def test_check_outputs_refuses_one_file_for_two_outputs(here):
    with pytest.raises(MediaError) as error:
        check_outputs(here / "in.mp4", {"csv": Path("same.png"), "timeline": here / "same.png"}, None)
    assert str(error.value) == "same.png: the same file is given for two outputs"  # the first of the two


def test_check_outputs_video_extension_only_without_a_codec(here):
    with pytest.raises(MediaError) as error:
        check_outputs(here / "in.mp4", {"video": Path("a.xyz")}, None)
    assert str(error.value) == "a.xyz: unsupported video extension (use .mp4, .m4v, .mov, .mkv, .avi, .webm)"
    assert check_outputs(here / "in.mp4", {"video": Path("a.xyz")}, "MJPG") is None  # the codec is given
    assert check_outputs(here / "in.mp4", {"video": Path("a.MKV"), "csv": Path("a.csv")}, None) is None


def test_check_outputs_timeline_formats(here):
    with pytest.raises(MediaError) as error:
        check_outputs(here / "in.mp4", {"timeline": Path("chart.txt")}, None)
    assert str(error.value) == "chart.txt: the timeline chart must be one of .png, .svg, .pdf, .jpg, .jpeg"
    for name in ["c.png", "c.SVG", "c.pdf", "c.jpg", "c.JPEG"]:  # the extension in any case
        assert check_outputs(here / "in.mp4", {"timeline": Path(name)}, None) is None


def test_check_outputs_reports_errors_before_opening_the_input(here):
    # the output names are checked first: a missing input is not even looked at
    with pytest.raises(MediaError, match=r"^a\.xyz: unsupported video extension"):
        process_video(None, here / "missing.mp4", out_video="a.xyz")


# --- default_timeline ------------------------------------------------------------------------

@pytest.mark.parametrize("out, csv_path, expected", [
    ("clips/annotated.mp4", "tables/faces.csv", Path("tables/faces_timeline.png")),  # beside the CSV first
    ("clips/annotated.mp4", None, Path("clips/annotated_timeline.png")),  # else beside the video
    (None, "faces.tar.csv", Path("faces.tar_timeline.png")),  # NAME is all but the last extension
    (None, None, None),  # no output named: no chart
    ("", "", None),
])
def test_default_timeline(out, csv_path, expected):
    assert default_timeline(out, csv_path) == expected


# --- run_video (ferkit video) ----------------------------------------------------------------

@pytest.fixture
def cli_pipeline(scripted, monkeypatch):
    """run_video builds its pipeline from the config: here it gets the scripted one."""
    monkeypatch.setattr(Pipeline, "from_config", classmethod(lambda cls, config: scripted))


class Terminal(io.StringIO):
    def isatty(self):
        return True


def test_run_video_prints_text_by_default(cli_pipeline, video, tmp_path, capsys):
    out = tmp_path / "annotated.mp4"
    assert run_video(video, Config(), out=str(out), progress=False) == 0
    stdout = capsys.readouterr().out
    # only the processing rate is timing-dependent
    assert re.fullmatch(
        rf"{re.escape(str(video))}: 40 frames, 5\.3 s, 1 face id\(s\), processed at \d+ fps\n"
        r"  face #1: 37 frames \(0\.4-5\.2 s\), happy 100%, angry 0%, disgust 0%\n"
        rf"  video: {re.escape(str(out))}\n"
        rf"  timeline: {re.escape(str(tmp_path / 'annotated_timeline.png'))}\n", stdout), stdout
    assert out.is_file() and (tmp_path / "annotated_timeline.png").is_file()


def test_run_video_json(cli_pipeline, video, tmp_path, capsys):
    csv_path = tmp_path / "faces.csv"
    assert run_video(video, Config(), csv_path=str(csv_path), as_json=True, progress=False) == 0
    summary = json.loads(capsys.readouterr().out)
    summary.pop("fps")
    # the chart's default goes beside the CSV
    assert summary == expected_summary(video, {"csv": csv_path, "timeline": tmp_path / "faces_timeline.png"})
    assert csv_path.is_file() and (tmp_path / "faces_timeline.png").is_file()


def test_run_video_given_timeline_and_both_outputs(cli_pipeline, video, tmp_path, capsys):
    outputs = {"video": tmp_path / "a.mkv", "csv": tmp_path / "a.csv", "timeline": tmp_path / "chart.svg"}
    assert run_video(video, Config(), *map(str, outputs.values()), as_json=True, progress=False) == 0
    assert json.loads(capsys.readouterr().out)["outputs"] == {kind: str(path) for kind, path in outputs.items()}
    assert all(path.is_file() for path in outputs.values())


def test_progress_bar_on_a_terminal_by_default(cli_pipeline, video, monkeypatch, capsys):
    terminal = Terminal()
    monkeypatch.setattr(sys, "stderr", terminal)
    assert run_video(video, Config(), as_json=True) == 0
    json.loads(capsys.readouterr().out)
    drawn = terminal.getvalue()
    # fed by process_video's progress callback: the last state shows every frame of the 40
    assert drawn.split("\r")[-1].startswith("100%|") and " 40/40 [" in drawn.split("\r")[-1], drawn
    assert drawn.endswith("\n"), "the bar is finished (closed) after the run"


def test_no_progress_bar_when_asked_or_not_a_terminal(cli_pipeline, video, monkeypatch, capsys):
    terminal = Terminal()
    monkeypatch.setattr(sys, "stderr", terminal)
    assert run_video(video, Config(), as_json=True, progress=False) == 0
    assert terminal.getvalue() == ""
    monkeypatch.setattr(sys, "stderr", io.StringIO())  # not a terminal
    not_a_terminal = sys.stderr
    assert run_video(video, Config(), as_json=True) == 0
    assert not_a_terminal.getvalue() == ""


# --- format_summary --------------------------------------------------------------------------

def test_format_summary_text():
    summary = {
        "input": "clips/a.mp4", "frames": 250, "seconds": 10.04, "video_fps": 25.0, "width": 640, "height": 360,
        "fps": 87.6, "faces_seen": 2,
        "faces": {
            "3": {"frames": 200, "first_s": 0.04, "last_s": 8.26, "emotion": "neutral",
                  "shares": {"angry": 0.1, "disgust": 0.0, "fear": 0.05, "happy": 0.25, "sad": 0.1,
                             "surprise": 0.15, "neutral": 0.35}},
            "1": {"frames": 12, "first_s": 1.5, "last_s": 1.96, "emotion": "happy", "shares": HAPPY_ONLY},
        },
        "outputs": {"video": "out/a.mp4", "csv": "out/a.csv"},
    }
    # one line for the run (seconds to 1 decimal, fps to none), one per face in the summary's order
    # with its three largest shares best first (equal shares keep the class order), one per output
    assert format_summary(summary) == (
        "clips/a.mp4: 250 frames, 10.0 s, 2 face id(s), processed at 88 fps\n"
        "  face #3: 200 frames (0.0-8.3 s), neutral 35%, happy 25%, surprise 15%\n"
        "  face #1: 12 frames (1.5-2.0 s), happy 100%, angry 0%, disgust 0%\n"
        "  video: out/a.mp4\n"
        "  csv: out/a.csv")


def test_format_summary_without_faces_or_outputs():
    summary = {"input": "b.mov", "frames": 3, "seconds": 0.1, "fps": 0.4, "faces_seen": 0, "faces": {}, "outputs": {}}
    assert format_summary(summary) == "b.mov: 3 frames, 0.1 s, 0 face id(s), processed at 0 fps"


def test_format_summary_percentages_round():
    shares = {"angry": 0.666, "disgust": 0.2, "fear": 0.134, "happy": 0.0, "sad": 0.0, "surprise": 0.0, "neutral": 0.0}
    summary = {"input": "c.mp4", "frames": 9, "seconds": 0.36, "fps": 9.5, "faces_seen": 1,
               "faces": {"7": {"frames": 9, "first_s": 0.0, "last_s": 0.32, "shares": shares}}, "outputs": {}}
    assert format_summary(summary).splitlines() == [
        "c.mp4: 9 frames, 0.4 s, 1 face id(s), processed at 10 fps",
        "  face #7: 9 frames (0.0-0.3 s), angry 67%, disgust 20%, fear 13%"]
