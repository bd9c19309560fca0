"""Drawing: one function from (frame, faces) to an annotated frame, used by every front end."""

from __future__ import annotations

import cv2
import numpy as np

from ..labels import CLASS_NAMES

# BGR colour per expression, so a box's colour alone tells the expression
EMOTION_COLOURS = {
    "angry": (40, 40, 220), "disgust": (40, 140, 60), "fear": (160, 60, 160), "happy": (40, 200, 240),
    "sad": (200, 120, 40), "surprise": (40, 150, 250), "neutral": (190, 190, 190),
}
FONT = cv2.FONT_HERSHEY_SIMPLEX
MIN_BARS_FACE = 40  # pixels: smaller faces get their box and label only


def draw_faces(frame: np.ndarray, faces, score_bars: bool = True) -> np.ndarray:
    """A copy of `frame` (BGR) with each face's box, label and, room permitting, its 7 score bars."""
    out = frame.copy() if frame.ndim == 3 else cv2.cvtColor(frame, cv2.COLOR_GRAY2BGR)
    scale = max(0.4, min(1.0, out.shape[1] / 1000))  # text size follows the frame size
    if score_bars:  # first, so that boxes and labels stay on top
        for face in faces:
            draw_score_bars(out, face, scale, [other.box for other in faces if other is not face])
    for face in faces:
        draw_box(out, face, scale)
    return out


def draw_box(out: np.ndarray, face, scale: float) -> None:
    x, y, w, h = face.box
    colour = EMOTION_COLOURS[face.emotion]
    thickness = max(1, round(2 * scale))
    cv2.rectangle(out, (x, y), (x + w, y + h), colour, thickness)
    label = f"{face.emotion} {face.confidence:.0%}"
    if face.face_id is not None:
        label = f"#{face.face_id} {label}"
    (tw, th), base = cv2.getTextSize(label, FONT, 0.6 * scale, thickness)
    top = y - th - base - 4 if y - th - base - 4 >= 0 else y + h
    cv2.rectangle(out, (x, top), (x + tw + 4, top + th + base + 4), colour, -1)
    cv2.putText(out, label, (x + 2, top + th + 2), FONT, 0.6 * scale, (0, 0, 0), thickness, cv2.LINE_AA)


def score_panel(face, scale: float, frame_width: int) -> tuple[int, int, int, int, int]:
    """(left, top, width, height, bar height) of the score panel: right of the box, or left when the frame ends."""
    x, y, w, h = face.box
    bar_height = max(6, round(12 * scale))
    width = max(60, round(110 * scale)) + round(62 * scale)
    left = x + w + 6 if x + w + 6 + width <= frame_width else x - width - 6
    return left, y, width, bar_height * len(CLASS_NAMES), bar_height


def overlaps(a, b) -> bool:
    return a[0] < b[0] + b[2] and b[0] < a[0] + a[2] and a[1] < b[1] + b[3] and b[1] < a[1] + a[3]


def draw_score_bars(out: np.ndarray, face, scale: float, other_boxes=()) -> None:
    """Seven labelled bars on a dark panel beside the box; skipped for faces smaller than
    MIN_BARS_FACE (a crowd's panels would cover the picture) and where they would leave the frame
    or cover another face (the label alone is drawn then)."""
    left, top, width, height, bar_height = score_panel(face, scale, out.shape[1])
    panel = (left, top, width, height)
    if min(face.box[2:]) < MIN_BARS_FACE or left < 0 or top + height > out.shape[0] or any(overlaps(panel, box) for box in other_boxes):
        return
    cv2.rectangle(out, (left, top), (left + width, top + height), (30, 30, 30), -1)
    text_width = round(62 * scale)
    for i, (name, score) in enumerate(zip(CLASS_NAMES, face.scores)):
        row = top + i * bar_height
        cv2.putText(out, name[:8], (left + 2, row + bar_height - 2), FONT, 0.35 * scale + 0.05, (255, 255, 255), 1,
                    cv2.LINE_AA)
        bar_left, bar_width = left + text_width, width - text_width - 2
        cv2.rectangle(out, (bar_left, row + 1), (bar_left + bar_width, row + bar_height - 1), (70, 70, 70), -1)
        cv2.rectangle(out, (bar_left, row + 1), (bar_left + round(bar_width * float(score)), row + bar_height - 1),
                      EMOTION_COLOURS[name], -1)


def encode_jpeg(frame: np.ndarray, quality: int = 80) -> bytes:
    """`frame` (BGR) as JPEG bytes: how annotated frames leave the process (MJPEG, data URLs)."""
    ok, data = cv2.imencode(".jpg", frame, [cv2.IMWRITE_JPEG_QUALITY, int(quality)])
    if not ok:
        raise RuntimeError("JPEG encoding failed")
    return data.tobytes()
