"""`ferkit.analyse` and the top-level names: the shared Pipeline in one call, and `import ferkit` kept light."""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest
from conftest import write_video

import ferkit
from ferkit.config import Config, PipelineConfig
from ferkit.errors import MediaError, ModelError
from ferkit import quick
from ferkit.inference.images import read_image
from ferkit.inference.pipeline import Pipeline
from ferkit.video.source import VideoSource

GROUP_PHOTO = "data/media/photos/multi_face.jpg"  # 1000x667, five faces
VIDEO = "data/media/videos/single_face.mp4"


@pytest.fixture(autouse=True)
def no_kept_pipelines():
    quick._pipelines.clear()
    yield
    quick._pipelines.clear()


def faces_as_tuples(faces):
    return [(f.box, f.scores.tolist(), f.det_score) for f in faces]


def test_import_ferkit_loads_neither_opencv_nor_onnxruntime_until_a_name_is_used():
    code = ("import sys, ferkit; before = {'cv2', 'onnxruntime'} & set(sys.modules); ferkit.Pipeline; "
            "print(sorted(before), sorted({'cv2', 'onnxruntime'} & set(sys.modules)))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[] ['cv2']"  # onnxruntime only when a model loads


def test_top_level_names_are_the_package_s_own_objects():
    from ferkit.inference.classifier import FacialExpressionModel
    from ferkit.labels import CLASS_NAMES

    assert ferkit.Pipeline is Pipeline and ferkit.Config is Config and ferkit.read_image is read_image
    assert ferkit.FacialExpressionModel is FacialExpressionModel and ferkit.CLASS_NAMES is CLASS_NAMES
    assert ferkit.analyse is quick.analyse
    assert {"analyse", "Pipeline", "PipelineConfig", "Face"} <= set(dir(ferkit)) and "analyse" in ferkit.__all__
    with pytest.raises(AttributeError, match="module 'ferkit' has no attribute 'analyze_faces'"):
        ferkit.analyze_faces


@pytest.mark.shared
def test_analyse_is_the_pipeline_on_the_decoded_photo_with_the_settings_given(shared_dir):
    photo = shared_dir / GROUP_PHOTO
    image = read_image(photo)
    plain = Pipeline.from_config(Config(model="fast")).analyse(image)
    uniform = Pipeline.from_config(Config(model="fast", pipeline=PipelineConfig(uniform_prior=True))).analyse(image)
    assert len(plain) == 5 and faces_as_tuples(plain) != faces_as_tuples(uniform)
    assert faces_as_tuples(ferkit.analyse(photo, "fast")) == faces_as_tuples(plain)
    assert faces_as_tuples(ferkit.analyse(str(photo), "fast", uniform_prior=True)) == faces_as_tuples(uniform)
    assert faces_as_tuples(ferkit.analyse(photo.read_bytes(), "fast")) == faces_as_tuples(plain)
    assert faces_as_tuples(ferkit.analyse(image, "fast")) == faces_as_tuples(plain)
    haar = Pipeline.from_config(Config(model="fast", detector="haar")).analyse(image)
    assert faces_as_tuples(ferkit.analyse(image, "fast", detector="haar")) == faces_as_tuples(haar)
    assert all(f.det_score is None for f in haar)  # Haar gives no confidence: the haar pipeline really ran


def test_one_pipeline_per_distinct_settings_and_the_oldest_dropped(tiny_model_dir, monkeypatch):
    monkeypatch.setattr(quick, "KEPT_PIPELINES", 2)
    model = str(tiny_model_dir)
    first = quick.pipeline_for(model)
    assert quick.pipeline_for(model) is first
    mirrored = quick.pipeline_for(model, tta=True)
    assert mirrored is not first and mirrored.cfg.tta and not first.cfg.tta
    assert quick.pipeline_for(model) is first  # used again: now the newest
    haar = quick.pipeline_for(model, "haar")  # a third: drops the one used longest ago (tta)
    assert haar.detector is not first.detector and len(quick._pipelines) == 2
    assert quick.pipeline_for(model) is first and quick.pipeline_for(model, tta=True) is not mirrored


def test_analyse_refuses_bad_input_with_the_package_s_errors(tiny_model_dir, tmp_path):
    model = str(tiny_model_dir)
    with pytest.raises(TypeError, match="^unknown setting 'smooth': the settings are PipelineConfig's fields \\(align,"):
        ferkit.analyse(np.zeros((8, 8), np.uint8), model, smooth=0.5)
    with pytest.raises(TypeError, match="^PipelineConfig.tta must be True or False, got 3"):
        ferkit.analyse(np.zeros((8, 8), np.uint8), model, tta=3)
    with pytest.raises(ModelError, match="model 'no-such-model' not found"):
        ferkit.analyse(np.zeros((8, 8), np.uint8), "no-such-model")
    with pytest.raises(MediaError, match="missing.jpg: no such file"):
        ferkit.analyse(tmp_path / "missing.jpg", model)
    with pytest.raises(MediaError, match="not an image OpenCV can read"):
        ferkit.analyse(b"not an image", model)
    with pytest.raises(TypeError, match="image must be a uint8 numpy array"):
        ferkit.analyse([[0, 1], [2, 3]], model)
    assert ferkit.analyse(np.zeros((120, 160, 3), np.uint8), model) == []


def stream_tuples(frames):
    return [(i, s, [(f.face_id, f.box, f.scores.tolist()) for f in faces]) for i, s, faces in frames]


@pytest.mark.shared
def test_analyse_video_is_one_stream_over_the_frames_as_ferkit_video_reads_them(shared_dir):
    video = shared_dir / VIDEO
    stream = Pipeline.from_config(Config(model="fast", pipeline=PipelineConfig(smoothing=0.3))).stream()
    expected = stream_tuples((i, s, stream.process(frame)) for i, s, frame in VideoSource(video).frames())
    got = stream_tuples(ferkit.analyse_video(video, "fast", smoothing=0.3))
    assert got == expected and len(got) == 72
    assert [faces != [] for _, _, faces in got[:4]] == [False, False, False, True]  # shown from the 2nd round
    assert {face[0] for _, _, faces in got for face in faces} == {1}
    unsmoothed = stream_tuples(ferkit.analyse_video(video, "fast"))  # smoothing 0.5: other scores, same boxes
    assert unsmoothed != got and [f[1] for f in unsmoothed[5][2]] == [f[1] for f in got[5][2]]
    again = ferkit.analyse_video(video, "fast", smoothing=0.3)
    assert stream_tuples(again) == expected  # each call tracks afresh: the ids start again at 1


def test_analyse_video_refuses_a_bad_file_at_the_call_and_releases_it_on_break(tiny_model_dir, tmp_path,
                                                                               monkeypatch):
    model = str(tiny_model_dir)
    with pytest.raises(MediaError, match="missing.mp4: no such file"):
        ferkit.analyse_video(tmp_path / "missing.mp4", model)
    (tmp_path / "empty.mp4").write_bytes(b"")
    with pytest.raises(MediaError, match="empty.mp4: the file is empty"):
        ferkit.analyse_video(tmp_path / "empty.mp4", model)
    with pytest.raises(TypeError, match="^unknown setting 'fps'"):
        ferkit.analyse_video(tmp_path / "missing.mp4", model, fps=3)
    released = []
    monkeypatch.setattr(VideoSource, "close", lambda self: released.append(self.path.name))
    frames = ferkit.analyse_video(write_video(tmp_path / "clip.mp4", 12), model)
    for index, seconds, faces in frames:
        if index == 2:
            break
    assert released == []
    frames.close()
    assert released == ["clip.mp4"] and (index, seconds, faces) == (2, pytest.approx(0.1), [])


def test_a_run_folder_changed_on_disk_gets_a_new_pipeline(tiny_model_dir, tmp_path):
    """A script that retrains or recalibrates a run in place and analyses again must not get the old model."""
    import os
    import shutil

    folder = tmp_path / "run"
    shutil.copytree(tiny_model_dir, folder)
    first = quick.pipeline_for(str(folder))
    assert quick.pipeline_for(str(folder)) is first and quick.pipeline_for(folder) is first
    onnx = folder / "model.onnx"
    os.utime(onnx, ns=(onnx.stat().st_atime_ns, onnx.stat().st_mtime_ns + 10**9))  # rewritten, same bytes
    second = quick.pipeline_for(str(folder))
    assert second is not first and quick.pipeline_for(str(folder)) is second
    (folder / "calibration.json").write_text('{"temperature": 2.0}')  # a file added beside the model
    assert quick.pipeline_for(str(folder)) is not second
    assert quick.files_stamp("fast") == [] and quick.files_stamp(onnx) == [
        ("model.onnx", onnx.stat().st_size, onnx.stat().st_mtime_ns)]


def test_analyse_video_reads_a_camera_by_index_until_the_loop_breaks(tiny_model_dir, tmp_path, monkeypatch):
    """A camera index opens a live capture (here a clip opened as camera 2), timed from its first frame."""
    from conftest import ClipCamera

    from ferkit.video import source

    clip = write_video(tmp_path / "clip.mp4", 30)
    cameras = []

    def open_capture(index):
        if index != 2:
            return None
        cameras.append(ClipCamera(clip))
        return cameras[-1]

    monkeypatch.setattr(source, "open_capture", open_capture)
    frames = ferkit.analyse_video(2, str(tiny_model_dir))
    assert len(cameras) == 1 and cameras[0].released == 0
    got = []
    for index, seconds, faces in frames:
        got.append((index, seconds, faces))
        if index == 4:
            break
    frames.close()
    assert [g[0] for g in got] == [0, 1, 2, 3, 4] and got[0][1] < 0.5 and [g[2] for g in got] == [[]] * 5
    assert all(a[1] <= b[1] for a, b in zip(got, got[1:])) and cameras[0].released == 1
    assert [i for i, _, _ in ferkit.analyse_video(2, str(tiny_model_dir))] == list(range(30))  # to its end
    with pytest.raises(MediaError, match="^1: the camera cannot be opened$"):
        ferkit.analyse_video(1, str(tiny_model_dir))
    with pytest.raises(MediaError, match="^-1: a camera index is 0 or more$"):
        ferkit.analyse_video(-1, str(tiny_model_dir))
    monkeypatch.setattr(source, "open_capture", lambda url: ClipCamera(clip) if url == "rtsp://cam/1" else None)
    assert len(list(ferkit.analyse_video("rtsp://cam/1", str(tiny_model_dir)))) == 30
    with pytest.raises(MediaError, match="^rtsp://cam/2: the stream cannot be opened$"):
        ferkit.analyse_video("rtsp://cam/2", str(tiny_model_dir))


def test_a_camera_that_opens_without_a_frame_is_refused_at_the_call(tiny_model_dir, monkeypatch):
    from conftest import FakeCapture

    from ferkit.video import source

    monkeypatch.setattr(source, "open_capture", lambda index: FakeCapture(0))
    with pytest.raises(MediaError, match="^0: the camera opens but gives no frame$"):
        ferkit.analyse_video(0, str(tiny_model_dir))
