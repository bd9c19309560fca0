"""Vision layer: crops, detectors (Haar, YuNet) on real photos, scoring against hand-drawn boxes,
the IoU tracker and drawing."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pytest

from ferkit.config import DetectorConfig
from ferkit.errors import FerkitError
from ferkit.inference.images import read_image
from ferkit.inference.pipeline import Face
from ferkit.labels import CLASS_NAMES, IMAGE_SIZE
from ferkit.vision.crops import FER2013_LANDMARKS, alignment_matrix, box_crop, crop_faces, square_box, to_gray
from ferkit.vision import detectors
from ferkit.vision.detectors import HaarDetector, YuNetDetector, bundled_yunet_path, create_detector, eye_angle
from ferkit.vision.draw import draw_faces
from ferkit.vision.scoring import DetectionScore, iou_matrix, match_count, read_face_boxes
from ferkit.vision.tracker import IouTracker, greedy_matches, iou_matrix

UNIFORM = np.full(len(CLASS_NAMES), 1 / len(CLASS_NAMES), np.float32)


# --- crops ---------------------------------------------------------------------------------

def test_crops_are_48x48_uint8_squares_around_the_box():
    gray = np.tile(np.arange(200, dtype=np.uint8), (100, 1))  # brightness = column
    crops = crop_faces(gray, [[50, 20, 40, 60], [0, 0, 10, 10]])
    assert crops.shape == (2, IMAGE_SIZE, IMAGE_SIZE) and crops.dtype == np.uint8
    x0, y0, side = square_box([50, 20, 40, 60], margin=0.0)
    assert (x0, y0, side) == (40, 20, 60)  # square on the longer side, same centre
    assert abs(int(crops[0, 24, 0]) - 40) <= 2 and abs(int(crops[0, 24, -1]) - 99) <= 2


def test_crops_past_the_frame_edge_are_padded_not_shrunk():
    gray = np.full((50, 50), 100, np.uint8)
    crop = crop_faces(gray, [[30, 30, 40, 40]], margin=0.25)[0]
    assert crop.shape == (IMAGE_SIZE, IMAGE_SIZE) and (crop == 100).all()


def synthetic_face(angle_deg: float, eye_distance: float, centre=(210.0, 190.0), size=(400, 420)):
    """(gray image, (5, 2) landmarks): FER2013's landmark template turned by angle_deg, scaled to
    eye_distance and moved to centre, with a bright dot on each eye and dim ones on the rest."""
    template = FER2013_LANDMARKS - FER2013_LANDMARKS[:2].mean(0)  # eye midpoint at the origin
    factor = eye_distance / np.hypot(*(FER2013_LANDMARKS[1] - FER2013_LANDMARKS[0]))
    angle = np.radians(angle_deg)
    rotation = np.array([[np.cos(angle), -np.sin(angle)], [np.sin(angle), np.cos(angle)]])
    points = template @ rotation.T * factor + centre
    gray = np.full((size[1], size[0]), 60, np.uint8)
    radius = max(2, round(eye_distance / 9))
    for i, (x, y) in enumerate(points):
        cv2.circle(gray, (round(x), round(y)), radius, 255 if i < 2 else 120, -1, cv2.LINE_AA)
    return gray, points


def eye_dots(crop: np.ndarray) -> np.ndarray:
    """Centroids of the two brightest blobs of a crop, left to right."""
    _, mask = cv2.threshold(crop, 190, 255, cv2.THRESH_BINARY)
    count, _, stats, centroids = cv2.connectedComponentsWithStats(mask)
    largest = np.argsort(-stats[1:, cv2.CC_STAT_AREA])[:2] + 1
    assert count >= 3, "both eyes visible in the crop"
    return centroids[largest][np.argsort(centroids[largest][:, 0])]


def test_alignment_maps_the_landmarks_onto_fer2013s_template():
    _, points = synthetic_face(angle_deg=27, eye_distance=60)
    matrix = alignment_matrix(points)
    mapped = points @ matrix[:, :2].T + matrix[:, 2]
    np.testing.assert_allclose(mapped, FER2013_LANDMARKS, atol=1e-6)
    assert abs(mapped[0, 1] - mapped[1, 1]) < 1e-6, "eyes level"


@pytest.mark.parametrize("angle_deg, eye_distance", [(0, 40), (-31, 55), (25, 80), (40, 220)])
def test_a_tilted_face_comes_out_level_with_its_eyes_where_fer2013_has_them(angle_deg, eye_distance):
    gray, points = synthetic_face(angle_deg, eye_distance)
    box = np.array([[points[:, 0].min() - 20, points[:, 1].min() - 20, 120, 120]]).astype(int)
    crop = crop_faces(gray, box, landmarks=points[None])[0]
    eyes = eye_dots(crop)
    np.testing.assert_allclose(eyes, FER2013_LANDMARKS[:2], atol=1.0)
    assert abs(np.degrees(np.arctan2(*(eyes[1] - eyes[0])[::-1]))) < 3, "eye line level"


def test_crop_scale_shows_more_around_the_face_about_the_crop_centre():
    gray, points = synthetic_face(angle_deg=12, eye_distance=70)
    box = np.array([[100, 100, 150, 150]])
    eyes = eye_dots(crop_faces(gray, box, landmarks=points[None], scale=1.25)[0])
    centre = np.array([IMAGE_SIZE / 2, IMAGE_SIZE / 2])
    np.testing.assert_allclose(eyes, centre + (FER2013_LANDMARKS[:2] - centre) / 1.25, atol=1.0)
    shifted = eye_dots(crop_faces(gray, box, landmarks=points[None], shift_y=0.1)[0])
    np.testing.assert_allclose(shifted, FER2013_LANDMARKS[:2] + [0, 4.8], atol=1.0)


def test_faces_without_landmarks_or_with_alignment_off_get_the_box_crop():
    gray, points = synthetic_face(angle_deg=30, eye_distance=60)
    box = np.array([[150, 140, 120, 110]])
    expected = box_crop(gray, box[0])
    nan = np.full((1, 5, 2), np.nan)
    np.testing.assert_array_equal(crop_faces(gray, box, landmarks=nan)[0], expected)
    np.testing.assert_array_equal(crop_faces(gray, box, landmarks=points[None], align=False)[0], expected)
    np.testing.assert_array_equal(crop_faces(gray, box)[0], expected)
    assert not np.array_equal(crop_faces(gray, box, landmarks=points[None])[0], expected)
    degenerate = np.zeros((1, 5, 2))  # all landmarks in one point: no alignment possible
    np.testing.assert_array_equal(crop_faces(gray, box, landmarks=degenerate)[0], expected)


def test_to_gray_accepts_gray_bgr_and_bgra():
    bgr = np.zeros((4, 4, 3), np.uint8)
    bgr[..., 2] = 255
    assert to_gray(bgr).shape == (4, 4) and to_gray(bgr)[0, 0] == 76  # OpenCV's red weight
    assert to_gray(np.dstack([bgr, np.full((4, 4), 255, np.uint8)]))[0, 0] == 76
    assert to_gray(np.zeros((4, 4), np.uint8)).shape == (4, 4)


# --- detectors -----------------------------------------------------------------------------

def test_detector_choice_errors_are_user_errors(tmp_path):
    with pytest.raises(FerkitError, match="unknown detector"):
        create_detector(DetectorConfig(name="mtcnn"))
    with pytest.raises(FerkitError, match="not found"):
        create_detector(DetectorConfig(name="yunet", detector_model=str(tmp_path / "missing.onnx")))
    junk = tmp_path / "junk.onnx"
    junk.write_bytes(b"not an onnx model")
    with pytest.raises(FerkitError, match="not a YuNet model"):
        create_detector(DetectorConfig(name="yunet", detector_model=str(junk)))


def test_the_default_detector_is_the_bundled_yunet_with_its_licence():
    assert DetectorConfig().name == "yunet" and DetectorConfig().detector_model is None
    detector = create_detector(DetectorConfig())
    assert isinstance(detector, YuNetDetector)
    model = bundled_yunet_path()
    assert model.is_file() and model.stat().st_size == 229_738
    assert "MIT License" in (model.parent / "LICENSE").read_text()
    assert "SHA-256" in (model.parent / "PROVENANCE.md").read_text()


def test_every_command_and_the_web_app_default_to_yunet():
    from ferkit.cli import build_parser, config_from_args
    from ferkit.config import Config

    for argv in (["predict", "a.jpg"], ["video", "a.mp4"], ["serve"]):
        args = build_parser().parse_args(argv)
        assert config_from_args(args).detector.name == "yunet", argv
    assert Config().detector.name == "yunet"  # create_app(Config()) and Pipeline.from_config(Config())
    args = build_parser().parse_args(["predict", "a.jpg", "--detector", "haar"])
    assert config_from_args(args).detector.name == "haar"


@pytest.mark.parametrize("name", ["haar", "yunet"])
def test_nothing_in_a_blank_frame(name):
    found = create_detector(DetectorConfig(name=name)).detect_faces(np.full((240, 320, 3), 128, np.uint8), fine=True)
    assert found.boxes.shape == (0, 4) and found.boxes.dtype == np.int32
    assert found.scores.shape == (0,) and found.landmarks.shape == (0, 5, 2)


@pytest.fixture
def photos(shared_dir) -> Path:
    return shared_dir / "data" / "media" / "photos"


@pytest.fixture
def yunet_path(tmp_path) -> str:
    """A user's own YuNet file (--detector-model): a copy of the bundled one elsewhere."""
    path = tmp_path / "my_yunet.onnx"
    path.write_bytes(bundled_yunet_path().read_bytes())
    return str(path)


# multi_face.jpg's five faces (x, y, w, h), drawn by hand from YuNet's boxes and checked by eye
GROUP_PHOTO_FACES = np.array([[683, 294, 107, 129], [531, 305, 100, 132], [314, 239, 96, 123],
                              [214, 66, 92, 108], [433, 215, 86, 105]])


@pytest.mark.shared
def test_haar_finds_the_faces_of_the_group_photo(photos):
    image = read_image(photos / "multi_face.jpg")
    boxes = create_detector(DetectorConfig(name="haar")).detect(image)
    assert match_count(boxes, GROUP_PHOTO_FACES, min_iou=0.4) >= 4
    # without overlap suppression the cascade also returns a second box half over one face
    assert len(boxes) <= 5, "no false or duplicate detection"
    overlaps = iou_matrix(boxes, boxes) - np.eye(len(boxes))
    assert overlaps.max() <= 0.3, "no two boxes overlap"
    areas = boxes[:, 2] * boxes[:, 3]
    assert (np.diff(areas) <= 0).all(), "largest face first"
    assert (boxes[:, 0] + boxes[:, 2] <= image.shape[1]).all() and (boxes[:, 1] + boxes[:, 3] <= image.shape[0]).all()


@pytest.mark.shared
@pytest.mark.parametrize("own_file", [False, True])
def test_yunet_finds_all_five_faces_of_the_group_photo(photos, yunet_path, own_file):
    cfg = DetectorConfig(detector_model=yunet_path if own_file else None)
    found = create_detector(cfg).detect_faces(read_image(photos / "multi_face.jpg"), fine=True)
    assert len(found) == 5 and match_count(found.boxes, GROUP_PHOTO_FACES, min_iou=0.7) == 5
    assert ((found.scores > 0.7) & (found.scores <= 1)).all(), "det_score: YuNet's confidence"
    eyes = found.landmarks[:, :2]  # landmarks inside their box, eyes in its upper half
    boxes = found.boxes[:, None, :]
    assert ((eyes[..., 0] > boxes[..., 0]) & (eyes[..., 0] < boxes[..., 0] + boxes[..., 2])).all()
    assert ((eyes[..., 1] > boxes[..., 1]) & (eyes[..., 1] < boxes[..., 1] + boxes[..., 3] / 2)).all()


@pytest.mark.shared
def test_small_faces_of_a_large_frame_need_the_fine_pass(photos):
    """The group photo shrunk to faces of 24-32 pixels, in a 1920x1080 frame: the coarse pass
    (the frame at 640 pixels, faces of about 10) misses them; the fine pass finds all five."""
    image = read_image(photos / "multi_face.jpg")
    small = cv2.resize(image, None, fx=0.3, fy=0.3, interpolation=cv2.INTER_AREA)
    frame = np.full((1080, 1920, 3), 90, np.uint8)
    frame[700:700 + small.shape[0], 1500:1500 + small.shape[1]] = small
    truth = np.round(GROUP_PHOTO_FACES * 0.3).astype(int) + [1500, 700, 0, 0]
    detector = create_detector(DetectorConfig(min_face=20))
    assert len(detector.detect_faces(frame)) == 0
    found = detector.detect_faces(frame, fine=True)
    assert len(found) == 5 and match_count(found.boxes, truth, min_iou=0.5) == 5
    # a region pass around each tracked box finds them again without the fine pass
    again = detector.detect_faces(frame, regions=found.boxes)
    assert len(again) == 5 and match_count(again.boxes, found.boxes, min_iou=0.7) == 5


@pytest.mark.shared
def test_faces_at_the_frame_border_are_found_and_kept_inside_the_frame(photos):
    image = read_image(photos / "multi_face.jpg")
    x, y, w, h = GROUP_PHOTO_FACES[0]
    left = image[:, x + int(0.4 * w):]  # 40% of the face beyond the left edge
    top = image[y + int(0.3 * h):, :]  # 30% of the face above the top edge
    detector = create_detector(DetectorConfig())
    for frame, near in ((left, lambda b: b[0] == 0 and abs(b[1] - y) < 20),
                        (top, lambda b: b[1] == 0 and abs(b[0] - x) < 20)):
        found = detector.detect_faces(frame, fine=True)
        assert any(near(b) for b in found.boxes), found.boxes
        assert (found.boxes[:, :2] >= 0).all()
        assert (found.boxes[:, 0] + found.boxes[:, 2] <= frame.shape[1]).all()
        assert (found.boxes[:, 1] + found.boxes[:, 3] <= frame.shape[0]).all()


@pytest.mark.shared
def test_tilted_heads_are_found_and_their_tilt_read_again_upright(photos, monkeypatch):
    """YuNet finds the five faces turned 30 degrees, but its landmarks read only part of the tilt;
    detecting each tilted face again, turned upright by the first reading, reads more of it."""
    image = read_image(photos / "multi_face.jpg")
    matrix = cv2.getRotationMatrix2D((500, 333), 30, 1.0)  # counter-clockwise: eye lines at -30 degrees
    tilted = cv2.warpAffine(image, matrix, (1000, 667), borderMode=cv2.BORDER_REPLICATE)

    def eye_angles() -> np.ndarray:
        found = create_detector(DetectorConfig()).detect_faces(tilted, fine=True)
        assert len(found) == 5 and match_count(found.boxes, found.boxes) == 5
        return np.array([eye_angle(points) for points in found.landmarks])

    refined = eye_angles()
    monkeypatch.setattr(detectors, "ROLL_ROUNDS", 0)
    first = eye_angles()
    assert (refined <= first + 0.5).all(), (first, refined)  # never less of the tilt
    assert (refined < first - 3).sum() >= 2 and refined.mean() < first.mean() - 1, (first, refined)


@pytest.mark.shared
def test_boxes_are_in_the_original_frame_pixels_whatever_the_downscale(photos):
    image = read_image(photos / "multi_face.jpg")
    full = create_detector(DetectorConfig(max_side=2000)).detect(image)
    downscaled = create_detector(DetectorConfig(max_side=640)).detect(image)
    assert match_count(downscaled, full, min_iou=0.5) >= len(full) - 1


@pytest.mark.shared
def test_min_size_leaves_out_smaller_faces(photos):
    image = read_image(photos / "multi_face.jpg")
    detector = create_detector(DetectorConfig())
    every = detector.detect(image)
    large = detector.detect(image, min_size=int(np.median(every[:, 2])) + 1)
    assert 0 < len(large) < len(every)
    assert match_count(large, every) == len(large), "the large faces are the same boxes"


@pytest.mark.shared
@pytest.mark.parametrize("name, min_recall, min_precision", [("haar", 0.75, 0.8), ("yunet", 0.9, 0.9)])
def test_detectors_against_hand_drawn_boxes(photos, shared_dir, name, min_recall, min_precision):
    """The dlib set: 9 photos, 43 faces mostly 37-45 px wide, so min_face 20, through the
    still-image path (coarse and fine passes). Measured (bench/bench_real_faces.py): see
    docs/real-faces.md."""
    detector, score = create_detector(DetectorConfig(name=name, min_face=20)), DetectionScore()
    for xml in ("training.xml", "testing.xml"):
        for image_path, truth in read_face_boxes(photos / "dlib_faces" / xml).items():
            score.add(detector.detect_faces(read_image(image_path), fine=True).boxes, truth)
    assert score.truth == 43
    assert score.recall >= min_recall and score.precision >= min_precision, (score.recall, score.precision)


@pytest.mark.shared
def test_detector_settings_take_effect(photos, yunet_path):
    image = read_image(photos / "multi_face.jpg")
    lenient = create_detector(DetectorConfig(name="haar", min_neighbors=2)).detect(image)
    strict = create_detector(DetectorConfig(name="haar", min_neighbors=60)).detect(image)
    assert isinstance(create_detector(DetectorConfig(name="haar")), HaarDetector)
    assert len(strict) < len(lenient)
    assert len(create_detector(DetectorConfig(min_face=400)).detect(image)) == 0
    assert len(create_detector(DetectorConfig(name="haar", min_face=400)).detect(image)) == 0
    yunet = DetectorConfig(name="yunet", detector_model=yunet_path)
    assert len(create_detector(yunet).detect(image)) == 5
    yunet.detect_threshold = 0.9999
    assert len(create_detector(yunet).detect(image)) < 5


# --- scoring -------------------------------------------------------------------------------

def test_read_face_boxes_parses_imglab_xml_and_skips_ignored_boxes(tmp_path):
    xml = tmp_path / "faces.xml"
    xml.write_text("<dataset><images><image file='a.jpg'><box top='10' left='20' width='30' height='40'/>"
                   "<box top='1' left='2' width='3' height='4' ignore='1'/></image>"
                   "<image file='b.jpg'></image></images></dataset>")
    boxes = read_face_boxes(xml)
    assert boxes[tmp_path / "a.jpg"].tolist() == [[20, 10, 30, 40]]
    assert boxes[tmp_path / "b.jpg"].shape == (0, 4)


def test_scores_match_one_to_one_at_iou_half():
    truth = np.array([[0, 0, 10, 10], [100, 100, 10, 10]])
    detected = np.array([[1, 1, 10, 10], [0, 0, 11, 11], [50, 50, 10, 10]])  # two hits on one face, one miss
    score = DetectionScore()
    score.add(detected, truth)
    assert (score.found, score.truth, score.detected) == (1, 2, 3)
    assert score.recall == 0.5 and score.precision == pytest.approx(1 / 3)
    assert match_count(np.zeros((0, 4)), truth) == 0


# --- tracker -------------------------------------------------------------------------------

def test_iou_matrix():
    overlap = iou_matrix([[0, 0, 10, 10]], [[0, 0, 10, 10], [5, 0, 10, 10], [20, 20, 5, 5]])
    assert overlap[0].tolist() == pytest.approx([1.0, 50 / 150, 0.0])


def test_greedy_matches_take_the_best_pairs_first():
    overlap = np.array([[0.9, 0.8], [0.85, 0.1]])
    assert sorted(greedy_matches(overlap, 0.3)) == [(0, 0)]  # row 1's best column is taken, 0.1 < 0.3
    assert greedy_matches(np.zeros((0, 3)), 0.3) == []


def test_tracker_keeps_ids_for_moving_faces_and_confirms_after_min_hits():
    tracker = IouTracker(min_iou=0.3, max_missed=4, min_hits=2)
    tracker.update([[0, 0, 50, 50], [200, 0, 50, 50]])
    assert [t.face_id for t in tracker.tracks] == [None, None], "unconfirmed after one detection"
    for step in range(1, 10):
        tracker.update([[5 * step, 0, 50, 50], [200 - 5 * step, 0, 50, 50]])
        assert sorted(t.face_id for t in tracker.tracks) == [1, 2]
    assert tracker.tracks[0].box.tolist() == [45, 0, 50, 50]


def test_tracker_drops_one_off_detections_and_lost_faces():
    tracker = IouTracker(min_iou=0.3, max_missed=2, min_hits=2)
    tracker.update([[0, 0, 50, 50]])
    tracker.update([[0, 0, 50, 50], [300, 300, 40, 40]])  # the second box appears once
    for _ in range(3):
        tracker.update([[0, 0, 50, 50]])
    assert [(t.face_id, t.box.tolist()) for t in tracker.tracks] == [(1, [0, 0, 50, 50])]
    for _ in range(3):
        tracker.coast()
    assert [t.face_id for t in tracker.tracks] == [1], "past max_missed, but no detection round has missed it yet"
    tracker.update([])
    assert tracker.tracks == [], "a face unseen for more than max_missed frames, and by a detection round, is gone"
    tracker.update([[0, 0, 50, 50]])
    tracker.update([[0, 0, 50, 50]])
    assert tracker.tracks[0].face_id == 2, "a face coming back after its track died gets a new id"


# --- drawing -------------------------------------------------------------------------------

def test_draw_faces_returns_an_annotated_copy():
    frame = np.zeros((240, 400, 3), np.uint8)
    scores = np.array([0.1, 0, 0, 0.7, 0.1, 0.1, 0], np.float32)
    out = draw_faces(frame, [Face((20, 40, 100, 100), scores, face_id=3)])
    assert out.shape == frame.shape and not frame.any(), "the input frame is untouched"
    assert out[40, 60].any(), "box drawn"
    assert out[40:124, 126:300].any(), "score bars drawn right of the box"
    assert draw_faces(np.zeros((60, 80), np.uint8), []).shape == (60, 80, 3)


def test_score_bars_never_cover_another_face():
    frame = np.zeros((300, 500, 3), np.uint8)
    left, right = Face((20, 40, 100, 100), UNIFORM), Face((140, 40, 100, 100), UNIFORM)
    out = draw_faces(frame, [left, right])
    inside_right = out[50:130, 150:230]
    assert not inside_right.any(), "the left face's bars would lie on the right face: they are skipped"


def test_draw_faces_handles_faces_at_the_frame_edge():
    frame = np.zeros((120, 160, 3), np.uint8)
    out = draw_faces(frame, [Face((100, 0, 60, 60), UNIFORM, 1), Face((0, 80, 50, 50), UNIFORM, 2)])
    assert out.shape == frame.shape and out.any()


@pytest.mark.shared
def test_annotated_photo_keeps_its_size(photos):
    image = cv2.imread(str(photos / "multi_face.jpg"))
    faces = [Face(tuple(int(v) for v in b), UNIFORM) for b in create_detector(DetectorConfig()).detect(image)]
    assert draw_faces(image, faces).shape == image.shape


# --- the per-frame path with a crowd ----------------------------------------------------------

class CountingClassifier:
    """Stands in for FacialExpressionModel: scores say which call classified a face; records batch sizes."""

    def __init__(self):
        self.batches = []

    def predict_proba(self, crops, tta=False, uniform_prior=False):
        self.batches.append(len(crops))
        scores = np.zeros((len(crops), len(CLASS_NAMES)), np.float32)
        scores[:, len(self.batches) % len(CLASS_NAMES)] = 1
        return scores


class GridDetector(HaarDetector):
    """'Finds' six fixed, well separated faces with a det_score each, whatever the frame."""

    BOXES = np.array([[10 + 70 * i, 20, 50, 50] for i in range(6)])

    def _detect(self, small, min_size):
        rows = np.full((6, 15), np.nan)
        rows[:, :4], rows[:, 14] = self.BOXES, np.linspace(0.9, 0.75, 6)
        return rows


def test_a_crowd_is_classified_in_turns_and_keeps_its_det_scores():
    from ferkit.config import PipelineConfig
    from ferkit.inference.pipeline import Pipeline

    classifier = CountingClassifier()
    cfg = PipelineConfig(detect_every=1, track_min_hits=1, classify_per_frame=2, smoothing=1.0)
    stream = Pipeline(classifier, GridDetector(DetectorConfig(name="haar", min_face=1)), cfg).stream()
    frame = np.zeros((100, 440, 3), np.uint8)
    seen = [stream.process(frame) for _ in range(4)]
    assert classifier.batches == [6, 2, 2, 2], "every new face at once, then two per frame"
    assert all(len(faces) == 6 for faces in seen), "every face is shown on every frame"
    last_call = {face.face_id: int(np.argmax(face.scores)) for face in seen[-1]}
    assert sorted(np.bincount(list(last_call.values()), minlength=len(CLASS_NAMES)).tolist()) == [0, 0, 0, 0, 2, 2, 2]
    assert [face.det_score for face in seen[0]] == pytest.approx(np.linspace(0.9, 0.75, 6), abs=1e-6)
    assert seen[0][0].to_dict()["det_score"] == 0.9


# --- images in other channel layouts through the real pipeline (s33 H3, M3) ------------------

@pytest.fixture(scope="module")
def yunet_pipeline():
    from ferkit.config import PipelineConfig
    from ferkit.inference.classifier import FacialExpressionModel
    from ferkit.inference.pipeline import Pipeline

    return Pipeline(FacialExpressionModel.load("fast"), create_detector(DetectorConfig()), PipelineConfig())


def face_rows(faces) -> list:
    return [(face.box, face.face_id, face.det_score, face.scores.tolist()) for face in faces]


@pytest.mark.shared
def test_bgra_and_one_channel_photos_give_exactly_the_faces_of_bgr_and_2d(photos, yunet_pipeline):
    """YuNet takes 1 or 3 channels: BGRA raised cv2.error, (H, W, 1) too; now converted where they enter."""
    image = read_image(photos / "multi_face.jpg")
    bgr = face_rows(yunet_pipeline.analyse(image))
    assert len(bgr) == 5
    assert face_rows(yunet_pipeline.analyse(cv2.cvtColor(image, cv2.COLOR_BGR2BGRA))) == bgr
    gray = cv2.cvtColor(image, cv2.COLOR_BGR2GRAY)
    flat = face_rows(yunet_pipeline.analyse(gray))
    assert len(flat) == 5 and face_rows(yunet_pipeline.analyse(gray[:, :, None])) == flat


@pytest.mark.shared
def test_a_bgra_video_stream_gives_exactly_the_faces_of_bgr(shared_dir, yunet_pipeline):
    capture = cv2.VideoCapture(str(shared_dir / "data" / "media" / "videos" / "single_face.mp4"))
    frames = [capture.read()[1] for _ in range(7)]  # detection rounds on frames 0, 3 and 6
    capture.release()
    bgr, bgra = yunet_pipeline.stream(), yunet_pipeline.stream()
    shown = [face_rows(bgr.process(frame)) for frame in frames]
    assert [len(faces) for faces in shown] == [0, 0, 0, 1, 1, 1, 1], "shown from the second detection round"
    assert [face_rows(bgra.process(cv2.cvtColor(frame, cv2.COLOR_BGR2BGRA))) for frame in frames] == shown
