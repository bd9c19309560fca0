"""Scoring a face detector against hand-drawn boxes (dlib's imglab XML: <box top left width height>)."""

from __future__ import annotations

import xml.etree.ElementTree as ET
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..errors import DataError
from .tracker import greedy_matches, iou_matrix


def read_face_boxes(xml_path: str | Path) -> dict[Path, np.ndarray]:
    """{image path: (N, 4) x, y, w, h boxes} from an imglab XML file; boxes marked ignore are left out."""
    xml_path = Path(xml_path)
    try:
        root = ET.parse(xml_path).getroot()
    except (OSError, ET.ParseError) as exc:
        raise DataError(f"{xml_path}: not a readable imglab XML file ({exc})") from None
    boxes = {}
    for image in root.iter("image"):
        rows = [[int(b.get(k)) for k in ("left", "top", "width", "height")]
                for b in image.iter("box") if b.get("ignore", "0") != "1"]
        boxes[xml_path.parent / image.get("file")] = np.asarray(rows, np.int32).reshape(-1, 4)
    return boxes


def match_count(detected: np.ndarray, truth: np.ndarray, min_iou: float = 0.5) -> int:
    """How many true boxes a detection matches one-to-one with IoU >= min_iou."""
    return len(greedy_matches(iou_matrix(detected, truth), min_iou))


@dataclass
class DetectionScore:
    found: int = 0  # true boxes matched by a detection
    truth: int = 0  # true boxes
    detected: int = 0  # all detections

    def add(self, detected: np.ndarray, truth: np.ndarray, min_iou: float = 0.5) -> None:
        self.found += match_count(detected, truth, min_iou)
        self.truth += len(truth)
        self.detected += len(detected)

    @property
    def recall(self) -> float:
        return self.found / self.truth if self.truth else 0.0

    @property
    def precision(self) -> float:
        return self.found / self.detected if self.detected else 0.0
