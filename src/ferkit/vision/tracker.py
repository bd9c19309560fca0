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


def greedy_matches(overlap: np.ndarray, min_iou: float) -> list[tuple[int, int]]:
    """One-to-one (row, column) pairs of an IoU matrix with IoU >= min_iou, best pairs first."""
    pairs, used_rows, used_cols = [], set(), set()
    for flat in np.argsort(-overlap, axis=None):
        row, col = (int(i) for i in np.unravel_index(flat, overlap.shape))
        if overlap[row, col] < min_iou:
            break
        if row not in used_rows and col not in used_cols:
            pairs.append((row, col))
            used_rows.add(row)
            used_cols.add(col)
    return pairs


@dataclass
class Track:
    face_id: int | None  # None until confirmed, so ids count only faces that were shown
    box: np.ndarray  # x, y, w, h
    frames_since_seen: int = 0
    missed_rounds: int = 0  # detection rounds since the last match
    hits: int = 1  # detection rounds that matched this track
    scores: np.ndarray | None = None  # smoothed expression scores
    det_score: float = float("nan")  # the detector's confidence at the last match (NaN: none)
    landmarks: np.ndarray | None = None  # (5, 2) at the last match, for the aligned crop; None: none
    classified_at: int = -1  # frame index of the last classification (crowds are classified in turns)

    @property
    def confirmed(self) -> bool:
        return self.face_id is not None


class IouTracker:
    """Greedy IoU matching of new detections to live tracks; unmatched detections start tracks.

    A track is confirmed (gets an id) once `min_hits` detection rounds matched it: a one-off false
    detection (a hand, a patterned shirt) then never shows up as a face.

    A track dies once it has gone more than `max_missed` frames without a match and has missed at
    least one detection round: however far apart the rounds are (a --detect-every above max_missed),
    the detector always gets one more look at it, or no track could ever reach its second hit.
    """

    def __init__(self, min_iou: float = 0.3, max_missed: int = 8, min_hits: int = 1):
        self.min_iou, self.max_missed, self.min_hits = min_iou, max_missed, min_hits
        self.tracks: list[Track] = []
        self.next_id = 1

    def update(self, boxes: np.ndarray, det_scores=None, landmarks=None) -> None:
        """Match a detection round's boxes (with their det_scores and (N, 5, 2) landmarks, when the
        detector has them); tracks left unmatched age, and die after max_missed frames."""
        boxes = np.asarray(boxes).reshape(-1, 4)
        det_scores = np.full(len(boxes), np.nan) if det_scores is None else np.asarray(det_scores, np.float64)
        overlap = iou_matrix([t.box for t in self.tracks], boxes) if self.tracks else np.zeros((0, len(boxes)))
        pairs = greedy_matches(overlap, self.min_iou)
        for t, d in pairs:
            track = self.tracks[t]
            track.box, track.frames_since_seen, track.missed_rounds, track.hits = boxes[d], 0, 0, track.hits + 1
            track.det_score, track.landmarks = float(det_scores[d]), None if landmarks is None else landmarks[d]
        matched_tracks, matched_boxes = {t for t, _ in pairs}, {d for _, d in pairs}
        for t, track in enumerate(self.tracks):
            if t not in matched_tracks:
                track.frames_since_seen += 1
                track.missed_rounds += 1
        for d in range(len(boxes)):
            if d not in matched_boxes:
                self.tracks.append(Track(None, boxes[d], det_score=float(det_scores[d]),
                                         landmarks=None if landmarks is None else landmarks[d]))
        self.drop_expired()
        self.confirm()

    def confirm(self) -> None:
        for track in self.tracks:
            if not track.confirmed and track.hits >= self.min_hits:
                track.face_id, self.next_id = self.next_id, self.next_id + 1

    def coast(self) -> None:
        """A frame without detection: tracks keep their boxes and grow older."""
        for track in self.tracks:
            track.frames_since_seen += 1
        self.drop_expired()

    def drop_expired(self) -> None:
        """Drop tracks past max_missed frames, but only once a detection round has missed them."""
        self.tracks = [t for t in self.tracks if t.frames_since_seen <= self.max_missed or not t.missed_rounds]
