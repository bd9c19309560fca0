"""Face detectors behind one small interface: detect_faces(frame) -> Detections (boxes, det_score,
five landmarks), in the original frame's pixels.

YuNet (the default, bundled as package data) finds faces of about 10 to 300 pixels in its input
image, and its cost grows with that image's area. So each call runs up to three kinds of pass:

- the coarse pass, always: the frame downscaled to at most `max_side`, and further while the
  smallest wanted face stays as large as the smallest it finds (`native_face_size`);
- the fine pass, on request (every still image; every `fine_scan_every`-th detection round of a
  video): the frame at the scale where a `min_face` face is `native_face_size` pixels, capped at
  `fine_max_side`, for the small faces of a group photo or a 1080p crowd;
- region passes, on request: small windows around faces a video already tracks that are too
  small for the coarse pass, at the scale the fine pass would use, so their tracks live on
  between fine passes at a fraction of a full-resolution pass's cost.

The passes are merged by non-maximum suppression on det_score. Haar has no landmarks and no
confidence (NaN), and runs the coarse pass only: its cost already falls with a larger minimum
face size, as its image pyramid starts there.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from ..config import DetectorConfig, package_data_dir
from ..errors import FerkitError
from .tracker import iou_matrix

HAAR_FILE = "haarcascade_frontalface_default.xml"
YUNET_FILE = "face_detection_yunet.onnx"
# A tracked face smaller than this many native face sizes in the coarse pass's image gets a region pass
REGION_MARGIN = 1.5
REGION_CONTEXT = 1.0  # a region pass looks this many face sides beyond each edge of the tracked box
# Tilted faces: a face whose eye line reads this many degrees or more is turned upright and
# detected again (ROLL_ROUNDS times at most), at ROLL_FACE_PX pixels in a window ROLL_CONTEXT times that
ROLL_MIN_DEG, ROLL_ROUNDS, ROLL_FACE_PX, ROLL_CONTEXT = 2.5, 2, 96, 2.2
# ... for the ROLL_MAX_FACES largest faces of at least ROLL_MIN_SIDE pixels (a crowd's small faces
# would cost a detector run each, and their 48x48 crops gain little)
ROLL_MAX_FACES, ROLL_MIN_SIDE = 4, 40
REGION_MIN_IOU = 0.3  # a region pass keeps the faces overlapping its tracked box this much (the tracker's IoU)
REGION_FACE_PX, REGION_MAX_ZOOM = 32, 2.0  # a region pass sees its faces at about 32 pixels
TRACKED_SIZE_SHARE = 0.6  # as in inference.pipeline: a tracked face changes size less than this between rounds


def bundled_yunet_path() -> Path:
    """The YuNet model shipped in the package (src/ferkit/assets/detectors/, MIT licence beside it)."""
    return package_data_dir("detectors", YUNET_FILE)


@dataclass
class Detections:
    """Faces found in one frame, largest first."""

    boxes: np.ndarray  # (N, 4) int32 x, y, w, h in frame pixels
    scores: np.ndarray  # (N,) float32 detector confidence (det_score); NaN when the detector has none
    landmarks: np.ndarray  # (N, 5, 2) float32 eyes (subject's right, left), nose tip, mouth corners; NaN without

    @classmethod
    def empty(cls) -> "Detections":
        return cls(np.zeros((0, 4), np.int32), np.zeros(0, np.float32), np.zeros((0, 5, 2), np.float32))

    def __len__(self) -> int:
        return len(self.boxes)

    def __getitem__(self, index) -> "Detections":
        return Detections(self.boxes[index], self.scores[index], self.landmarks[index])

    @classmethod
    def concat(cls, parts: list["Detections"]) -> "Detections":
        parts = [p for p in parts if len(p)]
        if not parts:
            return cls.empty()
        return cls(np.concatenate([p.boxes for p in parts]), np.concatenate([p.scores for p in parts]),
                   np.concatenate([p.landmarks for p in parts]))


class FaceDetector:
    """Base class: the passes, box rescaling and merging, one OpenCV model per thread.

    Subclasses implement _detect(image, min_size) -> (N, 15) rows of x, y, w, h, 5 landmark x/y
    pairs and score (or just (N, 4) boxes) in `image` pixels and, when they use an OpenCV model, _load() (a new model;
    raises on a bad file), which they reach as `self.model`. OpenCV detectors keep per-call state,
    so each thread (web request workers, the live stream) gets its own model instead of queueing
    on a lock.
    """

    name = "base"
    native_face_size: int | None = None  # smallest face found reliably, pixels; None: no extra downscale
    multi_scale = False  # whether fine and region passes help (detectors with a fixed smallest face)

    def __init__(self, cfg: DetectorConfig):
        self.cfg = cfg
        self._per_thread = threading.local()
        self._per_thread.model = self._load()  # load once up front, so a bad model file fails early

    @property
    def model(self):
        """This thread's OpenCV model."""
        if not hasattr(self._per_thread, "model"):
            self._per_thread.model = self._load()
        return self._per_thread.model

    def detect(self, frame: np.ndarray, min_size: int | None = None) -> np.ndarray:
        """Boxes (N, 4) int32 x, y, w, h of the coarse pass, largest first (see detect_faces)."""
        return self.detect_faces(frame, min_size).boxes

    def coarse_scale(self, frame_shape, min_size: int) -> float:
        height, width = frame_shape[:2]
        return min(1.0, self.cfg.max_side / max(height, width), (self.native_face_size or min_size) / min_size)

    def fine_scale(self, frame_shape) -> float:
        """The scale at which a min_face face is native_face_size pixels, capped at fine_max_side."""
        height, width = frame_shape[:2]
        return min(1.0, self.cfg.fine_max_side / max(height, width),
                   (self.native_face_size or self.cfg.min_face) / max(1, self.cfg.min_face))

    def detect_faces(self, frame: np.ndarray, min_size: int | None = None, fine: bool = False,
                     regions=None, scan: bool = True) -> Detections:
        """The faces of a frame, largest first.

        `min_size` raises the smallest face side the coarse pass searches for (never below the
        configured one): a video stream that already tracks large faces looks for faces of about
        their size, far faster than a search down to the smallest faces. `fine` adds the fine
        pass; `regions` ((M, 4) boxes of tracked faces) adds a region pass around each one that is
        too small for the coarse pass. `scan=False` (a video's detection round between full
        scans) skips the coarse pass when region passes cover every tracked face.
        """
        min_size = max(1, self.cfg.min_face, min_size or 0)
        coarse = self.coarse_scale(frame.shape, min_size)
        tracked = np.asarray(regions if regions is not None else [], np.int64).reshape(-1, 4)
        parts, small = [], np.zeros(len(tracked), bool)
        if self.multi_scale:
            fine_scale = self.fine_scale(frame.shape)
            if fine_scale > coarse * 1.2:  # else the coarse pass already sees the smallest faces
                if fine:
                    parts.append(self.run_pass(frame, fine_scale, self.native_face_size))
                small = tracked[:, 2:].min(axis=1) < REGION_MARGIN * self.native_face_size / coarse
                for window, boxes in region_windows(tracked[small], frame.shape):
                    # the scale where the window's smallest face is REGION_FACE_PX: small faces
                    # are upscaled, larger ones cost less
                    scale = min(REGION_MAX_ZOOM, REGION_FACE_PX / max(1, boxes[:, 2:].min()))
                    parts.append(self.run_region(frame, window, boxes, scale))
        if scan or not small.all():
            if not scan and small.any():  # the coarse pass looks for the large tracked faces only
                min_size = max(min_size, int(TRACKED_SIZE_SHARE * tracked[~small, 2:].min()))
                coarse = self.coarse_scale(frame.shape, min_size)
            parts.insert(0, self.run_pass(frame, coarse, max(8, round(min_size * coarse))))
        found = Detections.concat(parts)
        if len(found) == 0:
            return found
        found.boxes = clip_boxes(found.boxes, frame.shape)
        if len(parts) > 1 and len(found) > 1:
            found = found[self.suppress(found)]
        found = found[np.minimum(found.boxes[:, 2], found.boxes[:, 3]) >= self.cfg.min_face]
        if self.multi_scale:
            self.refine_roll(frame, found)
        return found[np.argsort(-(found.boxes[:, 2].astype(np.int64) * found.boxes[:, 3]), kind="stable")]

    def run_pass(self, image: np.ndarray, scale: float, min_size: int, offset=(0, 0)) -> Detections:
        """One detector run on `image` resized by `scale`; results in frame pixels (image + offset)."""
        height, width = image.shape[:2]
        small = image if scale == 1.0 else cv2.resize(
            image, (max(1, round(width * scale)), max(1, round(height * scale))),
            interpolation=cv2.INTER_AREA if scale < 1 else cv2.INTER_LINEAR)
        raw = np.asarray(self._detect(small, max(1, int(min_size))), np.float64)
        raw = no_landmarks(raw) if raw.size == 0 or raw.shape[-1] == 4 else raw.reshape(-1, 15)
        if len(raw) == 0:
            return Detections.empty()
        coords = raw[:, :14] / scale
        coords[:, [0, 4, 6, 8, 10, 12]] += offset[0]  # x and the landmarks move; w and h do not
        coords[:, [1, 5, 7, 9, 11, 13]] += offset[1]
        return Detections(np.round(coords[:, :4]).astype(np.int32), raw[:, 14].astype(np.float32),
                          coords[:, 4:14].reshape(-1, 5, 2).astype(np.float32))

    def run_region(self, frame: np.ndarray, window, boxes: np.ndarray, scale: float) -> Detections:
        """A pass over a window (x0, y0, x1, y1) around tracked boxes, at `scale`, keeping only
        the faces that continue one of them (a neighbour cut by the window's edge would come back
        as a part-face)."""
        x0, y0, x1, y1 = window
        found = self.run_pass(frame[y0:y1, x0:x1], scale, self.native_face_size, (x0, y0))
        if len(found) == 0:
            return found
        return found[iou_matrix(found.boxes, boxes).max(axis=1) >= REGION_MIN_IOU]

    def refine_roll(self, frame: np.ndarray, found: Detections) -> None:
        """Landmarks of tilted faces, measured again on the face turned upright (in place).

        YuNet's landmarks follow a head's tilt only in part (a face turned 30 degrees reads as
        about 5 to 15): each large face whose eye line reads ROLL_MIN_DEG or more is turned by
        that reading and detected again, up to ROLL_ROUNDS times, adding up the readings."""
        largest = np.argsort(-found.boxes[:, 2:].min(axis=1), kind="stable")[:ROLL_MAX_FACES]
        for i in largest:
            points = found.landmarks[i].astype(np.float64)
            if (not np.isfinite(points).all() or abs(eye_angle(points)) < ROLL_MIN_DEG
                    or found.boxes[i, 2:].min() < ROLL_MIN_SIDE):
                continue
            x, y, w, h = (float(v) for v in found.boxes[i])
            centre, size = np.array([x + w / 2, y + h / 2]), round(ROLL_FACE_PX * ROLL_CONTEXT)
            for _ in range(ROLL_ROUNDS):
                angle = eye_angle(points)
                matrix = cv2.getRotationMatrix2D((float(centre[0]), float(centre[1])), angle, ROLL_FACE_PX / max(w, h))
                matrix[:, 2] += size / 2 - centre
                patch = cv2.warpAffine(frame, matrix, (size, size), flags=cv2.INTER_LINEAR,
                                       borderMode=cv2.BORDER_REPLICATE)
                rows = np.asarray(self._detect(patch, 8), np.float64).reshape(-1, 15)
                if len(rows) == 0:
                    break
                row = rows[np.argmin(np.hypot(*(rows[:, :2] + rows[:, 2:4] / 2 - size / 2).T))]
                back = cv2.invertAffineTransform(matrix)
                points = row[4:14].reshape(5, 2) @ back[:, :2].T + back[:, 2]
                if abs(eye_angle(row[4:14].reshape(5, 2))) < 1.0:
                    break
            found.landmarks[i] = points.astype(np.float32)

    def suppress(self, found: Detections) -> np.ndarray:
        """Indices kept by non-maximum suppression on det_score (one face found by two passes)."""
        scores = np.nan_to_num(found.scores, nan=1.0)
        keep = cv2.dnn.NMSBoxes(found.boxes.tolist(), scores.tolist(), 0.0, self.cfg.nms_threshold)
        return np.sort(np.asarray(keep, int).ravel())

    def _load(self):
        return None  # detectors without an OpenCV model need nothing per thread

    def _detect(self, small: np.ndarray, min_size: int) -> np.ndarray:
        raise NotImplementedError


def region_windows(boxes: np.ndarray, shape) -> list[tuple[tuple[int, int, int, int], np.ndarray]]:
    """Windows (x0, y0, x1, y1) of REGION_CONTEXT face sides around each box, overlapping windows
    merged into one (a crowd's faces share a few windows instead of one detector run each), with
    the boxes each window holds."""
    height, width = shape[:2]
    groups = []
    for box in boxes:
        x, y, w, h = (int(v) for v in box)
        pad = round(REGION_CONTEXT * max(w, h))
        groups.append([max(0, x - pad), max(0, y - pad), min(width, x + w + pad), min(height, y + h + pad), [box]])
    merged = True
    while merged:
        merged = False
        for i in range(len(groups)):
            for j in range(i + 1, len(groups)):
                a, b = groups[i], groups[j]
                if a[0] < b[2] and b[0] < a[2] and a[1] < b[3] and b[1] < a[3]:
                    groups[i] = [min(a[0], b[0]), min(a[1], b[1]), max(a[2], b[2]), max(a[3], b[3]), a[4] + b[4]]
                    del groups[j]
                    merged = True
                    break
            if merged:
                break
    return [((g[0], g[1], g[2], g[3]), np.asarray(g[4])) for g in groups if g[2] - g[0] >= 8 and g[3] - g[1] >= 8]


def eye_angle(points) -> float:
    """Degrees of the eye line (subject's right eye to left eye) from level; image y points down."""
    dx, dy = np.asarray(points, np.float64)[1] - np.asarray(points, np.float64)[0]
    return float(np.degrees(np.arctan2(dy, dx)))


def clip_boxes(boxes: np.ndarray, shape) -> np.ndarray:
    """Boxes cut to the frame (detectors reach past its edge for faces at the border)."""
    height, width = shape[:2]
    x0, y0 = np.clip(boxes[:, 0], 0, width - 1), np.clip(boxes[:, 1], 0, height - 1)
    x1 = np.clip(boxes[:, 0] + boxes[:, 2], x0 + 1, width)
    y1 = np.clip(boxes[:, 1] + boxes[:, 3], y0 + 1, height)
    return np.stack([x0, y0, x1 - x0, y1 - y0], axis=1).astype(np.int32)


def no_landmarks(boxes: np.ndarray) -> np.ndarray:
    """Raw rows (x, y, w, h, 10 NaN landmark coordinates, NaN score) for a detector without them."""
    boxes = np.asarray(boxes, np.float64).reshape(-1, 4)
    return np.hstack([boxes, np.full((len(boxes), 11), np.nan)])


class HaarDetector(FaceDetector):
    """OpenCV's frontal-face Haar cascade: built in, no model file, no landmarks or confidence."""

    name = "haar"

    def _load(self):
        cascade = cv2.CascadeClassifier(str(Path(cv2.data.haarcascades) / HAAR_FILE))
        if cascade.empty():
            raise FerkitError(f"OpenCV's {HAAR_FILE} could not be loaded (opencv-python-headless>=4.10,<5 has it)")
        return cascade

    def _detect(self, small: np.ndarray, min_size: int) -> np.ndarray:
        # No histogram equalisation: the cascade normalises each window's contrast itself, and on
        # the dlib photos equalising changed no recall while doubling the time on the Pexels video.
        gray = small if small.ndim == 2 else cv2.cvtColor(small, cv2.COLOR_BGR2GRAY)
        boxes, neighbours = self.model.detectMultiScale2(gray, scaleFactor=self.cfg.scale_factor,
                                                         minNeighbors=self.cfg.min_neighbors,
                                                         minSize=(min_size, min_size))
        boxes = np.asarray(boxes).reshape(-1, 4)
        if len(boxes) >= 2:
            # The cascade merges hits of one size only, so a face can also come back as a second,
            # offset box (over hair or a chin). Keep the box with more supporting hits among overlapping ones.
            keep = cv2.dnn.NMSBoxes(boxes.tolist(), np.asarray(neighbours, np.float32).ravel().tolist(),
                                    0.0, self.cfg.nms_threshold)
            boxes = boxes[np.asarray(keep, int).ravel()]
        return no_landmarks(boxes)


class YuNetDetector(FaceDetector):
    """cv2.FaceDetectorYN with a YuNet ONNX file (the bundled one unless `detector_model` names
    another): finds smaller, turned, tilted and darker faces than Haar, with five landmarks and a
    confidence per face."""

    name = "yunet"
    native_face_size = 20
    multi_scale = True

    def _load(self):
        path = Path(self.cfg.detector_model) if self.cfg.detector_model else bundled_yunet_path()
        if not path.is_file():
            where = "" if self.cfg.detector_model else " (the bundled model is missing: reinstall ferkit)"
            raise FerkitError(f"{path}: YuNet model file not found{where}")
        level = cv2.utils.logging.getLogLevel()
        cv2.utils.logging.setLogLevel(cv2.utils.logging.LOG_LEVEL_SILENT)  # its own log would surround our line
        try:
            return cv2.FaceDetectorYN.create(str(path), "", (320, 320), self.cfg.detect_threshold,
                                             self.cfg.nms_threshold)
        except cv2.error as exc:  # OpenCV's reason runs over several lines: its first says enough
            reason = next((line.strip(" >:") for line in (exc.err or "").splitlines() if line.strip(" >:")), "")
            raise FerkitError(f"{path}: not a YuNet model OpenCV can load ({reason or 'no reason given'})") from None
        finally:
            cv2.utils.logging.setLogLevel(level)

    def _detect(self, small: np.ndarray, min_size: int) -> np.ndarray:
        bgr = cv2.cvtColor(small, cv2.COLOR_GRAY2BGR) if small.ndim == 2 else small
        size = (bgr.shape[1], bgr.shape[0])
        model = self.model
        if tuple(model.getInputSize()) != size:
            model.setInputSize(size)
        _, faces = model.detect(bgr)
        if faces is None:
            return np.zeros((0, 15))
        return faces[np.minimum(faces[:, 2], faces[:, 3]) >= min_size]


DETECTORS = {"haar": HaarDetector, "yunet": YuNetDetector}


def create_detector(cfg: DetectorConfig) -> FaceDetector:
    if cfg.name not in DETECTORS:
        raise FerkitError(f"unknown detector {cfg.name!r} (expected {' or '.join(DETECTORS)})")
    return DETECTORS[cfg.name](cfg)
