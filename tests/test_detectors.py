"""The multi-pass detection of vision/detectors.py, pinned exactly with synthetic inputs: which
passes run at which scale and minimum size (detect_faces), how one pass maps its detector's rows
back to frame pixels (run_pass, run_region), the windows of the region passes (region_windows),
clipping (clip_boxes), and the re-detection of tilted faces turned upright (refine_roll).

No real detector runs here: a scripted one (ScriptedDetector) answers each call with prepared rows
and records what it was given, and detect_faces' own passes are replaced by recorders where the
test is about which passes it asks for. Frames and boxes are asymmetric (width != height, x != y),
so a swapped coordinate or axis changes the answer. The real detectors on real photos are in
test_vision.py.
"""

from __future__ import annotations

import cv2
import numpy as np
import pytest

from ferkit.config import DetectorConfig
from ferkit.errors import FerkitError
from ferkit.vision import detectors
from ferkit.vision.detectors import (Detections, FaceDetector, HaarDetector, YuNetDetector, clip_boxes,
                                     create_detector, eye_angle, region_windows)
from ferkit.vision.tracker import iou_matrix


class ScriptedDetector(FaceDetector):
    """A detector whose _detect answers from a script (arrays, or callables given the image) and
    records every call: (image it was given, min_size)."""

    name = "scripted"

    def __init__(self, cfg: DetectorConfig | None = None, script=(), native: int | None = None,
                 multi: bool = False):
        super().__init__(cfg or DetectorConfig())
        self.native_face_size, self.multi_scale = native, multi
        self.script, self.calls = list(script), []

    def _detect(self, small, min_size):
        self.calls.append((small.copy(), min_size))
        if not self.script:
            return np.zeros((0, 15))
        answer = self.script.pop(0)
        return answer(small) if callable(answer) else answer


def yunet_like(cfg: DetectorConfig | None = None, script=()) -> ScriptedDetector:
    """Multi-scale, finds faces down to 20 pixels (as YuNet)."""
    return ScriptedDetector(cfg, script, native=20, multi=True)


def dets(boxes, scores=None, landmarks=None) -> Detections:
    boxes = np.asarray(boxes, np.int32).reshape(-1, 4)
    scores = np.full(len(boxes), 0.9, np.float32) if scores is None else np.asarray(scores, np.float32)
    if landmarks is None:
        landmarks = np.zeros((len(boxes), 5, 2), np.float32)
    return Detections(boxes, scores, np.asarray(landmarks, np.float32).reshape(-1, 5, 2))


def record_passes(detector: FaceDetector, passes: dict | None = None) -> list:
    """Replace the detector's run_pass, run_region and refine_roll by recorders: run_pass answers
    passes[scale] (empty when absent), run_region finds nothing. Returns the call log, in call
    order: ("pass", scale, min_size), ("region", window, boxes, scale), ("roll", boxes)."""
    log, passes = [], dict(passes or {})

    def run_pass(image, scale, min_size, offset=(0, 0)):
        assert offset == (0, 0) and image is detector.frame
        log.append(("pass", scale, min_size))
        return passes.get(scale, Detections.empty())

    def run_region(frame, window, boxes, scale):
        assert frame is detector.frame
        log.append(("region", tuple(int(v) for v in window), np.asarray(boxes).tolist(), scale))
        return Detections.empty()

    def refine_roll(frame, found):
        assert frame is detector.frame
        log.append(("roll", found.boxes.tolist()))

    detector.run_pass, detector.run_region, detector.refine_roll = run_pass, run_region, refine_roll
    return log


def detect(detector, frame, *args, **kwargs) -> Detections:
    detector.frame = frame
    return detector.detect_faces(frame, *args, **kwargs)


def noise_frame(shape, seed: int) -> np.ndarray:
    """A colour frame of noise: any resampling or misplaced window shows in every pixel."""
    return np.random.default_rng(seed).integers(0, 256, (*shape, 3), dtype=np.uint8)


def row(box, landmarks=None, score=0.9) -> list[float]:
    """One 15-value detector row: box, five landmark points, score."""
    landmarks = np.zeros(10) if landmarks is None else np.asarray(landmarks, np.float64).ravel()
    return [*box, *landmarks, score]


# --- clip_boxes -------------------------------------------------------------------------------------

@pytest.mark.parametrize("box, clipped", [
    ((10, 5, 20, 30), (10, 5, 20, 30)),  # inside: unchanged
    ((0, 0, 80, 50), (0, 0, 80, 50)),  # the whole frame
    ((-5, 7, 20, 10), (0, 7, 15, 10)),  # past the left edge
    ((3, -4, 10, 10), (3, 0, 10, 6)),  # past the top edge
    ((70, 10, 20, 5), (70, 10, 10, 5)),  # past the right edge (width 80)
    ((5, 45, 10, 10), (5, 45, 10, 5)),  # past the bottom edge (height 50)
    ((-3, -2, 90, 60), (0, 0, 80, 50)),  # past every edge
    ((79, 49, 1, 1), (79, 49, 1, 1)),  # the last pixel
    ((100, 10, 5, 5), (79, 10, 1, 5)),  # wholly right of the frame: its last column
    ((5, 60, 5, 5), (5, 49, 5, 1)),  # wholly below: its last row
    ((-20, 10, 5, 5), (0, 10, 1, 5)),  # wholly left: its first column
    ((10, -20, 5, 5), (10, 0, 5, 1)),  # wholly above: its first row
    ((10, 12, 0, 0), (10, 12, 1, 1)),  # empty: one pixel
])
def test_clip_boxes_cuts_boxes_to_the_frame_and_keeps_at_least_a_pixel(box, clipped):
    for shape in ((50, 80), (50, 80, 3)):  # height 50, width 80; gray or colour
        out = clip_boxes(np.array([box]), shape)
        assert out.dtype == np.int32 and out.shape == (1, 4)
        assert tuple(out[0]) == clipped


def test_clip_boxes_clips_each_row_on_its_own():
    boxes = np.array([[-5, 7, 20, 10], [70, 45, 20, 10], [10, 5, 20, 30]])
    assert clip_boxes(boxes, (50, 80, 3)).tolist() == [[0, 7, 15, 10], [70, 45, 10, 5], [10, 5, 20, 30]]


# --- region_windows ------------------------------------------------------------------------------

def windows(boxes, shape):
    return [(window, found.tolist()) for window, found in region_windows(np.array(boxes).reshape(-1, 4), shape)]


def test_a_region_window_reaches_one_longer_side_beyond_each_edge():
    # tall box: 16 pixels around; wide box: 20 around; height 200, width 300
    assert windows([[100, 50, 10, 16], [200, 100, 20, 6]], (200, 300, 3)) == [
        ((84, 34, 126, 82), [[100, 50, 10, 16]]),
        ((180, 80, 240, 126), [[200, 100, 20, 6]]),
    ]


def test_region_windows_stop_at_the_frame_edges():
    # height 100, width 150: one box near the top left corner, one near the bottom right
    assert windows([[3, 2, 10, 12], [140, 90, 8, 6]], (100, 150)) == [
        ((0, 0, 25, 26), [[3, 2, 10, 12]]),
        ((132, 82, 150, 100), [[140, 90, 8, 6]]),
    ]


def test_overlapping_region_windows_merge_into_their_union_and_others_stay_apart():
    a, b, far = [20, 60, 10, 10], [45, 40, 12, 8], [250, 150, 10, 10]
    # a's window (10, 50, 40, 80) and b's (33, 28, 69, 60) overlap: the union, a's box first
    assert windows([a, b, far], (200, 300)) == [((10, 28, 69, 80), [a, b]), ((240, 140, 270, 170), [far])]
    assert windows([far, b, a], (200, 300)) == [((240, 140, 270, 170), [far]), ((10, 28, 69, 80), [b, a])]


@pytest.mark.parametrize("other, window", [
    ([50, 60, 10, 10], (40, 50, 70, 80)),  # right of a's window (10, 50, 40, 80), touching at x 40
    ([20, 90, 10, 10], (10, 80, 40, 110)),  # below it, touching at y 80
])
def test_region_windows_that_only_touch_stay_apart(other, window):
    a = [20, 60, 10, 10]
    assert windows([a, other], (200, 300)) == [((10, 50, 40, 80), [a]), (window, [other])]
    assert windows([other, a], (200, 300)) == [(window, [other]), ((10, 50, 40, 80), [a])]


@pytest.mark.parametrize("other, union", [
    ([49, 60, 10, 10], (10, 50, 69, 80)),  # one column shared
    ([20, 89, 10, 10], (10, 50, 40, 109)),  # one row shared
])
def test_region_windows_sharing_one_pixel_line_merge(other, union):
    a = [20, 60, 10, 10]
    assert windows([a, other], (200, 300)) == [(union, [a, other])]
    assert windows([other, a], (200, 300)) == [(union, [other, a])]


def test_region_windows_merge_again_until_no_two_overlap():
    """a overlaps neither b's window nor c's, only their union: merged in a second round."""
    a, b, c = [145, 50, 10, 10], [110, 60, 10, 10], [130, 80, 10, 10]
    # windows: a (135, 40, 165, 70), b (100, 50, 130, 80), c (120, 70, 150, 100)
    assert windows([a, b, c], (300, 400)) == [((100, 40, 165, 100), [a, b, c])]


def test_region_windows_under_8_pixels_wide_or_high_are_dropped():
    # height 100, width 100; boxes at the edges, so their windows are cut there
    boxes = [[0, 20, 4, 4],  # window (0, 16, 8, 28): 8 wide, kept
             [0, 60, 3, 3],  # (0, 57, 6, 66): 6 wide, 9 high, dropped
             [40, 0, 4, 4],  # (36, 0, 48, 8): 8 high, kept
             [70, 0, 3, 3],  # (67, 0, 76, 6): 9 wide, 6 high, dropped
             [97, 40, 3, 3],  # (94, 37, 100, 46): 6 wide at the right edge, dropped
             [20, 97, 3, 3]]  # (17, 94, 26, 100): 6 high at the bottom edge, dropped
    assert windows(boxes, (100, 100)) == [((0, 16, 8, 28), [[0, 20, 4, 4]]), ((36, 0, 48, 8), [[40, 0, 4, 4]])]


def test_no_boxes_no_region_windows():
    assert region_windows(np.zeros((0, 4), np.int64), (100, 100)) == []


# --- run_pass -----------------------------------------------------------------------------------------

def test_run_pass_maps_rows_back_to_frame_pixels_by_scale_and_offset():
    rows = np.array([row((10.3, 20.2, 30.0, 40.0), [1, 2, 3, 4, 5, 6, 7, 8, 9, 10], 0.75),
                     row((0.0, 1.0, 5.2, 6.4), [11, 12, 13, 14, 15, 16, 17, 18, 19, 20], 0.5)])
    detector = ScriptedDetector(script=[rows])
    image = np.zeros((101, 60, 3), np.uint8)
    found = detector.run_pass(image, 0.5, 12, offset=(7, 3))
    small, min_size = detector.calls[0]
    assert small.shape == (50, 30, 3) and min_size == 12  # round(50.5) = 50 (to even)
    # x: /0.5 + 7, y: /0.5 + 3; w and h only scaled; rounded to the nearest pixel
    assert found.boxes.dtype == np.int32 and found.boxes.tolist() == [[28, 43, 60, 80], [7, 5, 10, 13]]
    assert found.scores.dtype == np.float32 and found.scores.tolist() == [0.75, 0.5]
    assert found.landmarks.dtype == np.float32 and found.landmarks.shape == (2, 5, 2)
    np.testing.assert_array_equal(found.landmarks[0], [[9, 7], [13, 11], [17, 15], [21, 19], [25, 23]])
    np.testing.assert_array_equal(found.landmarks[1], [[29, 27], [33, 31], [37, 35], [41, 39], [45, 43]])


def test_run_pass_at_scale_1_gives_the_detector_the_image_itself():
    image = np.arange(7 * 9 * 3, dtype=np.uint8).reshape(7, 9, 3)
    seen = []
    detector = ScriptedDetector(script=[lambda small: seen.append(small) or np.array([row((1, 2, 3, 4))])])
    found = detector.run_pass(image, 1.0, 5)
    assert seen[0] is image and found.boxes.tolist() == [[1, 2, 3, 4]]


@pytest.mark.parametrize("scale, interpolation", [(0.3, cv2.INTER_AREA), (1.6, cv2.INTER_LINEAR),
                                                   (2.0, cv2.INTER_LINEAR), (2.5, cv2.INTER_LINEAR)])
def test_run_pass_shrinks_by_area_and_enlarges_linearly(scale, interpolation):
    image = np.random.default_rng(1).integers(0, 256, (40, 30, 3), dtype=np.uint8)
    detector = ScriptedDetector()
    assert len(detector.run_pass(image, scale, 5)) == 0
    small = detector.calls[0][0]
    size = (round(30 * scale), round(40 * scale))
    np.testing.assert_array_equal(small, cv2.resize(image, size, interpolation=interpolation))
    other = cv2.INTER_LINEAR if interpolation == cv2.INTER_AREA else cv2.INTER_AREA
    assert not np.array_equal(small, cv2.resize(image, size, interpolation=other))


@pytest.mark.parametrize("shape, small_shape", [((300, 10), (3, 1)), ((10, 300), (1, 3)), ((20, 30), (1, 1))])
def test_run_pass_never_shrinks_below_one_pixel(shape, small_shape):
    detector = ScriptedDetector()
    detector.run_pass(np.zeros(shape, np.uint8), 0.01, 5)
    assert detector.calls[0][0].shape == small_shape


@pytest.mark.parametrize("min_size, passed", [(12, 12), (7.9, 7), (1, 1), (0, 1), (-3, 1)])
def test_run_pass_asks_for_whole_pixels_of_at_least_one(min_size, passed):
    detector = ScriptedDetector()
    detector.run_pass(np.zeros((20, 30), np.uint8), 1.0, min_size)
    assert detector.calls[0][1] == passed and type(detector.calls[0][1]) is int


def test_run_pass_of_a_detector_without_landmarks_gives_nan_landmarks_and_scores():
    detector = ScriptedDetector(script=[np.array([[10, 20, 30, 40], [1, 3, 5, 7]])])
    found = detector.run_pass(np.zeros((100, 90), np.uint8), 0.5, 5, offset=(4, 6))
    assert found.boxes.tolist() == [[24, 46, 60, 80], [6, 12, 10, 14]]
    assert found.scores.shape == (2,) and np.isnan(found.scores).all()
    assert found.landmarks.shape == (2, 5, 2) and np.isnan(found.landmarks).all()


@pytest.mark.parametrize("answer, landmarks", [
    (np.array(row((10, 20, 30, 40), [1, 2, 3, 4, 5, 6, 7, 8, 9, 10], 0.5)), True),  # one flat row
    (np.array([10, 20, 30, 40]), False),  # one flat box
    (np.array([row((10, 20, 30, 40), score=0.5)] * 4), True),  # four rows: not four boxes
])
def test_run_pass_takes_flat_rows_and_tells_rows_from_boxes_by_their_length(answer, landmarks):
    found = ScriptedDetector(script=[answer]).run_pass(np.zeros((100, 90), np.uint8), 0.5, 5, offset=(4, 6))
    assert found.boxes.tolist() == [[24, 46, 60, 80]] * (4 if answer.ndim == 2 else 1)
    assert np.isfinite(found.landmarks).all() == landmarks and np.isfinite(found.scores).all() == landmarks


@pytest.mark.parametrize("answer", [np.zeros((0, 15)), np.zeros((0, 4)), [], np.zeros(0)])
def test_run_pass_with_nothing_found_is_empty(answer):
    found = ScriptedDetector(script=[answer]).run_pass(np.zeros((20, 30), np.uint8), 0.5, 5)
    assert len(found) == 0 and found.boxes.shape == (0, 4) and found.boxes.dtype == np.int32
    assert found.scores.shape == (0,) and found.landmarks.shape == (0, 5, 2)
    assert found.scores.dtype == np.float32 and found.landmarks.dtype == np.float32


# --- run_region ---------------------------------------------------------------------------------------

def test_run_region_runs_on_the_window_and_keeps_only_faces_continuing_a_tracked_box(monkeypatch):
    frame = noise_frame((200, 300), 2)
    tracked = np.array([[60, 50, 20, 24]])
    rows = np.array([row((40, 40, 40, 48), score=0.8),  # (60, 50, 20, 24) in the frame: the tracked face
                     row((0, 0, 30, 30), score=0.7),  # (40, 30, 15, 15): a part-face at the window's edge
                     row((44, 44, 40, 48), score=0.6)])  # (62, 52, 20, 24): overlaps by IoU 0.70
    detector = yunet_like(DetectorConfig(min_face=24), script=[rows])
    found = detector.run_region(frame, (40, 30, 140, 110), tracked, 2.0)
    small, min_size = detector.calls[0]
    np.testing.assert_array_equal(small, cv2.resize(frame[30:110, 40:140], (200, 160),
                                                     interpolation=cv2.INTER_LINEAR))
    assert min_size == 20  # the detector's native face size, not min_face
    assert found.boxes.tolist() == [[60, 50, 20, 24], [62, 52, 20, 24]] and found.scores.tolist() == [
        pytest.approx(0.8), pytest.approx(0.6)]
    # the cut is at REGION_MIN_IOU, kept when equal
    overlap = float(iou_matrix(np.array([[62, 52, 20, 24]]), tracked)[0, 0])
    monkeypatch.setattr(detectors, "REGION_MIN_IOU", overlap)
    assert len(yunet_like(script=[rows]).run_region(frame, (40, 30, 140, 110), tracked, 2.0)) == 2
    monkeypatch.setattr(detectors, "REGION_MIN_IOU", np.nextafter(overlap, 1))
    assert len(yunet_like(script=[rows]).run_region(frame, (40, 30, 140, 110), tracked, 2.0)) == 1


def test_a_region_pass_finding_only_a_part_face_finds_nothing():
    found = yunet_like(script=[np.array([row((0, 0, 30, 30))])]).run_region(
        noise_frame((200, 300), 2), (40, 30, 140, 110), np.array([[60, 50, 20, 24]]), 2.0)
    assert len(found) == 0 and found.boxes.shape == (0, 4)


def test_the_default_region_overlap_cut_is_the_trackers():
    frame = np.zeros((200, 300, 3), np.uint8)
    tracked = np.array([[0, 0, 100, 100]])
    keep, drop = [53, 0, 100, 100], [55, 0, 100, 100]  # the tracked box's size, shifted along x
    assert 0.3 < iou_matrix(np.array([keep]), tracked)[0, 0] < 0.31
    assert 0.29 < iou_matrix(np.array([drop]), tracked)[0, 0] < 0.3
    found = yunet_like(script=[np.array([row(drop), row(keep)])]).run_region(frame, (0, 0, 300, 200), tracked, 1.0)
    assert found.boxes.tolist() == [keep]


# --- detect_faces: which passes -------------------------------------------------------------------------

def test_the_coarse_pass_shrinks_the_frame_to_max_side_and_the_min_size_with_it():
    detector = ScriptedDetector(DetectorConfig(min_face=20))  # no native size: Haar-like
    log = record_passes(detector)
    frame = np.zeros((480, 1280, 3), np.uint8)  # at most 640 pixels: half size
    detect(detector, frame)
    detect(detector, frame, 50)  # a larger min_size: larger faces only
    detect(detector, frame, 10)  # never below the configured min_face
    detect(detector, frame, fine=True, regions=[[10, 10, 30, 30]], scan=False)  # no fine or region passes
    assert log == [("pass", 0.5, 10), ("pass", 0.5, 25), ("pass", 0.5, 10), ("pass", 0.5, 10)]
    log.clear()
    assert detector.detect(frame, 50).tolist() == [] and log == [("pass", 0.5, 25)]  # boxes only


@pytest.mark.parametrize("min_face, passed", [(6, 8), (13, 13), (1, 8)])  # DetectorConfig refuses min_face 0
def test_the_coarse_pass_looks_for_faces_of_at_least_8_pixels(min_face, passed):
    detector = ScriptedDetector(DetectorConfig(min_face=min_face))
    log = record_passes(detector)
    detect(detector, np.zeros((100, 200), np.uint8))
    assert log == [("pass", 1.0, passed)]


def test_no_pass_enlarges_the_frame_even_for_faces_under_native_size():
    detector = yunet_like(DetectorConfig(min_face=10))  # faces of 10 would need twice the size
    log = record_passes(detector)
    detect(detector, np.zeros((240, 320, 3), np.uint8), fine=True)
    assert log == [("pass", 1.0, 10)]


def test_the_coarse_pass_shrinks_further_while_the_smallest_wanted_face_stays_native_size():
    detector = yunet_like()
    log = record_passes(detector)
    detect(detector, np.zeros((300, 400, 3), np.uint8), 60)  # faces of 60 pixels seen at 20: a third
    assert log == [("pass", 20 / 60, 20)]


def test_the_fine_pass_runs_at_full_size_after_the_coarse_pass_in_the_merge():
    cfg = DetectorConfig()
    coarse_face, fine_face = [100, 100, 50, 40], [600, 300, 40, 50]  # the same area
    detector = yunet_like(cfg)
    log = record_passes(detector, {0.5: dets([coarse_face], [0.8]), 1.0: dets([fine_face], [0.95])})
    frame = np.zeros((720, 1280, 3), np.uint8)
    found = detect(detector, frame, fine=True)
    assert log[:2] == [("pass", 1.0, 20), ("pass", 0.5, 10)]
    # the coarse pass's faces come first among faces of one size (whatever their det_score)
    assert found.boxes.tolist() == [coarse_face, fine_face] and found.scores.tolist() == [
        pytest.approx(0.8), pytest.approx(0.95)]
    assert log[2] == ("roll", [coarse_face, fine_face])
    log.clear()
    detect(detector, frame)  # no fine pass unless asked
    assert log == [("pass", 0.5, 10), ("roll", [coarse_face])]


@pytest.mark.parametrize("fine_max_side, log_expected", [
    # fine scale 0.6: only 1.2 times the coarse one, not worth a pass; no region passes either, so
    # the coarse pass runs though the round is not a full scan
    (768, [("pass", 0.5, 10)]),
    # a small tracked face gets a region pass (at 32 / 30), which covers it: no coarse pass
    (769, [("pass", 769 / 1280, 20), ("region", (70, 70, 160, 160), [[100, 100, 30, 30]], 32 / 30)]),
])
def test_the_fine_pass_runs_only_above_1_2_times_the_coarse_scale(fine_max_side, log_expected):
    detector = yunet_like(DetectorConfig(fine_max_side=fine_max_side))
    log = record_passes(detector)
    detect(detector, np.zeros((720, 1280, 3), np.uint8), fine=True, regions=[[100, 100, 30, 30]], scan=False)
    assert log == log_expected


def test_the_fine_pass_sees_a_min_face_face_at_native_size_in_a_portrait_frame():
    detector = yunet_like(DetectorConfig(min_face=40))
    log = record_passes(detector)
    detect(detector, np.zeros((1920, 1080, 3), np.uint8), fine=True)
    # coarse: 640 / 1920; fine: min_face 40 seen at 20 pixels
    assert log == [("pass", 0.5, 20), ("pass", 640 / 1920, 13)]


def test_the_fine_pass_shrinks_a_tall_frame_to_fine_max_side():
    detector = yunet_like()
    log = record_passes(detector)
    detect(detector, np.zeros((2560, 1440), np.uint8), fine=True)  # 1920 / 2560 and 640 / 2560
    assert log == [("pass", 0.75, 20), ("pass", 0.25, 8)]


def test_a_small_frame_gets_no_fine_or_region_pass():
    detector = yunet_like()
    log = record_passes(detector)
    detect(detector, np.zeros((240, 320, 3), np.uint8), fine=True, regions=[[10, 10, 20, 25]], scan=False)
    assert log == [("pass", 1.0, 20)]


# tracked faces in a 1280x720 frame, whose coarse pass runs at half size: a face under
# 1.5 * 20 / 0.5 = 60 pixels is too small for it
SMALL_A = [100, 100, 59, 80]  # 59 wide: window (20, 20, 239, 260)
SMALL_B = [1000, 500, 90, 20]  # 20 high: window (910, 410, 1180, 610)
EDGE = [300, 600, 60, 70]  # 60: large enough
LARGE = [600, 300, 101, 140]
REGION_A = ("region", (20, 20, 239, 260), [SMALL_A], 32 / 59)  # seen at 32 pixels
REGION_B = ("region", (910, 410, 1180, 610), [SMALL_B], 1.6)


def test_tracked_faces_too_small_for_the_coarse_pass_get_a_region_pass_each():
    detector = yunet_like()
    log = record_passes(detector)
    detect(detector, np.zeros((720, 1280, 3), np.uint8), regions=[SMALL_A, EDGE, SMALL_B])
    assert log == [REGION_A, REGION_B, ("pass", 0.5, 10)]


def test_between_full_scans_the_coarse_pass_looks_only_for_the_large_tracked_faces():
    detector = yunet_like()
    log = record_passes(detector)
    frame = np.zeros((720, 1280, 3), np.uint8)
    detect(detector, frame, regions=[SMALL_A, LARGE, SMALL_B], scan=False)
    # faces of at least 0.6 * 101 = 60 pixels, seen at 20: a third of the frame's size
    assert log == [REGION_A, REGION_B, ("pass", 20 / 60, 20)]
    log.clear()
    # min_size 80: a coarse pass at a quarter size, for which every tracked face (under 120) is
    # too small: region passes only
    detect(detector, frame, 80, regions=[SMALL_A, LARGE, SMALL_B], scan=False)
    assert log == [REGION_A, ("region", (460, 160, 841, 580), [LARGE], 32 / 101), REGION_B]
    log.clear()
    detect(detector, frame, regions=[SMALL_A, SMALL_B], scan=False)  # the region passes cover all
    assert log == [REGION_A, REGION_B]
    log.clear()
    detect(detector, frame, regions=[LARGE], scan=False)  # no small faces: the min_size given
    assert log == [("pass", 0.5, 10)]
    log.clear()
    detect(detector, frame, regions=[SMALL_A, LARGE, SMALL_B])  # a full scan: down to min_face
    assert log == [REGION_A, REGION_B, ("pass", 0.5, 10)]


def test_between_full_scans_a_larger_min_size_asked_for_wins():
    detector = yunet_like()
    log = record_passes(detector)
    small, large = [100, 100, 30, 40], [800, 500, 95, 120]  # 90 pixels is small at a third
    detect(detector, np.zeros((1080, 1920, 3), np.uint8), 60, regions=[small, large], scan=False)
    # min_size 60, not 0.6 * 95 = 57: the coarse pass at a third looks for faces of 20 pixels
    assert log == [("region", (60, 60, 170, 180), [small], 32 / 30), ("pass", 640 / 1920, 20)]


def test_tracked_boxes_count_in_whole_pixels():
    detector = yunet_like()
    log = record_passes(detector)
    detect(detector, np.zeros((720, 1280, 3), np.uint8), regions=np.array([[100.7, 100.2, 59.9, 80.5]]))
    assert log == [("region", (20, 20, 239, 260), [SMALL_A], 32 / 59), ("pass", 0.5, 10)]


def test_tracked_faces_in_one_window_share_a_region_pass_at_the_scale_of_the_smallest_side():
    detector = yunet_like()
    log = record_passes(detector)
    near_a, near_b, tiny = [100, 100, 30, 40], [150, 110, 24, 50], [500, 400, 10, 12]
    detect(detector, np.zeros((720, 1280, 3), np.uint8), regions=[near_a, near_b, tiny])
    assert log == [("region", (60, 60, 224, 210), [near_a, near_b], 32 / 24),
                   ("region", (488, 388, 522, 424), [tiny], 2.0),  # at most twice the size
                   ("pass", 0.5, 10)]


# --- detect_faces: merging the passes -------------------------------------------------------------------

def test_one_pass_keeps_all_its_boxes_clipped_to_the_frame_largest_first():
    detector = ScriptedDetector()
    a, b, c = [10, 20, 50, 60], [12, 22, 50, 60], [300, -10, 40, 50]  # a and b overlap; c is past the top
    record_passes(detector, {1.0: dets([c, a, b], [0.7, 0.9, 0.8])})
    found = detect(detector, np.zeros((240, 320, 3), np.uint8))
    # the detector's own suppression is all a single pass gets
    assert found.boxes.tolist() == [a, b, [300, 0, 20, 40]]
    assert found.scores.tolist() == [pytest.approx(0.9), pytest.approx(0.8), pytest.approx(0.7)]


def two_pass_detector(coarse: Detections, fine: Detections, **cfg) -> tuple[ScriptedDetector, list]:
    detector = yunet_like(DetectorConfig(**cfg))
    return detector, record_passes(detector, {0.5: coarse, 1.0: fine})


FRAME_720P = np.zeros((720, 1280, 3), np.uint8)


def test_faces_found_by_two_passes_are_merged_by_det_score():
    a, b, d = [10, 20, 50, 60], [12, 22, 50, 60], [700, 400, 30, 30]
    detector, _ = two_pass_detector(dets([a], [0.9]), dets([b, d], [0.95, 0.5]))
    found = detect(detector, FRAME_720P, fine=True)
    assert found.boxes.tolist() == [b, d] and found.scores.tolist() == [pytest.approx(0.95), pytest.approx(0.5)]
    # no det_score (Haar's NaN) counts as a sure face
    detector, _ = two_pass_detector(dets([a], [np.nan]), dets([b, d], [0.95, 0.5]))
    assert detect(detector, FRAME_720P, fine=True).boxes.tolist() == [a, d]


def test_merging_suppresses_at_the_configured_overlap():
    a, e = [0, 0, 100, 100], [30, 0, 100, 100]  # IoU 0.54
    for nms_threshold, kept in ((0.3, [e]), (0.6, [a, e])):
        detector, _ = two_pass_detector(dets([a], [0.8]), dets([e], [0.9]), nms_threshold=nms_threshold)
        assert detect(detector, FRAME_720P, fine=True).boxes.tolist() == kept


def test_merged_faces_of_one_size_keep_the_passes_order():
    p, q, r = [100, 100, 50, 40], [600, 300, 40, 50], [602, 302, 40, 50]  # q and r: one face
    detector, log = two_pass_detector(dets([p], [0.8]), dets([q, r], [0.95, 0.6]))
    found = detect(detector, FRAME_720P, fine=True)
    assert found.boxes.tolist() == [p, q]
    assert log[-1] == ("roll", [p, q])


@pytest.mark.parametrize("box, kept", [
    ([10, 10, 19, 50], False), ([10, 10, 50, 19], False),  # narrower or lower than min_face 20
    ([10, 10, 20, 20], True), ([10, 10, 21, 20], True),
    ([-10, 5, 29, 30], False),  # 19 wide once clipped
    ([300, 230, 30, 40], False),  # 20 wide but 10 high once clipped (frame 320x240)
    ([300, 200, 30, 40], True),
])
def test_faces_under_min_face_are_dropped_after_clipping(box, kept):
    for multi in (False, True):
        detector = ScriptedDetector(DetectorConfig(min_face=20), native=20 if multi else None, multi=multi)
        log = record_passes(detector, {1.0: dets([box])})
        found = detect(detector, np.zeros((240, 320, 3), np.uint8))
        expected = [clip_boxes(np.array([box]), (240, 320)).tolist()[0]] if kept else []
        assert found.boxes.tolist() == expected
        # a lone face is clipped and filtered too; tilted-face refinement sees what is kept, and
        # only multi-scale detectors refine
        assert [entry for entry in log if entry[0] == "roll"] == ([("roll", expected)] if multi else [])


def test_the_min_face_filter_uses_the_configured_size_not_the_min_size_asked_for():
    detector = yunet_like(DetectorConfig(min_face=20))
    record_passes(detector, {20 / 50: dets([[10, 10, 30, 30], [100, 10, 19, 40]])})
    assert detect(detector, np.zeros((240, 320, 3), np.uint8), 50).boxes.tolist() == [[10, 10, 30, 30]]


def test_faces_come_largest_first_by_area_ties_in_found_order():
    boxes = [[0, 0, 20, 20], [30, 0, 40, 40], [100, 0, 20, 60], [200, 0, 60, 20], [0, 100, 30, 30]]
    detector = ScriptedDetector()
    record_passes(detector, {1.0: dets(boxes)})
    found = detect(detector, np.zeros((240, 320), np.uint8))
    assert found.boxes.tolist() == [[30, 0, 40, 40], [100, 0, 20, 60], [200, 0, 60, 20], [0, 100, 30, 30],
                                    [0, 0, 20, 20]]


def test_many_faces_of_one_size_keep_their_found_order():
    """Thirty faces of one area, wide and tall ones mixed, after two larger ones: a sort that is
    not stable would shuffle them."""
    boxes = [[60 * (i % 10), 50 * (i // 10) + 60, *((20, 30) if i % 3 else (30, 20))] for i in range(30)]
    boxes[7:7] = [[0, 0, 40, 40]]
    boxes[20:20] = [[100, 0, 50, 41]]
    detector = ScriptedDetector()
    record_passes(detector, {1.0: dets(boxes)})
    found = detect(detector, np.zeros((240, 640), np.uint8))
    assert found.boxes.tolist() == [[100, 0, 50, 41], [0, 0, 40, 40]] + [b for b in boxes if b[2] * b[3] == 600]


def test_faces_larger_than_int32_areas_still_come_first():
    frame = np.broadcast_to(np.zeros((1, 1), np.uint8), (60000, 60000))  # no memory: only its shape counts
    detector = ScriptedDetector()
    huge, small = [0, 0, 50000, 50000], [100, 100, 100, 100]  # 2.5e9 pixels: past int32
    record_passes(detector, {640 / 60000: dets([small, huge])})
    assert detect(detector, frame).boxes.tolist() == [huge, small]


def test_nothing_found_is_empty_without_refinement():
    detector = yunet_like()
    log = record_passes(detector)
    found = detect(detector, FRAME_720P, fine=True)
    assert len(found) == 0 and found.boxes.shape == (0, 4) and found.landmarks.shape == (0, 5, 2)
    assert log == [("pass", 1.0, 20), ("pass", 0.5, 10)]


def test_detect_faces_maps_the_real_passes_back_to_frame_pixels():
    """Through run_pass and run_region: the coarse pass at half size, a region pass at 32/20."""
    tracked = [400, 300, 20, 24]  # window (376, 276, 444, 348) at 1.6
    coarse_row = row((50, 60, 40, 30), score=0.9)  # (100, 120, 80, 60) in the frame
    region_row = row((38.4, 38.4, 32, 38.4), score=0.8)  # (400, 300, 20, 24)
    detector = yunet_like(script=[np.array([region_row]), np.array([coarse_row])])
    detector.refine_roll = lambda frame, found: None
    found = detector.detect_faces(np.zeros((720, 1280, 3), np.uint8), regions=[tracked])
    assert found.boxes.tolist() == [[100, 120, 80, 60], [400, 300, 20, 24]]
    assert [c[0].shape for c in detector.calls] == [(115, 109, 3), (360, 640, 3)]
    assert [c[1] for c in detector.calls] == [20, 10]
    assert detector.detect(np.zeros((720, 1280, 3), np.uint8)).tolist() == []


# --- refine_roll -----------------------------------------------------------------------------------------

# an upright face's landmarks about its centre: eyes (subject's right, left), nose, mouth corners
FACE_LAYOUT = np.array([[-18, -20], [18, -20], [0, 0], [-15, 22], [15, 22]], np.float64)


def turned(degrees: float, centre) -> np.ndarray:
    """FACE_LAYOUT with its eye line at `degrees` (image y down), about `centre`."""
    t = np.radians(degrees)
    rotation = np.array([[np.cos(t), -np.sin(t)], [np.sin(t), np.cos(t)]])
    return FACE_LAYOUT @ rotation.T + centre


def blobs_frame(points, shape=(240, 320)) -> np.ndarray:
    """A dark frame with a bright Gaussian spot (sigma 2) at each point."""
    y, x = np.mgrid[:shape[0], :shape[1]]
    image = sum(250 * np.exp(-((x - px) ** 2 + (y - py) ** 2) / 8) for px, py in points)
    return np.repeat(np.clip(np.round(image), 0, 255).astype(np.uint8)[..., None], 3, axis=2)


def spots(image) -> np.ndarray:
    """The bright spots of an image in landmark order: the upper two (by x), the middle one, the
    lower two (by x); each at its brightness-weighted centre."""
    gray = image[..., 0].astype(np.float64)
    count, labels = cv2.connectedComponents((gray > 30).astype(np.uint8))
    y, x = np.mgrid[:gray.shape[0], :gray.shape[1]]
    centres = []
    for k in range(1, count):
        weight = gray * (labels == k)
        centres.append([(weight * x).sum() / weight.sum(), (weight * y).sum() / weight.sum()])
    assert len(centres) == 5, len(centres)
    centres = np.array(sorted(centres, key=lambda p: p[1]))
    return np.concatenate([sorted(centres[:2].tolist()), centres[2:3], sorted(centres[3:].tolist())])


PATCH = 211  # round(ROLL_FACE_PX * ROLL_CONTEXT)


def spot_reader(small):
    """A detector reading the spots as one face centred on the patch, between two decoys whose
    centres are off the patch centre (picked only if the nearest-centre choice is wrong)."""
    centre = PATCH / 2
    decoys = [row((0, 0, 20, 20), turned(0, (10, 10))), row((150, 150, 60, 60), turned(0, (180, 180)))]
    return np.array([decoys[0], row((centre - 40, centre - 40, 80, 80), spots(small)), decoys[1]])


def test_a_tilted_face_is_turned_upright_and_its_landmarks_read_again():
    """The eye line is at -30 degrees, the detector read -10: the face is turned by -10, read again
    (-20 more), turned by -30 and read level; the landmarks are the spots' true places."""
    centre = np.array([150.0, 110.0])
    truth = turned(-30, centre)
    frame = blobs_frame(truth)
    box = [115, 68, 70, 84]  # centred on the face, taller than wide
    found = dets([box], landmarks=[turned(-10, centre)])
    detector = yunet_like(script=[spot_reader] * 3)
    detector.refine_roll(frame, found)
    assert [(c[0].shape, c[1]) for c in detector.calls] == [((PATCH, PATCH, 3), 8)] * 2  # level: stop
    first, second = (spots(c[0]) for c in detector.calls)
    assert eye_angle(first) == pytest.approx(-20, abs=0.3)
    assert eye_angle(second) == pytest.approx(0, abs=0.3)
    # the face's centre at the patch centre, its longer side at ROLL_FACE_PX (96) pixels
    np.testing.assert_allclose(second[2], [PATCH / 2] * 2, atol=0.2)
    assert np.hypot(*(second[1] - second[0])) == pytest.approx(36 * 96 / 84, abs=0.2)
    assert found.landmarks.dtype == np.float32
    np.testing.assert_allclose(found.landmarks[0], truth, atol=0.25)
    assert found.boxes.tolist() == [box]


def test_the_patch_repeats_the_frames_edge_beyond_it():
    frame = np.full((120, 160, 3), 77, np.uint8)
    detector = yunet_like()
    detector.refine_roll(frame, dets([[0, 0, 60, 50]], landmarks=[turned(-20, (30, 25))]))
    patch = detector.calls[0][0]
    assert (patch == 77).all()


def angle_points(degrees: float) -> np.ndarray:
    """FACE_LAYOUT with the right eye at (0, 0) and its eye line reading exactly `degrees`."""
    points = turned(degrees, (0, 0))
    points -= points[0]
    for _ in range(1000):
        reading = eye_angle(points)
        if reading == degrees:
            return points
        points[1, 1] = np.nextafter(points[1, 1], np.inf if reading < degrees else -np.inf)
    raise AssertionError(f"no landmarks read exactly {degrees}")


def centred_row(degrees: float, exact: bool = False) -> np.ndarray:
    """A detector row for a face centred on the patch whose eye line reads `degrees` there (to
    the last bit when `exact`, with the landmarks off the face then: only their angle counts)."""
    points = angle_points(degrees) if exact else turned(degrees, (PATCH / 2, PATCH / 2))
    return np.array([row((PATCH / 2 - 40, PATCH / 2 - 40, 80, 80), points)])


def rolled(landmarks, script, box=(30, 20, 70, 84)) -> tuple[ScriptedDetector, Detections]:
    """refine_roll on one face in a noise frame; the detector and the face afterwards."""
    frame = noise_frame((200, 220), 3)
    found = dets([box], landmarks=[landmarks])
    detector = yunet_like(script=script)
    detector.refine_roll(frame, found)
    return detector, found


@pytest.mark.parametrize("reading, rounds", [
    (10.0, 2), (-10.0, 2),  # still tilted: ROLL_ROUNDS (2) readings
    (1.0, 2),  # 1 degree is still tilted
    (0.9, 1), (-0.9, 1), (0.0, 1),  # level: one reading
])
def test_a_face_is_read_again_until_level_within_a_degree_at_most_twice(reading, rounds):
    start = turned(-20, (65, 62))
    detector, found = rolled(start, [centred_row(reading, exact=reading == 1.0)] * 3)
    assert len(detector.calls) == rounds
    assert not np.allclose(found.landmarks[0], start, atol=1)


def test_the_landmarks_come_back_through_the_inverse_of_the_turn():
    """One reading of a level face: its landmarks mapped back to the frame by the patch's turn
    (by the first reading, -20 degrees, about the box centre (65, 62), scaled 96/84)."""
    detector, found = rolled(turned(-20, (65, 62)), [centred_row(0.0)])
    matrix = cv2.getRotationMatrix2D((65.0, 62.0), -20.0, 96 / 84)
    matrix[:, 2] += PATCH / 2 - np.array([65.0, 62.0])
    back = cv2.invertAffineTransform(matrix)
    points = centred_row(0.0)[0, 4:14].reshape(5, 2)
    np.testing.assert_allclose(found.landmarks[0], points @ back[:, :2].T + back[:, 2], atol=1e-4)
    # level in the patch: the eye line reads the turn, -20 degrees, in the frame
    assert eye_angle(found.landmarks[0]) == pytest.approx(-20, abs=1e-3)


def test_a_face_not_found_again_keeps_its_landmarks():
    start = turned(-20, (65, 62)).astype(np.float32)
    detector, found = rolled(start, [np.zeros((0, 15))])
    assert len(detector.calls) == 1
    np.testing.assert_array_equal(found.landmarks[0], start)


@pytest.mark.parametrize("degrees, refined", [(2.4, False), (-2.4, False), (2.6, True), (-2.6, True), (30, True)])
def test_only_faces_tilted_2_5_degrees_or_more_are_refined(degrees, refined):
    start = turned(degrees, (65, 62)).astype(np.float32)
    detector, found = rolled(start, [centred_row(0.0)])
    assert len(detector.calls) == int(refined)
    assert bool(np.array_equal(found.landmarks[0], start)) == (not refined)


def test_a_face_tilted_exactly_roll_min_deg_is_refined(monkeypatch):
    start = turned(2.5, (65, 62)).astype(np.float32)
    monkeypatch.setattr(detectors, "ROLL_MIN_DEG", eye_angle(start))
    assert len(rolled(start, [centred_row(0.0)])[0].calls) == 1
    monkeypatch.setattr(detectors, "ROLL_MIN_DEG", np.nextafter(eye_angle(start), np.inf))
    assert len(rolled(start, [centred_row(0.0)])[0].calls) == 0


@pytest.mark.parametrize("box, refined", [
    ((30, 20, 39, 84), False), ((30, 20, 84, 39), False),  # under ROLL_MIN_SIDE (40) either way
    ((30, 20, 40, 84), True), ((30, 20, 84, 40), True),
])
def test_only_faces_of_at_least_40_pixels_are_refined(box, refined):
    detector, _ = rolled(turned(-20, (65, 62)), [centred_row(0.0)], box)
    assert len(detector.calls) == int(refined)


def test_faces_without_landmarks_are_not_refined():
    start = turned(-20, (65, 62))
    start[3, 0] = np.nan
    detector, found = rolled(start, [centred_row(0.0)])
    assert detector.calls == [] and np.isnan(found.landmarks[0, 3, 0])


def test_only_the_four_faces_with_the_longest_shorter_sides_are_refined():
    # shorter sides 41, 60, 45, 55, 50 (the first has the largest area): all but the first refined,
    # the longest shorter side first
    boxes = [[0, 0, 41, 200], [50, 0, 60, 60], [120, 0, 45, 45], [0, 210, 70, 55], [100, 210, 50, 50]]
    landmarks = [turned(-20, (x + w / 2, y + h / 2)).astype(np.float32) for x, y, w, h in boxes]
    found = dets(boxes, landmarks=landmarks)
    frame = noise_frame((300, 260), 4)
    detector = yunet_like(script=[centred_row(0.0)] * 5)
    detector.refine_roll(frame, found)
    assert len(detector.calls) == 4
    changed = [not np.allclose(found.landmarks[i], landmarks[i], atol=1) for i in range(5)]
    assert changed == [False, True, True, True, True]
    # the order: each refined face's patch is its own (the frame's noise around its centre)
    centres = [(x + w / 2, y + h / 2, max(w, h)) for x, y, w, h in boxes]
    order = [1, 3, 4, 2]
    for (patch, _), i in zip(detector.calls, order):
        cx, cy, side = centres[i]
        matrix = cv2.getRotationMatrix2D((cx, cy), eye_angle(landmarks[i]), 96 / side)
        matrix[:, 2] += PATCH / 2 - np.array([cx, cy])
        expected = cv2.warpAffine(frame, matrix, (PATCH, PATCH), flags=cv2.INTER_LINEAR,
                                  borderMode=cv2.BORDER_REPLICATE)
        np.testing.assert_array_equal(patch, expected)


def test_among_faces_of_one_size_the_first_found_are_refined_first():
    """A crowd of 28 faces of 45, 50 and 55 pixels: the four of 55 are refined, in the order
    found (a sort that is not stable reorders them)."""
    sides = [50, 50, 45, 45, 45, 45, 45, 45, 55, 50, 55, 50, 50, 55, 55, 50, 50, 50, 55, 45, 55, 55, 45, 50,
             55, 50, 45, 55]
    boxes = [[60 * (i % 7), 60 * (i // 7), side, side] for i, side in enumerate(sides)]
    landmarks = [turned(-20, (x + w / 2, y + w / 2)).astype(np.float32) for x, y, w, _ in boxes]
    frame = noise_frame((240, 420), 5)
    detector = yunet_like(script=[np.zeros((0, 15))] * 28)
    detector.refine_roll(frame, dets(boxes, landmarks=landmarks))
    assert len(detector.calls) == 4
    for (patch, _), i in zip(detector.calls, [8, 10, 13, 14]):
        x, y, side, _ = boxes[i]
        centre = (x + side / 2, y + side / 2)
        matrix = cv2.getRotationMatrix2D(centre, eye_angle(landmarks[i]), 96 / side)
        matrix[:, 2] += PATCH / 2 - np.array(centre)
        expected = cv2.warpAffine(frame, matrix, (PATCH, PATCH), flags=cv2.INTER_LINEAR,
                                  borderMode=cv2.BORDER_REPLICATE)
        np.testing.assert_array_equal(patch, expected)


def test_eye_angle_reads_degrees_from_the_subjects_right_eye_to_the_left_with_y_down():
    assert eye_angle([[10, 20], [30, 20], [0, 0]]) == 0.0
    assert eye_angle([[10, 20], [20, 30]]) == pytest.approx(45)  # left eye lower: clockwise
    assert eye_angle([[10, 20], [20, 10]]) == pytest.approx(-45)
    assert eye_angle([[10, 20], [10, 50]]) == pytest.approx(90)
    assert eye_angle(np.array([[30, 20], [10, 20]], np.float32)) == pytest.approx(180)


def test_the_nearest_face_to_the_patch_centre_is_the_one_read():
    """The face read is the one whose box centre is nearest the patch centre (105.5, 105.5): here
    a tall box centred on it, among decoys whose top left corners, or centres measured with the
    wrong side or a third of the box, or nearest a third of the patch, would win instead."""
    centre = PATCH / 2
    level = turned(0.0, (centre, centre))
    face = row((centre - 30, centre - 45, 60, 90), level)

    def decoy(box):
        x, y, w, h = box
        return row(box, turned(0.0, (x + w / 2, y + h / 2)))

    decoys = [decoy((0, 0, 20, 20)),  # centre (10, 10)
              decoy((95.5, 95.5, 30, 30)),  # centre (110.5, 110.5): 7 away; its third-way point at the centre
              decoy((62, 62, 20, 20)),  # centre (72, 72): 2 from a third of the patch
              decoy((150, 150, 60, 60))]  # centre (180, 180)
    _, once = rolled(turned(-20, (65, 62)), [np.array([face])])
    _, among = rolled(turned(-20, (65, 62)), [np.array([decoys[0], decoys[1], face, decoys[2], decoys[3]])])
    np.testing.assert_array_equal(among.landmarks, once.landmarks)
    for other in decoys:  # each decoy alone gives other landmarks
        _, alone = rolled(turned(-20, (65, 62)), [np.array([other])])
        assert not np.allclose(alone.landmarks, once.landmarks, atol=1)


# --- the detectors' own runs, with stand-in OpenCV models ------------------------------------------------

class FakeCascade:
    """Stands in for cv2.CascadeClassifier: answers detectMultiScale2 with given boxes and neighbour
    counts, and records its arguments."""

    def __init__(self, boxes=(), neighbours=()):
        self.answer, self.calls = (tuple(map(tuple, boxes)), np.asarray(neighbours, np.int32)), []

    def detectMultiScale2(self, gray, **kwargs):
        self.calls.append((gray, kwargs))
        return self.answer


def haar_with(cascade: FakeCascade, **cfg) -> HaarDetector:
    detector = HaarDetector(DetectorConfig(name="haar", **cfg))
    detector._per_thread.model = cascade
    return detector


def test_haar_runs_the_cascade_on_gray_with_the_configured_settings():
    cascade = FakeCascade([[10, 20, 30, 40]], [7])
    detector = haar_with(cascade, scale_factor=1.3, min_neighbors=4)
    colour = noise_frame((60, 80), 6)
    rows = detector._detect(colour, 24)
    gray, kwargs = cascade.calls[0]
    np.testing.assert_array_equal(gray, cv2.cvtColor(colour, cv2.COLOR_BGR2GRAY))
    assert kwargs == {"scaleFactor": 1.3, "minNeighbors": 4, "minSize": (24, 24)}
    assert rows.shape == (1, 15) and rows[0, :4].tolist() == [10, 20, 30, 40] and np.isnan(rows[0, 4:]).all()
    gray_frame = colour[..., 1].copy()
    detector._detect(gray_frame, 24)
    assert cascade.calls[1][0] is gray_frame  # a gray image as it is


def test_haar_keeps_the_best_supported_of_overlapping_boxes():
    # two boxes over one face (IoU 0.79): the one with more neighbours; a third apart, with one
    cascade = FakeCascade([[10, 10, 50, 50], [14, 12, 50, 50], [100, 10, 40, 40]], [6, 9, 1])
    rows = haar_with(cascade)._detect(np.zeros((80, 160), np.uint8), 20)
    assert sorted(rows[:, :4].tolist()) == [[14, 12, 50, 50], [100, 10, 40, 40]]
    # two overlapping boxes only: still one kept
    cascade = FakeCascade([[10, 10, 50, 50], [14, 12, 50, 50]], [6, 9])
    assert haar_with(cascade)._detect(np.zeros((80, 160), np.uint8), 20)[:, :4].tolist() == [[14, 12, 50, 50]]
    # at a looser overlap threshold both stay
    cascade = FakeCascade([[10, 10, 50, 50], [14, 12, 50, 50]], [6, 9])
    assert len(haar_with(cascade, nms_threshold=0.8)._detect(np.zeros((80, 160), np.uint8), 20)) == 2


def test_haar_with_nothing_found_gives_no_rows():
    rows = haar_with(FakeCascade())._detect(np.zeros((80, 160), np.uint8), 20)
    assert rows.shape == (0, 15)


def test_a_missing_haar_cascade_is_a_user_error(monkeypatch):
    monkeypatch.setattr(detectors, "HAAR_FILE", "no_such_cascade.xml")
    with pytest.raises(FerkitError, match=r"OpenCV's no_such_cascade.xml could not be loaded \(opencv-python"):
        HaarDetector(DetectorConfig(name="haar"))


class FakeYuNet:
    """Stands in for cv2.FaceDetectorYN: records input sizes and images, answers given faces."""

    def __init__(self, faces, size=(320, 320)):
        self.faces, self.size, self.sizes, self.images = faces, size, [], []

    def getInputSize(self):
        return self.size

    def setInputSize(self, size):
        self.size = size
        self.sizes.append(size)

    def detect(self, image):
        self.images.append(image)
        return 1, self.faces


def yunet_with(model: FakeYuNet) -> YuNetDetector:
    detector = YuNetDetector(DetectorConfig())
    detector._per_thread.model = model
    return detector


def test_yunet_sets_its_input_size_to_the_image_and_keeps_faces_of_min_size():
    faces = np.array([row((1, 2, 19, 30)), row((3, 4, 20, 25)), row((5, 6, 30, 19)), row((7, 8, 40, 40))],
                     np.float32)
    model = FakeYuNet(faces)
    detector = yunet_with(model)
    gray = noise_frame((60, 90), 7)[..., 0].copy()
    rows = detector._detect(gray, 20)
    assert rows[:, :4].tolist() == [[3, 4, 20, 25], [7, 8, 40, 40]]  # at least 20 wide and high
    assert model.sizes == [(90, 60)]  # width, height
    np.testing.assert_array_equal(model.images[0], cv2.cvtColor(gray, cv2.COLOR_GRAY2BGR))
    colour = noise_frame((60, 90), 8)
    detector._detect(colour, 20)
    assert model.sizes == [(90, 60)] and model.images[1] is colour  # same size: not set again


def test_yunet_with_nothing_found_gives_no_rows():
    rows = yunet_with(FakeYuNet(None))._detect(noise_frame((60, 90), 7), 20)
    assert rows.shape == (0, 15)


def test_yunet_is_created_with_the_configured_thresholds():
    model = create_detector(DetectorConfig(detect_threshold=0.55, nms_threshold=0.25)).model
    assert model.getScoreThreshold() == pytest.approx(0.55) and model.getNMSThreshold() == pytest.approx(0.25)
    assert tuple(model.getInputSize()) == (320, 320)


def test_yunet_model_errors_name_the_file(tmp_path, monkeypatch):
    missing = tmp_path / "missing.onnx"
    with pytest.raises(FerkitError) as error:
        create_detector(DetectorConfig(detector_model=str(missing)))
    assert str(error.value) == f"{missing}: YuNet model file not found"
    monkeypatch.setattr(detectors, "bundled_yunet_path", lambda: missing)
    with pytest.raises(FerkitError) as error:
        create_detector(DetectorConfig())
    assert str(error.value) == f"{missing}: YuNet model file not found (the bundled model is missing: reinstall ferkit)"
    junk = tmp_path / "junk.onnx"
    junk.write_bytes(b"not an onnx model")
    with pytest.raises(FerkitError, match=rf"^{junk}: not a YuNet model OpenCV can load \(.+\)$"):
        create_detector(DetectorConfig(detector_model=str(junk)))


def test_a_classifier_given_as_the_yunet_model_is_one_line_on_stderr(tmp_path, capfd):
    """OpenCV's reason for refusing another network runs over several lines, and its log prints one more:
    the user sees one line, OpenCV's log included (capfd: that log is written by C++, not Python)."""
    from ferkit.cli import main as cli_main
    from ferkit.config import default_models_dir

    not_yunet = tmp_path / "classifier.onnx"
    not_yunet.write_bytes((default_models_dir() / "fast" / "model.onnx").read_bytes())
    photo = tmp_path / "grey.png"
    cv2.imwrite(str(photo), np.full((64, 96, 3), 128, np.uint8))
    assert cli_main(["predict", str(photo), "--detector-model", str(not_yunet)]) == 2
    out, err = capfd.readouterr()
    assert out == "" and err.startswith(f"ferkit predict: error: {not_yunet}: not a YuNet model OpenCV can load (")
    assert err.count("\n") == 1 and err.endswith(")\n")


def test_an_unknown_detector_name_lists_the_known_ones():
    with pytest.raises(FerkitError) as error:
        create_detector(DetectorConfig(name="mtcnn"))
    assert str(error.value) == "unknown detector 'mtcnn' (expected haar or yunet)"
    assert isinstance(create_detector(DetectorConfig(name="haar")), HaarDetector)
