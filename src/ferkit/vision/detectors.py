"""Face detectors behind one small interface: detect(frame) -> boxes (N, 4) int x, y, w, h.

Both run on a copy of the frame downscaled to at most `max_side` pixels (YuNet further, while the
smallest wanted face stays as large as the smallest it finds: its cost grows with the area) and
return boxes in the original frame's pixels. Haar's cost falls with a larger minimum face size
on its own, since its image pyramid starts at that size.
"""

from __future__ import annotations

import threading
from pathlib import Path

import cv2
import numpy as np

from ..config import DetectorConfig
from ..errors import FerkitError

HAAR_FILE = "haarcascade_frontalface_default.xml"


class FaceDetector:
    """Base class: downscaling, box rescaling, one OpenCV model per thread.

    Subclasses implement _detect(small_frame, min_size) and, when they use an OpenCV model,
    _load() (a new model; raises on a bad file), which they reach as `self.model`. OpenCV
    detectors keep per-call state, so each thread (web request workers, the live stream) gets its
    own model instead of queueing on a lock.
    """

    name = "base"
    native_face_size: int | None = None  # smallest face found reliably, pixels; None: no extra downscale

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
        """Boxes (N, 4) int32 x, y, w, h in `frame` pixels, largest first.

        `min_size` raises the smallest face side searched for (never below the configured one): a
        video stream that already tracks large faces looks for faces of about their size, far
        faster than a search down to the smallest faces.
        """
        min_size = max(1, self.cfg.min_face, min_size or 0)
        height, width = frame.shape[:2]
        scale = min(1.0, self.cfg.max_side / max(height, width), (self.native_face_size or min_size) / min_size)
        small = frame if scale == 1.0 else cv2.resize(frame, (max(1, round(width * scale)),
                                                              max(1, round(height * scale))),
                                                      interpolation=cv2.INTER_AREA)
        boxes = self._detect(small, max(8, round(min_size * scale)))
        if len(boxes) == 0:
            return np.zeros((0, 4), np.int32)
        boxes = np.round(np.asarray(boxes, np.float64)[:, :4] / scale).astype(np.int32)
        boxes[:, :2] = np.maximum(boxes[:, :2], 0)  # detectors may reach past the frame edge
        return boxes[np.argsort(-(boxes[:, 2] * boxes[:, 3]), kind="stable")]

    def _load(self):
        return None  # detectors without an OpenCV model need nothing per thread

    def _detect(self, small: np.ndarray, min_size: int) -> np.ndarray:
        raise NotImplementedError


class HaarDetector(FaceDetector):
    """OpenCV's frontal-face Haar cascade: built in, no model file needed."""

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
        if len(boxes) < 2:
            return boxes
        # The cascade merges hits of one size only, so a face can also come back as a second, offset
        # box (over hair or a chin). Keep the box with more supporting hits among overlapping ones.
        keep = cv2.dnn.NMSBoxes(boxes.tolist(), np.asarray(neighbours, np.float32).ravel().tolist(),
                                0.0, self.cfg.nms_threshold)
        return boxes[np.asarray(keep, int).ravel()]


class YuNetDetector(FaceDetector):
    """cv2.FaceDetectorYN with a YuNet ONNX file: finds smaller, turned and darker faces than Haar."""

    name = "yunet"
    native_face_size = 20

    def _load(self):
        path = Path(self.cfg.detector_model or "")
        if not self.cfg.detector_model:
            raise FerkitError("--detector yunet needs --detector-model PATH (face_detection_yunet.onnx)")
        if not path.is_file():
            raise FerkitError(f"{path}: YuNet model file not found")
        try:
            return cv2.FaceDetectorYN.create(str(path), "", (320, 320), self.cfg.detect_threshold,
                                             self.cfg.nms_threshold)
        except cv2.error as exc:
            raise FerkitError(f"{path}: not a YuNet model OpenCV can load ({exc.err})") from None

    def _detect(self, small: np.ndarray, min_size: int) -> np.ndarray:
        bgr = cv2.cvtColor(small, cv2.COLOR_GRAY2BGR) if small.ndim == 2 else small
        size = (bgr.shape[1], bgr.shape[0])
        model = self.model
        if tuple(model.getInputSize()) != size:
            model.setInputSize(size)
        _, faces = model.detect(bgr)
        if faces is None:
            return np.zeros((0, 4))
        boxes = faces[:, :4]
        return boxes[np.minimum(boxes[:, 2], boxes[:, 3]) >= min_size]


DETECTORS = {"haar": HaarDetector, "yunet": YuNetDetector}


def create_detector(cfg: DetectorConfig) -> FaceDetector:
    if cfg.name not in DETECTORS:
        raise FerkitError(f"unknown detector {cfg.name!r} (expected {' or '.join(DETECTORS)})")
    return DETECTORS[cfg.name](cfg)
