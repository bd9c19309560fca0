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
from ferkit.vision.crops import crop_faces, square_box, to_gray
from ferkit.vision.detectors import HaarDetector, create_detector
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
    with pytest.raises(FerkitError, match="--detector-model"):
        create_detector(DetectorConfig(name="yunet"))
    with pytest.raises(FerkitError, match="not found"):
        create_detector(DetectorConfig(name="yunet", detector_model=str(tmp_path / "missing.onnx")))
    junk = tmp_path / "junk.onnx"
    junk.write_bytes(b"not an onnx model")
    with pytest.raises(FerkitError, match="not a YuNet model"):
        create_detector(DetectorConfig(name="yunet", detector_model=str(junk)))


def test_haar_finds_nothing_in_a_blank_frame():
    boxes = create_detector(DetectorConfig()).detect(np.full((240, 320, 3), 128, np.uint8))
    assert boxes.shape == (0, 4) and boxes.dtype == np.int32


@pytest.fixture
def photos(shared_dir) -> Path:
    return shared_dir / "data" / "media" / "photos"


@pytest.fixture
def yunet_path(shared_dir) -> str:
    path = shared_dir / "models" / "face_detection_yunet.onnx"
    if not path.is_file():
        pytest.skip(f"no YuNet model at {path}")
    return str(path)


# multi_face.jpg's five faces (x, y, w, h), drawn by hand from YuNet's boxes and checked by eye
GROUP_PHOTO_FACES = np.array([[683, 294, 107, 129], [531, 305, 100, 132], [314, 239, 96, 123],
                              [214, 66, 92, 108], [433, 215, 86, 105]])


@pytest.mark.shared
def test_haar_finds_the_faces_of_the_group_photo(photos):
    image = read_image(photos / "multi_face.jpg")
    boxes = create_detector(DetectorConfig()).detect(image)
    assert match_count(boxes, GROUP_PHOTO_FACES, min_iou=0.4) >= 4
    # without overlap suppression the cascade also returns a second box half over one face
    assert len(boxes) <= 5, "no false or duplicate detection"
    overlaps = iou_matrix(boxes, boxes) - np.eye(len(boxes))
    assert overlaps.max() <= 0.3, "no two boxes overlap"
    areas = boxes[:, 2] * boxes[:, 3]
    assert (np.diff(areas) <= 0).all(), "largest face first"
    assert (boxes[:, 0] + boxes[:, 2] <= image.shape[1]).all() and (boxes[:, 1] + boxes[:, 3] <= image.shape[0]).all()


@pytest.mark.shared
def test_yunet_finds_all_five_faces_of_the_group_photo(photos, yunet_path):
    boxes = create_detector(DetectorConfig(name="yunet", detector_model=yunet_path)).detect(
        read_image(photos / "multi_face.jpg"))
    assert len(boxes) == 5 and match_count(boxes, GROUP_PHOTO_FACES, min_iou=0.7) == 5


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
    """The dlib set: 9 photos, 43 faces mostly 37-45 px wide, so min_face 20.
    Measured (bench/bench_detectors.py): Haar recall 84% precision 90%; YuNet 98% and 98%."""
    cfg = DetectorConfig(name=name, min_face=20)
    if name == "yunet":
        path = shared_dir / "models" / "face_detection_yunet.onnx"
        if not path.is_file():
            pytest.skip(f"no YuNet model at {path}")
        cfg.detector_model = str(path)
    detector, score = create_detector(cfg), DetectionScore()
    for xml in ("training.xml", "testing.xml"):
        for image_path, truth in read_face_boxes(photos / "dlib_faces" / xml).items():
            score.add(detector.detect(read_image(image_path)), truth)
    assert score.truth == 43
    assert score.recall >= min_recall and score.precision >= min_precision, (score.recall, score.precision)


@pytest.mark.shared
def test_detector_settings_take_effect(photos, yunet_path):
    image = read_image(photos / "multi_face.jpg")
    lenient = create_detector(DetectorConfig(min_neighbors=2)).detect(image)
    strict = create_detector(DetectorConfig(min_neighbors=60)).detect(image)
    assert isinstance(create_detector(DetectorConfig()), HaarDetector)
    assert len(strict) < len(lenient)
    assert len(create_detector(DetectorConfig(min_face=400)).detect(image)) == 0
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
    assert tracker.tracks == [], "a face unseen for more than max_missed frames is gone"
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
