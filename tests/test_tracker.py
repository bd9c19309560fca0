"""The IoU tracker: the IoU threshold at its boundary, track lifetime to the frame (and to the next
detection round, however far apart rounds are), id numbering."""

from __future__ import annotations

import numpy as np
import pytest

from ferkit.vision.tracker import IouTracker, greedy_matches, iou_matrix

FACE = (0, 0, 100, 100)


def test_iou_of_non_square_boxes():
    # (0,0,100,100) and (50,20,100,40): overlap 50x40 = 2000, union 10000 + 4000 - 2000
    assert iou_matrix([FACE], [(50, 20, 100, 40)])[0, 0] == pytest.approx(2000 / 12000)
    # and the other way round, and shifted by y rather than x
    assert iou_matrix([(20, 50, 40, 100)], [FACE])[0, 0] == pytest.approx(2000 / 12000)
    assert iou_matrix([(10, 20, 30, 40)], [FACE])[0, 0] == pytest.approx(1200 / 10000)  # inside: 30x40 of it
    assert iou_matrix([FACE], [(200, 0, 10, 10)])[0, 0] == 0.0  # apart along x
    assert iou_matrix([(0, 0, 10, 10)], [(0, 50, 10, 10)])[0, 0] == 0.0  # apart along y (overlapping in x)
    assert iou_matrix([(5, 5, 1, 1)], [(5, 5, 1, 1)])[0, 0] == 1.0
    assert iou_matrix([(5, 5, 0, 0)], [(5, 5, 0, 0)]).tolist() == [[0.0]], "empty boxes overlap nothing (no NaN)"
    assert iou_matrix(np.zeros((0, 4)), [FACE]).shape == (0, 1)


def test_greedy_matches_take_the_best_pair_first():
    overlap = np.array([[0.6, 0.9], [0.5, 0.0]])
    assert greedy_matches(overlap, 0.3) == [(0, 1), (1, 0)]  # not (0, 0): row 0's best is column 1
    assert greedy_matches(overlap, 0.55) == [(0, 1)]
    assert greedy_matches(np.array([[0.3]]), 0.3) == [(0, 0)], "an IoU equal to the threshold matches"


@pytest.mark.parametrize("height, continues", [(31, True), (30, True), (29, False)])
def test_iou_threshold_boundary(height, continues):
    """A box (0, 0, 100, h) overlaps the face with IoU h / 100: 0.31 and 0.30 continue the
    track at min_iou 0.3, 0.29 starts a new one."""
    tracker = IouTracker(min_iou=0.3, max_missed=5, min_hits=1)
    tracker.update(np.array([FACE]))
    tracker.update(np.array([(0, 0, 100, height)]))
    if continues:
        assert [(t.face_id, t.box.tolist(), t.hits) for t in tracker.tracks] == [(1, [0, 0, 100, height], 2)]
    else:
        assert [(t.face_id, t.frames_since_seen) for t in tracker.tracks] == [(1, 1), (2, 0)]


@pytest.mark.parametrize("age", ["coast", "update"])
def test_a_track_dies_after_exactly_max_missed_frames(age):
    """Once a detection round has missed it (the first missed frame here), coasting ages it as
    much as further empty rounds do."""
    tracker = IouTracker(min_iou=0.3, max_missed=3, min_hits=1)
    tracker.update(np.array([FACE]))
    for missed in (1, 2, 3):
        tracker.coast() if age == "coast" and missed > 1 else tracker.update(np.zeros((0, 4)))
        assert [(t.face_id, t.frames_since_seen) for t in tracker.tracks] == [(1, missed)]
    tracker.coast() if age == "coast" else tracker.update(np.zeros((0, 4)))
    assert tracker.tracks == [], "gone on the 4th frame without a match"
    tracker.update(np.array([FACE]))
    assert [t.face_id for t in tracker.tracks] == [2], "ids are never reused"


@pytest.mark.parametrize("matched", [True, False])
def test_a_track_lives_to_the_next_detection_round_however_far_off(matched):
    """--detect-every 10 with the default max_missed 8 and min_hits 2: coasting alone (9 frames
    between two rounds) never ends a track, so the second round can confirm it; a round that
    misses it then ends it at once, since it is past max_missed frames."""
    tracker = IouTracker(min_iou=0.3, max_missed=8, min_hits=2)
    tracker.update(np.array([FACE]))
    for _ in range(9):
        tracker.coast()
    assert [(t.face_id, t.frames_since_seen, t.missed_rounds) for t in tracker.tracks] == [(None, 9, 0)]
    tracker.update(np.array([FACE]) if matched else np.zeros((0, 4)))
    if matched:
        assert [(t.face_id, t.frames_since_seen, t.missed_rounds, t.hits) for t in tracker.tracks] == [(1, 0, 0, 2)]
    else:
        assert tracker.tracks == []


def test_a_match_resets_the_age():
    tracker = IouTracker(min_iou=0.3, max_missed=2, min_hits=1)
    tracker.update(np.array([FACE]))
    tracker.coast()
    tracker.coast()
    tracker.update(np.array([(2, 0, 100, 100)]))
    assert [(t.face_id, t.frames_since_seen, t.hits) for t in tracker.tracks] == [(1, 0, 2)]
    tracker.coast()
    tracker.coast()
    assert len(tracker.tracks) == 1


def test_confirmation_needs_min_hits_and_ids_follow_confirmation_order():
    tracker = IouTracker(min_iou=0.3, max_missed=5, min_hits=3)
    left, right = (0, 0, 50, 50), (200, 0, 60, 60)
    tracker.update(np.array([left]))
    tracker.update(np.array([left, right]))
    assert [(t.face_id, t.hits) for t in tracker.tracks] == [(None, 2), (None, 1)]
    tracker.update(np.array([left, right]))
    assert [(t.face_id, t.confirmed) for t in tracker.tracks] == [(1, True), (None, False)]
    tracker.update(np.array([left, right]))
    assert [t.face_id for t in tracker.tracks] == [1, 2]


def test_default_settings():
    tracker = IouTracker()
    assert (tracker.min_iou, tracker.max_missed, tracker.min_hits, tracker.next_id) == (0.3, 8, 1, 1)


def test_tracks_carry_their_latest_det_score_and_landmarks():
    tracker = IouTracker(min_iou=0.3, max_missed=5, min_hits=1)
    first = np.arange(10, dtype=np.float32).reshape(1, 5, 2)
    tracker.update(np.array([FACE]), [0.5], first)
    assert tracker.tracks[0].det_score == 0.5 and np.array_equal(tracker.tracks[0].landmarks, first[0])
    tracker.update(np.array([FACE, (300, 0, 50, 50)]), [0.75, 0.25], np.stack([first[0] + 1, first[0] + 2]))
    assert [t.det_score for t in tracker.tracks] == [0.75, 0.25]
    assert np.array_equal(tracker.tracks[0].landmarks, first[0] + 1)
    assert np.array_equal(tracker.tracks[1].landmarks, first[0] + 2)
    tracker.update(np.array([FACE]))  # a detector without scores or landmarks (Haar)
    assert np.isnan(tracker.tracks[0].det_score) and tracker.tracks[0].landmarks is None
