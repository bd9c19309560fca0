"""`ferkit.analyse` and the top-level names: the shared Pipeline in one call, and `import ferkit` kept light."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from conftest import write_video

import ferkit
from ferkit.config import DETECTOR_ALLOWED, Config, DetectorConfig, PipelineConfig, section_fields
from ferkit.errors import FerkitError, MediaError, ModelError
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
    with pytest.raises(TypeError, match="^unknown setting 'smooth': the keywords are model, detector, the detector's"):
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


def test_analyse_takes_a_loaded_model_as_it_takes_the_model_s_folder(tiny_model_dir, monkeypatch):
    """A loaded FacialExpressionModel read as str(model): "model '<ferkit...FacialExpressionModel object at 0x...>'
    not found"."""
    from conftest import bright_box_detector

    from ferkit.inference.classifier import FacialExpressionModel

    for where in ("ferkit.inference.pipeline.create_detector", "ferkit.quick.create_detector"):
        monkeypatch.setattr(where, lambda cfg: bright_box_detector(cfg.min_face), raising=False)
    image = np.full((120, 160, 3), 30, np.uint8)
    image[10:60, 20:70] = 230  # a 50-pixel bright "face" top left, a 30-pixel one lower right
    image[70:100, 110:140] = 240
    loaded = FacialExpressionModel.load(tiny_model_dir)
    by_object = ferkit.analyse(image, loaded, tta=True)
    assert [face.box for face in by_object] == [(20, 10, 50, 50), (110, 70, 30, 30)]
    assert faces_as_tuples(by_object) == faces_as_tuples(ferkit.analyse(image, str(tiny_model_dir), tta=True))
    kept = quick.pipeline_for(loaded, tta=True)
    assert kept.classifier is loaded and kept.cfg.tta and quick.pipeline_for(loaded, tta=True) is kept
    other = FacialExpressionModel.load(tiny_model_dir)  # kept by the object: another copy is another pipeline
    assert quick.pipeline_for(other, tta=True).classifier is other
    with pytest.raises(ValueError, match=r"^classifier_threads applies when ferkit loads the model; give a loaded "
                                         r"model its threads when loading it \(FacialExpressionModel.load"):
        ferkit.analyse(image, loaded, classifier_threads=2)  # it would be ignored
    with pytest.raises(TypeError) as error:
        ferkit.analyse(image, ["fast"])
    assert str(error.value) == ("model must be a bundled model's name, a path or a loaded FacialExpressionModel, "
                                "got list")


def two_faces(shared_dir):
    """One real face pasted twice on a gray canvas, at full size (about 110 px) and at 0.4 (about 50 px): big left,
    small right, both found by YuNet and Haar."""
    import cv2

    face = read_image(shared_dir / GROUP_PHOTO)[262:452, 656:818]  # the right-hand face, 162x190
    canvas = np.full((240, 420, 3), 128, np.uint8)
    canvas[20:210, 20:182] = face
    small = cv2.resize(face, None, fx=0.4, fy=0.4, interpolation=cv2.INTER_AREA)
    canvas[80:80 + small.shape[0], 280:280 + small.shape[1]] = small
    return canvas


@pytest.mark.shared
def test_the_cli_s_detector_settings_are_keywords_that_pick_the_faces_as_the_config_does(shared_dir):
    image = two_faces(shared_dir)

    def as_configured(**detector):
        return faces_as_tuples(Pipeline.from_config(Config(model="fast", detector=DetectorConfig(**detector)))
                               .analyse(image))

    both = ferkit.analyse(image, "fast")
    assert [f.box[0] < 200 for f in both] == [True, False] and min(both[1].box[2:]) < 60 < min(both[0].box[2:])
    big = ferkit.analyse(image, "fast", min_face=60)  # the small face is under 60 px: dropped, the big one kept
    assert len(big) == 1 and big[0].box[0] < 200 and faces_as_tuples(big) == as_configured(min_face=60)
    assert both[0].det_score > both[1].det_score  # the big face is the surer: a threshold between drops the small
    threshold = (both[0].det_score + both[1].det_score) / 2
    assert faces_as_tuples(ferkit.analyse(image, "fast", detect_threshold=threshold)) == faces_as_tuples(both[:1])
    haar = ferkit.analyse(image, "fast", detector="haar")
    assert [f.box[0] < 200 for f in haar] == [True, False] and min(haar[1].box[2:]) < 60 < min(haar[0].box[2:])
    for setting in ({"min_face": 60}, {"min_neighbors": 30}):  # the small face has fewer cascade hits too
        found = ferkit.analyse(image, "fast", detector="haar", **setting)
        assert faces_as_tuples(found) == faces_as_tuples(haar[:1]) == as_configured(name="haar", **setting)
    assert len(ferkit.analyse(image, "fast", detector="haar", min_neighbors=5)) == 2  # the default, given


def test_the_kept_pipelines_are_keyed_on_the_detector_settings(tiny_model_dir, tmp_path):
    import os
    import shutil

    from ferkit.vision.detectors import bundled_yunet_path

    model = str(tiny_model_dir)
    first = quick.pipeline_for(model)
    assert quick.pipeline_for(model, min_face=20) is first  # the default, given: the same settings
    larger = quick.pipeline_for(model, min_face=30)
    assert larger is not first and (first.detector.cfg.min_face, larger.detector.cfg.min_face) == (20, 30)
    assert quick.pipeline_for(model, min_face=30) is larger and quick.pipeline_for(model) is first
    strict = quick.pipeline_for(model, detect_threshold=0.8)
    assert (strict.detector.cfg.detect_threshold, strict.detector.cfg.min_face) == (0.8, 20)
    haar = quick.pipeline_for(model, "haar", min_neighbors=6)
    assert (haar.detector.name, haar.detector.cfg.min_neighbors) == ("haar", 6)
    assert quick.pipeline_for(model, "haar").detector.cfg.min_neighbors == 5
    passed = DetectorConfig(name="haar", scale_factor=1.2)  # keywords apply over a DetectorConfig, left unchanged
    tuned = quick.pipeline_for(model, passed, min_face=40).detector.cfg
    assert (tuned.name, tuned.scale_factor, tuned.min_face, passed.min_face) == ("haar", 1.2, 40, 20)
    ferkit.analyse(np.zeros((120, 160, 3), np.uint8), model, min_face=50)  # analyse keeps it by the setting too
    assert quick.pipeline_for(model, min_face=50).detector.cfg.min_face == 50
    copy = Path(shutil.copy(bundled_yunet_path(), tmp_path / "yunet.onnx"))
    other = quick.pipeline_for(model, detector_model=copy)  # a Path, kept as the str the CLI passes
    assert other.detector.cfg.detector_model == str(copy) and other is not first
    assert quick.pipeline_for(model, detector_model=str(copy)) is other
    os.utime(copy, ns=(copy.stat().st_atime_ns, copy.stat().st_mtime_ns + 10**9))  # rewritten in place
    assert quick.pipeline_for(model, detector_model=copy) is not other
    with pytest.raises(FerkitError, match="missing.onnx: YuNet model file not found"):
        ferkit.analyse(np.zeros((8, 8), np.uint8), model, detector_model=tmp_path / "missing.onnx")


def test_detector_keywords_are_checked_by_the_config_s_rules_and_refused_for_the_other_detector(tiny_model_dir,
                                                                                                tmp_path):
    model, image = str(tiny_model_dir), np.zeros((120, 160, 3), np.uint8)
    for setting, value, error in (("min_face", 0, ValueError), ("min_face", 30.0, TypeError),
                                  ("detect_threshold", 1.5, ValueError), ("min_face", None, TypeError)):
        rule = DETECTOR_ALLOWED[setting]
        message = f"DetectorConfig.{setting} must be {rule.describe()}, got {value!r} ({type(value).__name__})"
        with pytest.raises(error) as raised:
            ferkit.analyse(image, model, **{setting: value})
        assert str(raised.value) == message
    with pytest.raises(TypeError, match="^DetectorConfig.min_neighbors must be a whole number"):
        ferkit.analyse(image, model, detector="haar", min_neighbors="6")
    with pytest.raises(ValueError) as raised:
        ferkit.analyse(image, model, min_neighbors=6)
    assert str(raised.value) == "min_neighbors needs detector='haar' (detector='yunet' would ignore it)"
    for setting, value in (("detect_threshold", 0.8), ("detector_model", str(tmp_path / "y.onnx"))):
        for detector in ("haar", DetectorConfig(name="haar")):
            with pytest.raises(ValueError) as raised:
                ferkit.analyse(image, model, detector=detector, **{setting: value})
            assert str(raised.value) == f"{setting} needs detector='yunet' (detector='haar' would ignore it)"
    with pytest.raises(ValueError, match="^min_neighbors needs detector='haar'"):
        ferkit.analyse_video(write_video(tmp_path / "clip.mp4", 4), model, min_neighbors=6)
    assert ferkit.analyse(image, model, detector="haar", min_face=30, detector_model=None) == []  # None: not given
    assert [faces for _, _, faces in ferkit.analyse_video(tmp_path / "clip.mp4", model, min_face=30)] == [[]] * 4
    with pytest.raises(TypeError) as raised:
        ferkit.analyse(image, model, scale_factor=1.2)  # a DetectorConfig field without a flag: no keyword
    pipeline_fields = ", ".join(sorted(section_fields(PipelineConfig)))
    assert str(raised.value) == (
        "unknown setting 'scale_factor': the keywords are model, detector, the detector's detect_threshold, "
        "detector_model, min_face, min_neighbors (other DetectorConfig fields: detector=DetectorConfig(...)) and "
        f"PipelineConfig's {pipeline_fields}")
    assert "\n" not in str(raised.value) and pipeline_fields.startswith("align, classifier_threads")


def test_the_detector_keywords_are_the_cli_s_detector_flags_refused_by_the_same_rule():
    """One name per setting: the CLI's flag (dashes), DetectorConfig's field and the keyword; and the detector
    each needs is the one cli.NEEDS_FLAG names."""
    import argparse

    from ferkit.cli import NEEDS_FLAG, add_detector_flags

    parser = argparse.ArgumentParser()
    add_detector_flags(parser)
    flags = {action.dest for action in parser._actions} - {"help", "detector"}
    assert set(quick.DETECTOR_SETTINGS) == flags and flags <= set(section_fields(DetectorConfig))
    needs = {flag: value for flag, (other, value) in NEEDS_FLAG.items() if other == "detector"}
    assert {name: value for name, value in quick.DETECTOR_SETTINGS.items() if value} == needs


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
