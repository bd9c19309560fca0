"""IoU tracker: gives each face a stable id while it stays in view."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


def iou_matrix(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Intersection over union of every box in a (N, 4) with every box in b (M, 4), x y w h."""
    a, b = np.asarray(a, np.float64).reshape(-1, 4), np.asarray(b, np.float64).reshape(-1, 4)
    ax1, ay1, ax2, ay2 = a[:, 0, None], a[:, 1, None], (a[:, 0] + a[:, 2])[:, None], (a[:, 1] + a[:, 3])[:, None]
    bx1, by1, bx2, by2 = b[:, 0], b[:, 1], b[:, 0] + b[:, 2], b[:, 1] + b[:, 3]
    inter = np.clip(np.minimum(ax2, bx2) - np.maximum(ax1, bx1), 0, None) * \
        np.clip(np.minimum(ay2, by2) - np.maximum(ay1, by1), 0, None)
    union = (a[:, 2] * a[:, 3])[:, None] + b[:, 2] * b[:, 3] - inter
    return np.divide(inter, union, out=np.zeros_like(inter), where=union > 0)


@dataclass
class Track:
    track_id: int
    box: np.ndarray  # x, y, w, h
    frames_since_seen: int = 0
    scores: np.ndarray | None = None  # smoothed expression scores


class IouTracker:
    """Greedy IoU matching of new detections to live tracks; unmatched detections start tracks."""

    def __init__(self, min_iou: float = 0.3, max_missed: int = 8):
        self.min_iou, self.max_missed = min_iou, max_missed
        self.tracks: list[Track] = []
        self.next_id = 1

    def update(self, boxes: np.ndarray) -> None:
        """Match a detection round's boxes; tracks left unmatched age, and die after max_missed frames."""
        boxes = np.asarray(boxes).reshape(-1, 4)
        overlap = iou_matrix([t.box for t in self.tracks], boxes) if self.tracks else np.zeros((0, len(boxes)))
        matched_tracks, matched_boxes = set(), set()
        for flat in np.argsort(-overlap, axis=None):  # best pairs first
            t, d = np.unravel_index(flat, overlap.shape)
            if overlap[t, d] < self.min_iou:
                break
            if t in matched_tracks or d in matched_boxes:
                continue
            self.tracks[t].box, self.tracks[t].frames_since_seen = boxes[d], 0
            matched_tracks.add(t)
            matched_boxes.add(d)
        for t, track in enumerate(self.tracks):
            if t not in matched_tracks:
                track.frames_since_seen += 1
        for d in range(len(boxes)):
            if d not in matched_boxes:
                self.tracks.append(Track(self.next_id, boxes[d]))
                self.next_id += 1
        self.tracks = [t for t in self.tracks if t.frames_since_seen <= self.max_missed]

    def coast(self) -> None:
        """A frame without detection: tracks keep their boxes and grow older."""
        for track in self.tracks:
            track.frames_since_seen += 1
        self.tracks = [t for t in self.tracks if t.frames_since_seen <= self.max_missed]
