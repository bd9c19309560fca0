"""The one per-frame path every front end shares: detect -> track -> crop -> classify -> smooth.

`Pipeline` holds the heavy, shared parts (detector, classifier); it analyses still images
directly. `pipeline.stream()` gives a `FaceStream` with its own tracker and smoother for one
video, camera or browser tab, so many streams can share one loaded model.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from pathlib import PurePath

import cv2
import numpy as np

from ..config import Config, PipelineConfig
from ..labels import CLASS_NAMES
from ..vision.crops import crop_faces, to_gray
from ..vision.detectors import Detections, FaceDetector, create_detector
from ..vision.tracker import IouTracker
from .classifier import FacialExpressionModel

# Between full scans, look for faces down to this share of the smallest tracked face's side: a
# face changes size far less than this between two detection rounds.
TRACKED_SIZE_SHARE = 0.6


@dataclass
class Face:
    box: tuple[int, int, int, int]  # x, y, w, h in frame pixels
    scores: np.ndarray  # (7,) probabilities in CLASS_NAMES order
    face_id: int | None = None  # stable id within a stream; None for still images
    det_score: float | None = None  # the face detector's confidence; None when it has none (Haar)

    @property
    def emotion(self) -> str:
        return CLASS_NAMES[int(np.argmax(self.scores))]

    @property
    def confidence(self) -> float:
        return float(np.max(self.scores))

    def to_dict(self) -> dict:
        data = {"box": [int(v) for v in self.box], "emotion": self.emotion,
                "scores": {name: round(float(s), 4) for name, s in zip(CLASS_NAMES, self.scores)},
                "det_score": None if self.det_score is None else round(float(self.det_score), 4)}
        if self.face_id is not None:
            data = {"face_id": int(self.face_id), **data}
        return data


IMAGE_EXPECTED = "a uint8 numpy array (H, W) grayscale, (H, W, 1), (H, W, 3) BGR or (H, W, 4) BGRA"


def as_frame(image) -> np.ndarray:
    """The image as the detector and crops take it, checked once where it enters (analyse, process).

    uint8 only: 2-D and (H, W, 3) BGR pass unchanged, (H, W, 1) becomes 2-D, and (H, W, 4) BGRA
    drops its alpha (BGR). Anything else is a one-line TypeError or ValueError saying what is
    expected, not an OpenCV error from deep inside a detector (or, for floats, no faces at all).
    """
    if image is None:
        raise TypeError(f"image must be {IMAGE_EXPECTED}, got None (cv2.imread returns None for a file it "
                        "cannot read; ferkit.inference.images.read_image raises an error saying why)")
    if isinstance(image, (str, bytes, bytearray, PurePath)):
        raise TypeError(f"image must be {IMAGE_EXPECTED}, got {type(image).__name__}: decode the file first "
                        "with ferkit.inference.images.read_image(path or bytes)")
    if not isinstance(image, np.ndarray):
        raise TypeError(f"image must be {IMAGE_EXPECTED}, got {type(image).__name__}")
    channels = image.shape[2] if image.ndim == 3 else None
    if image.ndim not in (2, 3) or channels not in (None, 1, 3, 4):
        raise ValueError(f"image must be {IMAGE_EXPECTED}, got shape {image.shape}")
    if image.size == 0:
        raise ValueError(f"image is empty (shape {image.shape})")
    if image.dtype != np.uint8:
        raise TypeError(f"image must be uint8 (0..255), got {image.dtype}: convert it, e.g. "
                        "cv2.convertScaleAbs(image), or (image * 255).astype(np.uint8) for floats in 0..1")
    if channels == 1:
        return image[:, :, 0]
    if channels == 4:
        return cv2.cvtColor(image, cv2.COLOR_BGRA2BGR)  # the detector takes 1 or 3 channels; alpha is dropped
    return image


def det_score(value) -> float | None:
    """A detector confidence for Face: None where the detector gives none (NaN)."""
    return None if value is None or not np.isfinite(value) else float(value)


class Pipeline:
    def __init__(self, classifier: FacialExpressionModel, detector: FaceDetector, cfg: PipelineConfig | None = None):
        self.classifier, self.detector, self.cfg = classifier, detector, cfg or PipelineConfig()

    @classmethod
    def from_config(cls, config: Config) -> "Pipeline":
        config.validate()  # fields may have been set after the Config was built
        classifier = FacialExpressionModel.load(config.model, config.models_dir,
                                                threads=config.pipeline.classifier_threads)
        if config.pipeline.uniform_prior:
            classifier.class_shares()  # a model without known class shares fails here, not at the first face
        return cls(classifier, create_detector(config.detector), config.pipeline)

    def with_uniform_prior(self, on: bool) -> "Pipeline":
        """This pipeline with `uniform_prior` set (itself when it already is): the same classifier and detector,
        so one loaded model serves requests that ask for either prior."""
        if on == self.cfg.uniform_prior:
            return self
        if on:
            self.classifier.class_shares()  # a model without known class shares is refused here
        return Pipeline(self.classifier, self.detector, replace(self.cfg, uniform_prior=on))

    def crops(self, frame: np.ndarray, boxes: np.ndarray, landmarks=None) -> np.ndarray:
        """(N, 48, 48) grey faces at `boxes` as the classifier sees them ((N, 5, 2) landmarks: aligned)."""
        return crop_faces(to_gray(frame), boxes, self.cfg.crop_margin, landmarks, self.cfg.align,
                          self.cfg.crop_scale, self.cfg.crop_shift)

    def classify(self, frame: np.ndarray, boxes: np.ndarray, landmarks=None) -> np.ndarray:
        """(N, 7) scores for the faces at `boxes` ((N, 5, 2) landmarks: aligned crops), in one batch."""
        return self.classifier.predict_proba(self.crops(frame, boxes, landmarks), tta=self.cfg.tta,
                                             uniform_prior=self.cfg.uniform_prior)

    def analyse(self, image: np.ndarray) -> list[Face]:
        """Every face of a still image (largest first), no tracking or smoothing.

        `image`: uint8 (H, W) grayscale, (H, W, 1), (H, W, 3) BGR, or (H, W, 4) BGRA (alpha dropped);
        anything else raises TypeError or ValueError (see as_frame).
        """
        image = as_frame(image)
        found = self.detector.detect_faces(image, fine=True)[: self.cfg.max_faces]
        scores = self.classify(image, found.boxes, found.landmarks)
        return [Face(tuple(int(v) for v in box), s, det_score=det_score(d))
                for box, s, d in zip(found.boxes, scores, found.scores)]

    def stream(self) -> "FaceStream":
        return FaceStream(self)


class FaceStream:
    """One video's state: detection every k-th frame, IoU tracking between, per-track score smoothing."""

    def __init__(self, pipeline: Pipeline):
        self.pipeline, self.cfg = pipeline, pipeline.cfg
        self.tracker = IouTracker(self.cfg.track_iou, self.cfg.track_max_missed, self.cfg.track_min_hits)
        self.frame_index = 0
        self.detection_round = 0
        self.frame_size: tuple[int, int] | None = None  # (height, width) of the frames tracked so far

    def restart(self) -> None:
        """Forget every track, as for a new video; face ids go on counting, so none names two faces."""
        next_id = self.tracker.next_id
        self.tracker = IouTracker(self.cfg.track_iou, self.cfg.track_max_missed, self.cfg.track_min_hits)
        self.tracker.next_id = next_id
        self.frame_index = self.detection_round = 0

    def process(self, frame: np.ndarray) -> list[Face]:
        """The faces of the next frame, with stable ids and smoothed scores; [] when none is in view.

        `frame`: as Pipeline.analyse takes an image. A frame of another size than the last starts
        tracking afresh with a detection round on it: the old boxes belong to another image.
        """
        frame = as_frame(frame)
        if self.frame_size is not None and frame.shape[:2] != self.frame_size:
            self.restart()
        self.frame_size = frame.shape[:2]
        if self.frame_index % max(1, self.cfg.detect_every) == 0:
            found = self.detect(frame)
            self.tracker.update(found.boxes, found.scores, found.landmarks)
        else:
            self.tracker.coast()
        self.frame_index += 1
        visible = self.visible_tracks()
        if not visible:
            return []
        # A crowd would cost a classifier run per face per frame: faces seen for the first time are
        # classified, then others up to classify_per_frame, those classified longest ago first; the
        # rest keep their smoothed scores for the frame.
        new_faces = [t for t in visible if t.scores is None]
        stale = sorted((t for t in visible if t.scores is not None), key=lambda t: t.classified_at)
        due = new_faces + stale[: max(0, max(1, self.cfg.classify_per_frame) - len(new_faces))]
        if not due:
            due = stale[:1]
        landmarks = np.stack([np.full((5, 2), np.nan) if t.landmarks is None else t.landmarks for t in due])
        scores = self.pipeline.classify(frame, np.stack([t.box for t in due]), landmarks)
        alpha = self.cfg.smoothing
        for track, new in zip(due, scores):
            track.scores = new if track.scores is None else alpha * new + (1 - alpha) * track.scores
            track.classified_at = self.frame_index
        return [Face(tuple(int(v) for v in track.box), track.scores.copy(), track.face_id, det_score(track.det_score))
                for track in visible]

    def detect(self, frame: np.ndarray) -> Detections:
        """A detection round: a full scan every full_scan_every rounds or when nothing is tracked;
        otherwise a search for faces at least TRACKED_SIZE_SHARE of the smallest tracked face.
        Every fine_scan_every-th round (the first included) adds the detector's fine pass, for
        small faces in large frames, and every round a region pass around each tracked face too
        small for the coarse pass, so small faces keep their tracks between fine passes."""
        tracks = self.tracker.tracks
        full_scan = not tracks or self.detection_round % max(1, self.cfg.full_scan_every) == 0
        fine = self.detection_round % max(1, self.cfg.fine_scan_every) == 0
        self.detection_round += 1
        min_size = None if full_scan else int(TRACKED_SIZE_SHARE * min(min(t.box[2:]) for t in tracks))
        regions = np.stack([t.box for t in tracks]) if tracks else None
        found = self.pipeline.detector.detect_faces(frame, min_size, fine=fine, regions=regions, scan=full_scan)
        return found[: self.cfg.max_faces]

    def visible_tracks(self) -> list:
        """Confirmed tracks seen in the last two detection rounds; older ones keep their ids but hide."""
        recent = 2 * max(1, self.cfg.detect_every)
        return [t for t in self.tracker.tracks if t.confirmed and t.frames_since_seen < recent]
