"""The shared per-frame path with scripted parts: exact score smoothing, test-time augmentation
averaging, when faces show and hide, which detection rounds scan fully, and the JSON of a face."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pytest

from ferkit.config import DetectorConfig, PipelineConfig
from ferkit.inference.classifier import MAX_BATCH, FacialExpressionModel, tta_views
from ferkit.inference.pipeline import TRACKED_SIZE_SHARE, Face, Pipeline
from ferkit.labels import CLASS_NAMES
from ferkit.vision.detectors import FaceDetector

BOX = (20, 30, 60, 40)  # non-square: x, y, w, h
FRAME = np.zeros((120, 160, 3), np.uint8)


class ScriptedClassifier:
    """Returns the given score rows in turn, one per face asked about."""

    def __init__(self, rows):
        self.rows = iter(np.asarray(rows, np.float64))
        self.calls = []

    def predict_proba(self, crops, tta=False, uniform_prior=False):
        self.calls.append((len(crops), tta) + ((True,) if uniform_prior else ()))
        return np.stack([next(self.rows) for _ in crops]) if len(crops) else np.zeros((0, 7))


class ScriptedDetector(FaceDetector):
    """Finds the boxes listed for each call in turn (an empty list: nothing), through the real
    detector's scaling; records the smallest face size each call searched for."""

    def __init__(self, rounds):
        super().__init__(DetectorConfig(min_face=1))
        self.rounds = iter(rounds)
        self.min_sizes = []

    def _detect(self, small, min_size):
        self.min_sizes.append(min_size)
        return np.asarray(next(self.rounds), np.int32).reshape(-1, 4)

    def detect_faces(self, frame, min_size=None, **passes):
        self.passes = getattr(self, "passes", []) + [passes]
        return super().detect_faces(frame, min_size, **passes)


def scores(*values) -> np.ndarray:
    rows = np.asarray(values, np.float64)
    return rows / rows.sum(axis=1, keepdims=True)


def stream(detector, classifier, **cfg):
    return Pipeline(classifier, detector, PipelineConfig(**cfg)).stream()


# --- smoothing ---------------------------------------------------------------------------

def test_smoothing_is_an_exact_moving_average_per_face():
    raw = scores([1, 2, 3, 4, 5, 6, 7], [7, 1, 1, 1, 1, 1, 1], [1, 1, 9, 1, 1, 1, 1], [2, 2, 2, 8, 2, 2, 2])
    faces_stream = stream(ScriptedDetector([[BOX]] * 4), ScriptedClassifier(raw), detect_every=1,
                          track_min_hits=1, smoothing=0.25)
    frames = [faces_stream.process(FRAME) for _ in range(4)]
    assert [(face.box, face.face_id) for faces in frames for face in faces] == [(BOX, 1)] * 4
    shown = [faces[0].scores for faces in frames]
    expected = [raw[0]]
    for row in raw[1:]:
        expected.append(0.25 * row + 0.75 * expected[-1])
    np.testing.assert_allclose(shown, expected, rtol=1e-12)
    assert shown[1][0] == pytest.approx(0.25 * 7 / 13 + 0.75 * 1 / 28)


def test_smoothing_one_shows_the_raw_scores_and_faces_are_smoothed_apart():
    left, right = (0, 0, 40, 40), (100, 50, 50, 50)
    raw = scores(*np.random.default_rng(0).random((6, 7)))
    detector = ScriptedDetector([[right, left]] * 3)  # largest first, as detectors return them
    two = stream(detector, ScriptedClassifier(raw), detect_every=1, track_min_hits=1, smoothing=1.0)
    shown = [[face.scores for face in two.process(FRAME)] for _ in range(3)]
    np.testing.assert_allclose(np.concatenate(shown), raw)

    half = stream(ScriptedDetector([[right, left]] * 3), ScriptedClassifier(raw), detect_every=1,
                  track_min_hits=1, smoothing=0.5)
    frames = [half.process(FRAME) for _ in range(3)]
    np.testing.assert_allclose(frames[1][0].scores, 0.5 * raw[2] + 0.5 * raw[0])  # face 1 only with face 1
    np.testing.assert_allclose(frames[1][1].scores, 0.5 * raw[3] + 0.5 * raw[1])
    assert [face.face_id for face in frames[2]] == [1, 2]


# --- showing, hiding, track lifetime through a stream ------------------------------------

def test_a_lost_face_is_hidden_after_two_detection_rounds():
    detector = ScriptedDetector([[BOX], [BOX], [], [], [], []])  # frames 0, 2, 4, 6, 8, 10
    faces_stream = stream(detector, ScriptedClassifier(scores(*np.ones((20, 7)))), detect_every=2,
                          track_min_hits=1, track_max_missed=8)
    shown = [[face.face_id for face in faces_stream.process(FRAME)] for _ in range(12)]
    # seen on frames 0 and 2; not visible once 2 * detect_every frames passed without a match
    assert shown == [[1]] * 6 + [[]] * 6
    assert len(detector.min_sizes) == 6


@pytest.mark.parametrize("back_on, same_id", [(10, True), (12, False)])
def test_track_lifetime_in_a_stream(back_on, same_id):
    """max_missed 8: unseen since frame 2, the track is 8 frames old on frame 10 (survives) and
    would be 9 on frame 11 (dies), so a face back on frame 10 keeps id 1 and on frame 12 gets id 2."""
    rounds = [[BOX] if frame in (0, 2, back_on) else [] for frame in range(0, 14, 2)]
    faces_stream = stream(ScriptedDetector(rounds), ScriptedClassifier(scores(*np.ones((20, 7)))),
                          detect_every=2, track_min_hits=1, track_max_missed=8)
    shown = [[face.face_id for face in faces_stream.process(FRAME)] for _ in range(14)]
    assert shown[back_on] == ([1] if same_id else [2])


def test_faces_show_only_after_min_hits_rounds():
    faces_stream = stream(ScriptedDetector([[BOX]] * 3), ScriptedClassifier(scores(*np.ones((9, 7)))),
                          detect_every=1, track_min_hits=3)
    assert [len(faces_stream.process(FRAME)) for _ in range(3)] == [0, 0, 1]


TALL = (20, 30, 40, 60)  # narrower than tall: the tracked-size search follows the smaller side


@pytest.mark.parametrize("full_scan_every, full_rounds", [(4, {0, 4}), (3, {0, 3, 6}), (1, set(range(7)))])
def test_detection_rounds_full_scans_and_tracked_size_searches(full_scan_every, full_rounds):
    detector = ScriptedDetector([[TALL]] * 7)
    faces_stream = stream(detector, ScriptedClassifier(scores(*np.ones((20, 7)))), detect_every=2,
                          full_scan_every=full_scan_every, track_min_hits=1)
    for _ in range(14):
        faces_stream.process(FRAME)
    near = int(TRACKED_SIZE_SHARE * min(TALL[2:]))  # 0.6 * 40 = 24
    smallest = 8  # a full scan: the configured min_face (1), raised to the detector's floor of 8 pixels
    assert detector.min_sizes == [smallest if i in full_rounds else near for i in range(7)]  # frames 0, 2, ...


def test_a_lost_face_hides_after_two_frames_when_every_frame_is_detected():
    faces_stream = stream(ScriptedDetector([[BOX], [], [], []]), ScriptedClassifier(scores(*np.ones((9, 7)))),
                          detect_every=1, track_min_hits=1)
    assert [[face.face_id for face in faces_stream.process(FRAME)] for _ in range(4)] == [[1], [1], [], []]


@pytest.mark.parametrize("tta", [True, False])
def test_the_tta_setting_reaches_the_classifier(tta):
    classifier = ScriptedClassifier(scores(*np.ones((4, 7))))
    pipeline = Pipeline(classifier, ScriptedDetector([[BOX], [BOX]]), PipelineConfig(tta=tta, track_min_hits=1))
    pipeline.analyse(FRAME)
    pipeline.stream().process(FRAME)
    assert classifier.calls == [(1, tta), (1, tta)]


def test_the_uniform_prior_setting_reaches_the_classifier():
    classifier = ScriptedClassifier(scores(*np.ones((4, 7))))
    pipeline = Pipeline(classifier, ScriptedDetector([[BOX], [BOX]]),
                        PipelineConfig(uniform_prior=True, track_min_hits=1))
    pipeline.analyse(FRAME)
    pipeline.stream().process(FRAME)
    assert classifier.calls == [(1, False, True), (1, False, True)]


def test_a_uniform_prior_reweights_a_real_models_scores_and_needs_known_class_shares(tiny_model_dir, tmp_path):
    import json
    import shutil

    from ferkit.config import Config
    from ferkit.errors import ModelError
    from ferkit.inference.classifier import apply_uniform_prior

    shutil.copytree(tiny_model_dir, tmp_path / "models" / "mine")
    config = Config(model="mine", models_dir=tmp_path / "models", pipeline=PipelineConfig(uniform_prior=True))
    faces = np.random.default_rng(4).integers(0, 256, (2, 48, 48)).astype(np.uint8)
    pipeline = Pipeline.from_config(config)
    model = pipeline.classifier
    expected = apply_uniform_prior(model.predict_proba(faces), model.class_shares())
    pipeline.crops = lambda frame, boxes, landmarks=None: faces
    np.testing.assert_allclose(pipeline.classify(FRAME, np.zeros((2, 4))), expected, atol=1e-6)
    assert np.abs(expected - model.predict_proba(faces)).max() > 0.01
    (tmp_path / "models" / "mine" / "calibration.json").write_text(json.dumps({"temperature": 1.0, "labels": "x"}))
    with pytest.raises(ModelError, match="its training labels \\(x\\) have no known class shares"):
        Pipeline.from_config(config)
    config.pipeline.uniform_prior = False
    assert Pipeline.from_config(config).cfg.uniform_prior is False  # without the prior the same model loads


def test_fine_passes_and_region_passes_of_a_stream():
    detector = ScriptedDetector([[TALL]] * 7)
    faces_stream = stream(detector, ScriptedClassifier(scores(*np.ones((20, 7)))), detect_every=1,
                          full_scan_every=4, fine_scan_every=3, track_min_hits=1)
    for _ in range(7):
        faces_stream.process(FRAME)
    assert [p["fine"] for p in detector.passes] == [True, False, False, True, False, False, True]
    assert [p["scan"] for p in detector.passes] == [True, False, False, False, True, False, False]
    assert detector.passes[0]["regions"] is None, "nothing tracked yet"
    assert [p["regions"].tolist() for p in detector.passes[1:]] == [[list(TALL)]] * 6


def test_still_images_get_the_fine_pass():
    detector = ScriptedDetector([[BOX]])
    Pipeline(ScriptedClassifier(scores(*np.ones((1, 7)))), detector, PipelineConfig()).analyse(FRAME)
    assert detector.passes == [{"fine": True}]


def test_faces_are_classified_in_turns():
    """classify_per_frame 2: new faces first (all of them), then the faces classified longest ago."""
    faces = [(0, 0, 30, 30), (40, 0, 30, 30), (80, 0, 30, 30)]
    later = [(0, 60, 30, 30), (40, 60, 30, 30), (80, 60, 30, 30)]
    classifier = ScriptedClassifier(scores(*np.ones((40, 7))))
    rounds = [faces] * 3 + [faces + later] * 3
    faces_stream = stream(ScriptedDetector(rounds), classifier, detect_every=1, track_min_hits=1,
                          classify_per_frame=2)
    shown = [len(faces_stream.process(FRAME)) for _ in range(6)]
    assert shown == [3, 3, 3, 6, 6, 6], "every visible face is reported, classified this frame or not"
    # frame 0: 3 new; 1: the 2 oldest; 2: the third and the first; 3: 3 new (over the budget); 4, 5: 2 each
    assert [n for n, _ in classifier.calls] == [3, 2, 2, 3, 2, 2]


def test_budget_of_one():
    classifier = ScriptedClassifier(scores(*np.ones((20, 7))))
    two = [(0, 0, 30, 30), (40, 0, 30, 30)]
    faces_stream = stream(ScriptedDetector([two] * 3), classifier, detect_every=1, track_min_hits=1,
                          classify_per_frame=1)
    for _ in range(3):
        faces_stream.process(FRAME)
    assert [n for n, _ in classifier.calls] == [2, 1, 1]


def test_det_score_of_a_face():
    from ferkit.inference.pipeline import det_score

    assert det_score(None) is None and det_score(float("nan")) is None
    assert det_score(np.float32(0.875)) == 0.875 and type(det_score(np.float32(0.875))) is float
    face = Face((1, 2, 3, 4), scores([1] * 7)[0], det_score=0.91234)
    assert face.to_dict()["det_score"] == 0.9123


def test_from_config_uses_the_configs_model_folder_and_sections(tiny_model_dir, tmp_path):
    import shutil

    from ferkit.config import Config

    shutil.copytree(tiny_model_dir, tmp_path / "models" / "mine")
    config = Config(model="mine", models_dir=tmp_path / "models", detector=DetectorConfig(name="haar", min_face=33),
                    pipeline=PipelineConfig(smoothing=0.3))
    pipeline = Pipeline.from_config(config)
    assert pipeline.classifier.folder == tmp_path / "models" / "mine"
    assert pipeline.cfg is config.pipeline and pipeline.detector.cfg == config.detector


def test_max_faces_caps_a_frame():
    boxes = [(0, 0, 50, 50), (60, 0, 40, 40), (110, 0, 30, 30)]
    pipeline = Pipeline(ScriptedClassifier(scores(*np.ones((2, 7)))), ScriptedDetector([boxes]),
                        PipelineConfig(max_faces=2))
    assert [face.box for face in pipeline.analyse(FRAME)] == [(0, 0, 50, 50), (60, 0, 40, 40)]


# --- the JSON of a face --------------------------------------------------------------------

def test_face_to_dict():
    row = scores([1, 2, 3, 10, 5, 6, 7])[0]
    face = Face((np.int64(5), 6, 70, 80), row, face_id=3)
    data = face.to_dict()
    assert [key for key in data if key != "det_score"] == ["face_id", "box", "emotion", "scores"]
    assert data.get("det_score") is None, "no detector confidence given"
    assert data["face_id"] == 3 and data["box"] == [5, 6, 70, 80] and type(data["box"][0]) is int
    assert data["emotion"] == face.emotion == "happy" and face.confidence == pytest.approx(10 / 34)
    assert data["scores"] == {name: round(float(v), 4) for name, v in zip(CLASS_NAMES, row)}
    assert "face_id" not in Face((0, 0, 1, 1), row).to_dict()


# --- test-time augmentation ----------------------------------------------------------------

@pytest.fixture
def counting_model(tiny_model_dir):
    """A real model whose network is replaced by one that returns, for input row r, the row
    [r, r + 0.5, ...]: averaging over views is then exact arithmetic."""
    model = FacialExpressionModel(tiny_model_dir)
    model.seen = []

    def run(batch):
        model.seen.append(batch.copy())
        rows = np.arange(len(batch), dtype=np.float32)[:, None]
        return rows + np.arange(7, dtype=np.float32) / 2

    model._run = run
    return model


def test_tta_averages_all_four_views(counting_model):
    faces = np.random.default_rng(3).integers(0, 256, (3, 48, 48)).astype(np.uint8)
    averaged = counting_model.predict_proba(faces, tta=True)
    # face j is row j of each of the 4 views: rows j, 3 + j, 6 + j, 9 + j, mean j + 4.5
    np.testing.assert_allclose(averaged, np.arange(3)[:, None] + 4.5 + np.arange(7) / 2)
    assert [len(batch) for batch in counting_model.seen] == [12]
    np.testing.assert_allclose(counting_model.predict_proba(faces), np.arange(3)[:, None] + np.arange(7) / 2)


def test_tta_views_are_the_face_mirrored_zoomed_and_both():
    face = np.add.outer(np.arange(48) * 3, np.arange(48)).astype(np.float32)  # gradient down and right
    views = tta_views(face[None, :, :, None])[..., 0]
    zoomed = cv2.resize(face[2:-2, 2:-2], (48, 48))
    np.testing.assert_array_equal(views[0], face)
    np.testing.assert_array_equal(views[1], face[:, ::-1])
    np.testing.assert_array_equal(views[2], zoomed)
    np.testing.assert_array_equal(views[3], zoomed[:, ::-1])


def test_large_batches_run_in_chunks_in_order(counting_model):
    sizes = []
    counting_model._run = lambda batch: sizes.append(len(batch)) or np.repeat(batch.mean(axis=(1, 2, 3))[:, None], 7, 1)
    # one distinct grey per face, within the 0..255 the classifier accepts
    values = np.linspace(0, 255, MAX_BATCH + 88, dtype=np.float32)
    faces = np.broadcast_to(values[:, None, None], (MAX_BATCH + 88, 48, 48))
    out = counting_model.predict_proba(faces)
    assert sizes == [MAX_BATCH, 88]
    np.testing.assert_allclose(out[:, 0], values, rtol=1e-6)
    assert counting_model.predict_proba(np.zeros((0, 48, 48))).shape == (0, 7) and sizes == [MAX_BATCH, 88]
    counting_model.predict_proba(faces, tta=True)
    assert sizes[2:] == [4 * MAX_BATCH, 4 * 88], "every chunk gets its four views"


# --- a change of frame size --------------------------------------------------------------

WIDE = (90, 40, 60, 50)  # inside a 160x120 frame, past the right edge of a 100x100 one


def inside(box, frame) -> bool:
    x, y, w, h = box
    return x >= 0 and y >= 0 and w > 0 and h > 0 and x + w <= frame.shape[1] and y + h <= frame.shape[0]


def test_a_new_frame_size_starts_tracking_afresh():
    """detect_every 3: frames 4 and 5 would be coast frames showing the old box (outside a 100x100 or
    1x1 frame, classified from edge padding); each new size instead gets a detection round of its own."""
    small, tiny = np.zeros((100, 100, 3), np.uint8), np.zeros((1, 1, 3), np.uint8)
    frames = [FRAME] * 4 + [small, tiny] + [FRAME] * 3
    detector = ScriptedDetector([[WIDE], [WIDE], [], [], [WIDE]])  # frames 0, 3, 4 (small), 5 (tiny), 6
    classifier = ScriptedClassifier(scores(*np.ones((20, 7))))
    faces_stream = stream(detector, classifier, detect_every=3, track_min_hits=1)
    shown = [[(face.box, face.face_id) for face in faces_stream.process(frame)] for frame in frames]
    # ids go on counting after a restart: id 1 is never reused for another face
    assert shown == [[(WIDE, 1)]] * 4 + [[], []] + [[(WIDE, 2)]] * 3
    assert len(detector.min_sizes) == 5 and [n for n, _ in classifier.calls] == [1] * 7
    # the round on a new size is a stream's first: a full scan with the fine pass, no old regions
    assert detector.passes[2:5] == [{"fine": True, "regions": None, "scan": True}] * 3


def test_the_first_detection_round_on_a_new_size_decides_what_shows():
    small = np.zeros((100, 100, 3), np.uint8)
    found = (10, 20, 50, 40)
    faces_stream = stream(ScriptedDetector([[WIDE], [found], [found]]), ScriptedClassifier(scores(*np.ones((9, 7)))),
                          detect_every=3, track_min_hits=1)
    seen = [(frame, faces_stream.process(frame)) for frame in [FRAME, small, small, small, small]]
    assert [[(face.box, face.face_id) for face in faces] for _, faces in seen] == [[(WIDE, 1)]] + [[(found, 2)]] * 4
    assert all(inside(face.box, frame) for frame, faces in seen for face in faces)


def test_a_change_of_channels_at_the_same_size_keeps_the_tracks():
    gray = np.zeros(FRAME.shape[:2], np.uint8)
    detector = ScriptedDetector([[BOX]])
    faces_stream = stream(detector, ScriptedClassifier(scores(*np.ones((9, 7)))), detect_every=3, track_min_hits=1)
    shown = [[(face.box, face.face_id) for face in faces_stream.process(frame)] for frame in [FRAME, gray, FRAME]]
    assert shown == [[(BOX, 1)]] * 3 and len(detector.min_sizes) == 1


# --- the images analyse and process take ---------------------------------------------------

class RecordingDetector(ScriptedDetector):
    """Finds BOX in every frame and keeps the frames it was given."""

    def __init__(self):
        super().__init__(iter(lambda: [BOX], None))
        self.frames = []

    def detect_faces(self, frame, min_size=None, **passes):
        self.frames.append(frame)
        return super().detect_faces(frame, min_size, **passes)


class CropRecorder(ScriptedClassifier):
    def __init__(self):
        super().__init__(scores(*np.ones((20, 7))))
        self.crops = []

    def predict_proba(self, crops, tta=False, uniform_prior=False):
        self.crops.append(crops.copy())
        return super().predict_proba(crops, tta)


COLOUR = np.random.default_rng(5).integers(0, 256, (120, 160, 3), np.uint8)


def what_is_seen(image, via: str):
    """(frames the detector got, crops the classifier got, faces) for one image through analyse or a stream."""
    detector, classifier = RecordingDetector(), CropRecorder()
    pipeline = Pipeline(classifier, detector, PipelineConfig(track_min_hits=1))
    faces = pipeline.analyse(image) if via == "analyse" else pipeline.stream().process(image)
    return detector.frames, classifier.crops, [(face.box, face.scores.tolist()) for face in faces]


@pytest.mark.parametrize("via", ["analyse", "process"])
def test_bgra_is_seen_as_its_bgr_image_and_one_channel_as_2d(via):
    alpha = np.random.default_rng(6).integers(0, 256, COLOUR.shape[:2], np.uint8)
    frames, crops, faces = what_is_seen(COLOUR, via)
    assert frames[0] is COLOUR, "BGR goes through as it is"
    bgra_frames, bgra_crops, bgra_faces = what_is_seen(np.dstack([COLOUR, alpha]), via)
    assert bgra_frames[0].shape == (120, 160, 3) and bgra_frames[0].dtype == np.uint8
    np.testing.assert_array_equal(bgra_frames[0], COLOUR)  # alpha dropped, colours untouched
    np.testing.assert_array_equal(bgra_crops[0], crops[0])
    assert bgra_faces == faces == [(BOX, [1 / 7] * 7)]

    gray = COLOUR[:, :, 1]
    frames_2d, crops_2d, faces_2d = what_is_seen(gray, via)
    frames_1, crops_1, faces_1 = what_is_seen(gray[:, :, None], via)
    assert frames_1[0].shape == (120, 160)
    np.testing.assert_array_equal(frames_1[0], frames_2d[0])
    np.testing.assert_array_equal(crops_1[0], crops_2d[0])
    assert faces_1 == faces_2d == [(BOX, [1 / 7] * 7)]


EXPECTED = "image must be a uint8 numpy array (H, W) grayscale, (H, W, 1), (H, W, 3) BGR or (H, W, 4) BGRA, got "
TO_UINT8 = ": convert it, e.g. cv2.convertScaleAbs(image), or (image * 255).astype(np.uint8) for floats in 0..1"
READ_IMAGE = ": decode the file first with ferkit.inference.images.read_image(path or bytes)"


@pytest.mark.parametrize("image, error, message", [
    (None, TypeError, EXPECTED + "None (cv2.imread returns None for a file it cannot read; "
                                 "ferkit.inference.images.read_image raises an error saying why)"),
    ("face.jpg", TypeError, EXPECTED + "str" + READ_IMAGE),
    (b"\xff\xd8\xff", TypeError, EXPECTED + "bytes" + READ_IMAGE),
    (Path("face.jpg"), TypeError, EXPECTED + type(Path()).__name__ + READ_IMAGE),  # PosixPath or WindowsPath
    (COLOUR.tolist(), TypeError, EXPECTED + "list"),
    (np.zeros((0, 0, 3), np.uint8), ValueError, "image is empty (shape (0, 0, 3))"),
    (np.zeros((0, 10), np.uint8), ValueError, "image is empty (shape (0, 10))"),
    (np.zeros((0, 10, 3), np.uint8), ValueError, "image is empty (shape (0, 10, 3))"),
    (np.zeros((12, 10, 2), np.uint8), ValueError, EXPECTED + "shape (12, 10, 2)"),
    (np.zeros((12, 10, 5), np.uint8), ValueError, EXPECTED + "shape (12, 10, 5)"),
    (COLOUR[None], ValueError, EXPECTED + "shape (1, 120, 160, 3)"),
    (np.zeros(10, np.uint8), ValueError, EXPECTED + "shape (10,)"),
    (COLOUR.astype(np.float32) / 255, TypeError, "image must be uint8 (0..255), got float32" + TO_UINT8),
    (COLOUR.astype(np.float64), TypeError, "image must be uint8 (0..255), got float64" + TO_UINT8),
    (COLOUR.astype(np.uint16) * 256, TypeError, "image must be uint8 (0..255), got uint16" + TO_UINT8),
    (COLOUR > 128, TypeError, "image must be uint8 (0..255), got bool" + TO_UINT8),
    (COLOUR.astype(np.int64), TypeError, "image must be uint8 (0..255), got int64" + TO_UINT8),
], ids=["None", "str", "bytes", "Path", "list", "0x0", "0x10", "0x10x3", "2ch", "5ch", "4d", "1d", "float01",
        "float64", "uint16", "bool", "int64"])
@pytest.mark.parametrize("via", ["analyse", "process"])
def test_images_other_than_uint8_gray_bgr_or_bgra_are_refused_in_one_line(image, error, message, via):
    detector = ScriptedDetector([])  # never asked: a detector run would raise StopIteration
    pipeline = Pipeline(ScriptedClassifier([]), detector, PipelineConfig())
    call = pipeline.analyse if via == "analyse" else pipeline.stream().process
    with pytest.raises(error) as caught:
        call(image)
    assert str(caught.value) == message and "\n" not in message
    assert detector.min_sizes == []
