"""Drawing (ferkit.vision.draw), pinned pixel by pixel: box colours, line thickness, the label's place
and text, the score panel's place, size and bars, when the panel is left out, and JPEG encoding.

Expected values are written out from draw.py's formulas (stated beside them), never taken from
draw.py's own constants, so that a changed colour, offset or comparison there fails a test here.
Where text is involved the expected picture is rendered here with the same OpenCV calls and the
layout numbers worked out by hand.
"""

from __future__ import annotations

import ferkit  # noqa: F401, I001  (before cv2, as everywhere in the tests)
import cv2
import numpy as np
import pytest

from ferkit.inference.pipeline import Face
from ferkit.vision import draw
from ferkit.vision.draw import draw_box, draw_faces, draw_score_bars, encode_jpeg, overlaps, score_panel

NAMES = ("angry", "disgust", "fear", "happy", "sad", "surprise", "neutral")
# BGR, written out: a changed entry in draw.EMOTION_COLOURS must fail the tests
COLOURS = {
    "angry": (40, 40, 220), "disgust": (40, 140, 60), "fear": (160, 60, 160), "happy": (40, 200, 240),
    "sad": (200, 120, 40), "surprise": (40, 150, 250), "neutral": (190, 190, 190),
}
PANEL, BAR_BACKGROUND, WHITE, BLACK = (30, 30, 30), (70, 70, 70), (255, 255, 255), (0, 0, 0)
FONT = cv2.FONT_HERSHEY_SIMPLEX
# asymmetric scores (sum 1, "sad" wins with 0.25), so that swapped or shifted bars show
STEPS = np.array([0.05, 0.1, 0.15, 0.2, 0.25, 0.15, 0.1], np.float32)


def scores_for(emotion: str, top: float = 0.7) -> np.ndarray:
    scores = np.full(len(NAMES), (1 - top) / (len(NAMES) - 1), np.float32)
    scores[NAMES.index(emotion)] = top
    return scores


def pixel(image: np.ndarray, x: int, y: int) -> tuple[int, ...]:
    return tuple(int(v) for v in image[y, x])


def reference_box(image, box, colour, label, font_scale, thickness, above=True):
    """draw_box's picture, rendered here: the outline, then the filled label rectangle 4 px wider
    and taller than the text (above the box, or from its bottom edge down), black text 2 px in."""
    x, y, w, h = box
    cv2.rectangle(image, (x, y), (x + w, y + h), colour, thickness)
    (tw, th), base = cv2.getTextSize(label, FONT, font_scale, thickness)
    top = y - th - base - 4 if above else y + h
    cv2.rectangle(image, (x, top), (x + tw + 4, top + th + base + 4), colour, -1)
    cv2.putText(image, label, (x + 2, top + th + 2), FONT, font_scale, BLACK, thickness, cv2.LINE_AA)
    return tw, th, base


def reference_panel(image, left, top, width, bar_height, text_width, text_scale, lengths):
    """draw_score_bars' picture, rendered here from the layout numbers given: the dark panel, then
    per row the name in white, the grey bar background and the coloured bar of `lengths[i]` pixels
    (past its first column: OpenCV's rectangles include both corners)."""
    cv2.rectangle(image, (left, top), (left + width, top + 7 * bar_height), PANEL, -1)
    bar_left, bar_width = left + text_width, width - text_width - 2
    for i, name in enumerate(NAMES):
        row = top + i * bar_height
        cv2.putText(image, name, (left + 2, row + bar_height - 2), FONT, text_scale, WHITE, 1, cv2.LINE_AA)
        cv2.rectangle(image, (bar_left, row + 1), (bar_left + bar_width, row + bar_height - 1), BAR_BACKGROUND, -1)
        cv2.rectangle(image, (bar_left, row + 1), (bar_left + lengths[i], row + bar_height - 1), COLOURS[name], -1)


# --- boxes ---------------------------------------------------------------------------------

@pytest.mark.parametrize("emotion", NAMES)
def test_box_outline_is_one_pixel_in_the_emotions_colour(emotion):
    # 400 px wide: scale = clamp(400 / 1000, 0.4, 1) = 0.4, thickness = max(1, round(2 * 0.4)) = 1
    frame = np.zeros((240, 400, 3), np.uint8)
    x, y, w, h = 60, 80, 120, 70  # not square: swapped width and height would show
    out = draw_faces(frame, [Face((x, y, w, h), scores_for(emotion))], score_bars=False)
    colour = COLOURS[emotion]
    for px, py in [(x, y + 35), (x + w, y + 35), (x + 60, y + h), (x, y + h), (x + w, y + h), (x + w, y),
                   (x + w, y + 10), (x + 100, y)]:
        assert pixel(out, px, py) == colour, (px, py)
    for px, py in [(x - 1, y + 35), (x + 1, y + 35), (x + w - 1, y + 35), (x + w + 1, y + 35),
                   (x + 60, y + h - 1), (x + 60, y + h + 1), (x + 100, y + 1), (x + w + 1, y - 1)]:
        assert pixel(out, px, py) == BLACK, (px, py)


@pytest.mark.parametrize("frame_width, columns", [
    (200, [0]),         # scale clamped up to 0.4: thickness max(1, round(0.8)) = 1, the edge's own column
    (640, [0]),         # scale 0.64: round(1.28) = 1
    (750, [-1, 0, 1]),  # scale 0.75: round(1.5) = 2, and OpenCV's 2 px line covers the column and one each side
    (1000, [-1, 0, 1]),  # scale 1.0: 2
    (1920, [-1, 0, 1]),  # scale clamped down to 1.0: 2 (unclamped 1.92 would give round(3.84) = 4)
])
def test_line_thickness_follows_the_frame_width(frame_width, columns):
    x, y, w, h = 50, 100, 80, 60
    out = draw_faces(np.zeros((300, frame_width, 3), np.uint8), [Face((x, y, w, h), scores_for("fear"))],
                     score_bars=False)
    row = out[y + h // 2, x - 4:x + 5]
    covered = [i - 4 for i in range(9) if tuple(row[i]) == COLOURS["fear"]]
    assert covered == columns
    assert not row[[i + 4 for i in range(-4, 5) if i not in columns]].any()


# --- labels --------------------------------------------------------------------------------

@pytest.mark.parametrize("face_id, top_score, text", [
    (None, 0.7, "happy 70%"),
    (3, 0.7, "#3 happy 70%"),
    (0, 0.7, "#0 happy 70%"),  # id 0 is an id: "is not None", not truthiness
    (12, 0.62, "#12 happy 62%"),
])
def test_label_text_and_place_above_the_box(face_id, top_score, text):
    # scale 0.4: font scale 0.6 * 0.4 = 0.24, thickness 1
    frame = np.zeros((240, 400, 3), np.uint8)
    box = (60, 80, 120, 70)
    out = draw_faces(frame, [Face(box, scores_for("happy", top_score), face_id)], score_bars=False)
    expected = np.zeros_like(frame)
    tw, th, base = reference_box(expected, box, COLOURS["happy"], text, 0.24, 1)
    np.testing.assert_array_equal(out, expected)
    # the label's filled rectangle: from x to x + tw + 4, rows y - th - base - 4 to y
    assert pixel(out, 60 + tw + 4, 80 - th - base - 4) == COLOURS["happy"]
    assert pixel(out, 60 + tw + 5, 80 - th - base - 4) == BLACK
    assert pixel(out, 60, 80 - th - base - 5) == BLACK


def test_label_at_full_scale_on_a_wide_frame():
    # 1000 px wide: scale 1.0, font scale 0.6, thickness 2
    frame = np.zeros((300, 1000, 3), np.uint8)
    box = (300, 120, 90, 130)
    out = draw_faces(frame, [Face(box, scores_for("surprise", 0.83), 7)], score_bars=False)
    expected = np.zeros_like(frame)
    reference_box(expected, box, COLOURS["surprise"], "#7 surprise 83%", 0.6, 2)
    np.testing.assert_array_equal(out, expected)


def test_label_goes_below_the_box_only_when_it_would_leave_the_top():
    text = "#5 sad 70%"
    (tw, th), base = cv2.getTextSize(text, FONT, 0.24, 1)
    need = th + base + 4  # the label's height: above the box while y - need >= 0
    for y, above in [(need, True), (need - 1, False), (0, False)]:
        frame = np.zeros((200, 400, 3), np.uint8)
        box = (30, y, 100, 60)
        out = draw_faces(frame, [Face(box, scores_for("sad"), 5)], score_bars=False)
        expected = np.zeros_like(frame)
        reference_box(expected, box, COLOURS["sad"], text, 0.24, 1, above=above)
        np.testing.assert_array_equal(out, expected, err_msg=f"y={y}")
    # below: the label's rectangle starts at the box's bottom edge, y + h
    out = draw_faces(np.zeros((200, 400, 3), np.uint8), [Face((30, 4, 100, 60), scores_for("sad"), 5)],
                     score_bars=False)
    assert pixel(out, 30 + tw + 4, 64) == COLOURS["sad"] and pixel(out, 30 + tw + 4, 64 + need) == COLOURS["sad"]
    assert pixel(out, 30 + tw + 4, 65 + need) == BLACK and pixel(out, 30 + tw + 4, 3) == BLACK


def test_draw_box_alone_draws_no_panel():
    out = np.zeros((240, 400, 3), np.uint8)
    draw_box(out, Face((60, 80, 120, 70), scores_for("angry")), 0.4)
    expected = np.zeros_like(out)
    reference_box(expected, (60, 80, 120, 70), COLOURS["angry"], "angry 70%", 0.24, 1)
    np.testing.assert_array_equal(out, expected)


# --- the score panel's layout ----------------------------------------------------------------

@pytest.mark.parametrize("scale, expected", [
    # bar height max(6, round(12 s)), width max(60, round(110 s)) + round(62 s), height 7 bars
    (0.2, (126, 40, 60 + 12, 42, 6)),         # 12 s = 2.4 -> 6; 110 s = 22 -> 60; 62 s = 12.4 -> 12
    (0.4, (126, 40, 60 + 25, 42, 6)),         # 4.8 -> 6 (the floor); 44 -> 60; 24.8 -> 25
    (0.64, (126, 40, 70 + 40, 7 * 8, 8)),     # 7.68 -> 8; 70.4 -> 70; 39.68 -> 40
    (1.0, (126, 40, 110 + 62, 7 * 12, 12)),   # 12; 110; 62
])
def test_score_panel_size_follows_the_scale(scale, expected):
    # right of the box: left = x + w + 6 = 20 + 100 + 6
    assert score_panel(Face((20, 40, 100, 100), STEPS), scale, 2000) == expected


def test_score_panel_goes_left_when_the_frame_ends_on_the_right():
    face = Face((100, 30, 100, 50), STEPS)  # scale 0.4: panel width 85
    # right while x + w + 6 + width <= frame width: 100 + 100 + 6 + 85 = 291
    assert score_panel(face, 0.4, 291) == (206, 30, 85, 42, 6)
    # otherwise left: x - width - 6 = 100 - 85 - 6 = 9
    assert score_panel(face, 0.4, 290) == (9, 30, 85, 42, 6)


@pytest.mark.parametrize("b, expected", [
    # a = (10, 20, 30, 50): columns 10..39, rows 20..69; touching edges do not overlap
    ((40, 30, 5, 5), False), ((39, 30, 5, 5), True),    # b right of a: b[0] < a[0] + a[2]
    ((3, 30, 7, 5), False), ((3, 30, 8, 5), True),      # b left of a: a[0] < b[0] + b[2]
    ((20, 70, 5, 5), False), ((20, 69, 5, 5), True),    # b below a: b[1] < a[1] + a[3]
    ((20, 11, 5, 9), False), ((20, 11, 5, 10), True),   # b above a: a[1] < b[1] + b[3]
    ((0, 0, 100, 100), True), ((15, 25, 2, 2), True),   # one inside the other
    ((50, 80, 5, 5), False), ((50, 30, 5, 5), False), ((20, 80, 5, 5), False),  # apart in one or both
    ((0, 0, 5, 5), False), ((0, 30, 5, 5), False), ((20, 0, 5, 5), False),
    ((45, 5, 5, 20), False), ((5, 75, 10, 5), False),  # a box's height is not its width, nor its y its x
])
def test_overlaps_is_strict_and_symmetric(b, expected):
    a = (10, 20, 30, 50)
    assert overlaps(a, b) is expected
    assert overlaps(b, a) is expected


# --- the score bars --------------------------------------------------------------------------

def test_score_bars_exact_picture_at_scale_0_4():
    # scale 0.4, box (20, 40, 100, 100): panel left 126, top 40, width 85 (height 42, bars of 6);
    # names in a 25 px column (round(62 * 0.4)), bars from 151, 85 - 25 - 2 = 58 px long;
    # font 0.35 * 0.4 + 0.05 = 0.19. Bar lengths round(58 * score): 2.9 -> 3, 5.8 -> 6, 8.7 -> 9,
    # 11.6 -> 12, 14.5 -> 14 (round half to even), 9, 6
    out = np.zeros((240, 400, 3), np.uint8)
    draw_score_bars(out, Face((20, 40, 100, 100), STEPS), 0.4)
    expected = np.zeros_like(out)
    reference_panel(expected, 126, 40, 85, 6, 25, 0.19, [3, 6, 9, 12, 14, 9, 6])
    np.testing.assert_array_equal(out, expected)


def test_score_bars_exact_picture_at_scale_1():
    # scale 1: panel 110 + 62 = 172 wide, bars of 12, names in 62 px, bars 172 - 62 - 2 = 108 long
    # from 126 + 62 = 188; font 0.35 + 0.05 = 0.4. Lengths round(108 * score): 5.4 -> 5, 10.8 -> 11,
    # 16.2 -> 16, 21.6 -> 22, 27, 16, 11
    out = np.zeros((300, 1000, 3), np.uint8)
    draw_score_bars(out, Face((20, 40, 100, 100), STEPS), 1.0)
    expected = np.zeros_like(out)
    reference_panel(expected, 126, 40, 172, 12, 62, 0.4, [5, 11, 16, 22, 27, 16, 11])
    np.testing.assert_array_equal(out, expected)


def test_bar_lengths_are_proportional_to_the_scores():
    # scale 0.4 as above: row i's bar spans rows 40 + 6 i + 1 .. 40 + 6 i + 5, columns 151 .. 151 + 58;
    # the coloured part covers round(58 * score) + 1 columns, the grey rest 58 - round(58 * score)
    out = np.zeros((240, 400, 3), np.uint8)
    draw_score_bars(out, Face((20, 40, 100, 100), STEPS), 0.4)
    for i, (name, length) in enumerate(zip(NAMES, [3, 6, 9, 12, 14, 9, 6])):
        for r in range(40 + 6 * i + 1, 40 + 6 * i + 6):
            row = [tuple(v) for v in out[r, 151:151 + 58 + 1]]
            assert row == [COLOURS[name]] * (length + 1) + [BAR_BACKGROUND] * (58 - length), (name, r)
            assert [tuple(v) for v in out[r, 210:212]] == [PANEL, PANEL], "2 px of panel right of the bar"
            assert pixel(out, 212, r) == BLACK
    # the panel's corners and the frame outside it
    for x, y in [(126, 40), (211, 40), (126, 82), (211, 82)]:
        assert pixel(out, x, y) == PANEL
    for x, y in [(125, 60), (212, 60), (180, 39), (180, 83)]:
        assert pixel(out, x, y) == BLACK
    # the names, white (grey where anti-aliased at this size) within the name column of their row
    for i in range(7):
        rows = out[40 + 6 * i:40 + 6 * i + 6, 126:151].astype(int)
        assert (rows[..., 0] == rows[..., 1]).all() and (rows[..., 1] == rows[..., 2]).all(), NAMES[i]
        assert rows.max() > 100, NAMES[i]


def test_score_bars_of_a_face_with_a_zero_score():
    # a score of 0 still colours the bar's first column (OpenCV's rectangles include both corners)
    scores = np.array([0, 0, 0, 1, 0, 0, 0], np.float32)
    out = np.zeros((240, 400, 3), np.uint8)
    draw_score_bars(out, Face((20, 40, 100, 100), scores), 0.4)
    expected = np.zeros_like(out)
    reference_panel(expected, 126, 40, 85, 6, 25, 0.19, [0, 0, 0, 58, 0, 0, 0])
    np.testing.assert_array_equal(out, expected)


@pytest.mark.parametrize("box, drawn", [
    ((20, 40, 40, 100), True), ((20, 40, 39, 100), False),  # the smaller side must be >= 40 (MIN_BARS_FACE)
    ((20, 40, 100, 40), True), ((20, 40, 100, 39), False),
    ((20, 40, 39, 39), False),
])
def test_score_bars_skip_small_faces(box, drawn):
    out = np.zeros((240, 400, 3), np.uint8)
    draw_score_bars(out, Face(box, STEPS), 0.4)
    assert bool(out.any()) is drawn
    assert draw.MIN_BARS_FACE == 40


@pytest.mark.parametrize("x, drawn", [(91, True), (90, False)])
def test_score_bars_skipped_when_the_left_panel_would_leave_the_frame(x, drawn):
    # 250 px wide, scale 0.4: no room right (x + 100 + 6 + 85 > 250), so left = x - 85 - 6: 0 or -1
    out = np.zeros((240, 250, 3), np.uint8)
    draw_score_bars(out, Face((x, 40, 100, 100), STEPS), 0.4)
    assert bool(out.any()) is drawn
    if drawn:
        expected = np.zeros_like(out)
        reference_panel(expected, 0, 40, 85, 6, 25, 0.19, [3, 6, 9, 12, 14, 9, 6])
        np.testing.assert_array_equal(out, expected)


@pytest.mark.parametrize("y, drawn", [(158, True), (159, False), (0, True)])
def test_score_bars_skipped_when_the_panel_would_leave_the_bottom(y, drawn):
    # 200 rows (and 400 columns: the width is no height), panel height 42: top + 42 <= 200
    out = np.zeros((200, 400, 3), np.uint8)
    draw_score_bars(out, Face((20, y, 100, 100), STEPS), 0.4)
    assert bool(out.any()) is drawn


@pytest.mark.parametrize("other, drawn", [
    # the panel is (126, 40, 85, 42): columns 126..210, rows 40..81 in overlaps' terms
    ((211, 30, 20, 100), True), ((210, 30, 20, 100), False),  # right of it
    ((96, 30, 30, 100), True), ((97, 30, 30, 100), False),    # left of it
    ((150, 10, 20, 30), True), ((150, 11, 20, 30), False),    # above it
    ((150, 82, 20, 30), True), ((150, 81, 20, 30), False),    # below it
])
def test_score_bars_skipped_where_they_would_cover_another_face(other, drawn):
    out = np.zeros((240, 400, 3), np.uint8)
    draw_score_bars(out, Face((20, 40, 100, 100), STEPS), 0.4, [(300, 200, 10, 10), other])
    assert bool(out.any()) is drawn


def test_score_bars_on_the_left_when_the_right_has_no_room():
    # 300 px wide, box (200, 50, 60, 60), scale 0.4: 200 + 60 + 6 + 85 = 351 > 300, so left = 200 - 85 - 6
    out = np.zeros((200, 300, 3), np.uint8)
    draw_score_bars(out, Face((200, 50, 60, 60), STEPS), 0.4)
    expected = np.zeros_like(out)
    reference_panel(expected, 109, 50, 85, 6, 25, 0.19, [3, 6, 9, 12, 14, 9, 6])
    np.testing.assert_array_equal(out, expected)


# --- draw_faces ------------------------------------------------------------------------------

def test_draw_faces_full_picture_two_faces():
    # 400 px wide: scale 0.4. Face a's panel right of it at (126, 40, 85, 42); face b (id 2) sits
    # below-right, its panel at (196 + 6, 150, 85, 42), both clear of the other face's box.
    frame = np.zeros((260, 400, 3), np.uint8)
    a, b = Face((20, 40, 100, 100), STEPS, 1), Face((140, 150, 56, 60), scores_for("angry", 0.9), 2)
    out = draw_faces(frame, [a, b])
    expected = np.zeros_like(frame)
    reference_panel(expected, 126, 40, 85, 6, 25, 0.19, [3, 6, 9, 12, 14, 9, 6])
    reference_panel(expected, 202, 150, 85, 6, 25, 0.19, [52, 1, 1, 1, 1, 1, 1])  # round(58 * 0.9) = 52, 58 / 60 -> 1
    reference_box(expected, a.box, COLOURS["sad"], "#1 sad 25%", 0.24, 1)
    reference_box(expected, b.box, COLOURS["angry"], "#2 angry 90%", 0.24, 1)
    np.testing.assert_array_equal(out, expected)


def test_draw_faces_draws_panels_first_so_boxes_and_labels_stay_on_top():
    # face a's panel (126, 100, 85, 42) spans rows 100..142; face b's box (130, 146, ...) is clear of
    # it, but b's label, 13 rows above b (th 6 + base 3 + 4), lies on the panel and must win.
    frame = np.zeros((300, 400, 3), np.uint8)
    a, b = Face((20, 100, 100, 100), STEPS), Face((130, 146, 60, 60), scores_for("disgust"))
    out = draw_faces(frame, [a, b])
    (tw, th), base = cv2.getTextSize("disgust 70%", FONT, 0.24, 1)
    assert (th, base) == (6, 3)
    assert pixel(out, 130, 135) == COLOURS["disgust"], "b's label over a's panel"
    assert pixel(out, 130 + tw + 4, 140) == COLOURS["disgust"]
    assert pixel(out, 130 + tw + 5, 140) == BAR_BACKGROUND, "the panel beside the label"
    # a box edge on the panel's last column (touching is no overlap) stays on top too
    c = Face((211, 60, 50, 50), scores_for("fear"))
    out = draw_faces(np.zeros((300, 400, 3), np.uint8), [Face((20, 40, 100, 100), STEPS), c])
    assert pixel(out, 211, 70) == COLOURS["fear"] and pixel(out, 210, 70) == PANEL


def test_draw_faces_checks_each_panel_against_the_other_faces():
    # a's panel (126, 40, 85, 42) would cover b's box; b's and c's panels are clear of all boxes
    frame = np.zeros((400, 400, 3), np.uint8)  # scale 0.4
    a = Face((20, 40, 100, 100), STEPS)
    b = Face((150, 60, 50, 50), STEPS)
    c = Face((20, 250, 60, 60), STEPS)
    out = draw_faces(frame, [a, b, c])
    assert pixel(out, 160, 45) == BLACK, "no panel for a"
    assert pixel(out, 127, 41) == BLACK
    assert pixel(out, 206, 61) == PANEL, "b's panel, right of b at 150 + 50 + 6"
    assert pixel(out, 86, 251) == PANEL, "c's panel, right of c at 20 + 60 + 6"
    # the same faces in another order: the same picture
    np.testing.assert_array_equal(draw_faces(frame, [c, b, a]), out)


def test_draw_faces_returns_a_copy_and_draws_bars_by_default():
    frame = np.full((240, 400, 3), 5, np.uint8)
    face = Face((20, 40, 100, 100), STEPS)
    out = draw_faces(frame, [face])
    assert out is not frame and (frame == 5).all(), "the input frame is untouched"
    assert pixel(out, 211, 40) == PANEL and pixel(out, 212, 40) == (5, 5, 5)
    without = draw_faces(frame, [face], score_bars=False)
    assert pixel(without, 211, 40) == (5, 5, 5) and pixel(without, 20, 60) == COLOURS["sad"]
    assert (without[40:83, 126:212] == 5).all(), "score_bars=False: no panel"
    assert np.array_equal(draw_faces(frame, []), frame)


def test_draw_faces_converts_grayscale_to_bgr():
    gray = np.full((240, 400), 50, np.uint8)
    out = draw_faces(gray, [Face((60, 80, 120, 70), scores_for("neutral"))], score_bars=False)
    assert out.shape == (240, 400, 3) and out.dtype == np.uint8
    assert pixel(out, 5, 5) == (50, 50, 50) and pixel(out, 60, 100) == COLOURS["neutral"]
    assert (gray == 50).all()
    expected = np.full((240, 400, 3), 50, np.uint8)
    reference_box(expected, (60, 80, 120, 70), COLOURS["neutral"], "neutral 70%", 0.24, 1)
    np.testing.assert_array_equal(out, expected)
    colour = np.full((240, 400, 3), 50, np.uint8)
    np.testing.assert_array_equal(draw_faces(colour, [Face((60, 80, 120, 70), scores_for("neutral"))],
                                             score_bars=False), expected)


def test_colour_table_is_the_documented_one():
    assert draw.EMOTION_COLOURS == COLOURS


# --- JPEG ----------------------------------------------------------------------------------

def test_encode_jpeg_round_trips_and_follows_quality():
    rng = np.random.default_rng(0)
    frame = cv2.GaussianBlur(rng.integers(0, 256, (120, 160, 3), dtype=np.uint8), (5, 5), 0)
    data = encode_jpeg(frame)
    assert isinstance(data, bytes) and data[:2] == b"\xff\xd8", "a JPEG starts with SOI"
    decoded = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_COLOR)
    assert decoded.shape == frame.shape
    assert np.abs(decoded.astype(int) - frame).mean() < 12
    # the default quality is 80, passed to OpenCV as an int (a float would be refused)
    assert data == cv2.imencode(".jpg", frame, [cv2.IMWRITE_JPEG_QUALITY, 80])[1].tobytes()
    assert encode_jpeg(frame, 30) == cv2.imencode(".jpg", frame, [cv2.IMWRITE_JPEG_QUALITY, 30])[1].tobytes()
    assert encode_jpeg(frame, 30.9) == encode_jpeg(frame, 30)
    assert len(encode_jpeg(frame, 30)) < len(data) < len(encode_jpeg(frame, 95))


def test_encode_jpeg_raises_when_opencv_fails(monkeypatch):
    monkeypatch.setattr(draw.cv2, "imencode", lambda *args, **kwargs: (False, None))
    with pytest.raises(RuntimeError, match="^JPEG encoding failed$"):
        encode_jpeg(np.zeros((8, 8, 3), np.uint8))
