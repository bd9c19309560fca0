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


def draw_faces(frame: np.ndarray, faces, score_bars: bool = True) -> np.ndarray:
    """A copy of `frame` (BGR) with each face's box, label and, room permitting, its 7 score bars."""
    out = frame.copy() if frame.ndim == 3 else cv2.cvtColor(frame, cv2.COLOR_GRAY2BGR)
    scale = max(0.4, min(1.0, out.shape[1] / 1000))  # text size follows the frame size
    for face in faces:
        x, y, w, h = face.box
        colour = EMOTION_COLOURS[face.emotion]
        thickness = max(1, round(2 * scale))
        cv2.rectangle(out, (x, y), (x + w, y + h), colour, thickness)
        label = f"{face.emotion} {face.confidence:.0%}"
        if face.track_id is not None:
            label = f"#{face.track_id} {label}"
        (tw, th), base = cv2.getTextSize(label, FONT, 0.6 * scale, thickness)
        top = y - th - base - 4 if y - th - base - 4 >= 0 else y + h
        cv2.rectangle(out, (x, top), (x + tw + 4, top + th + base + 4), colour, -1)
        cv2.putText(out, label, (x + 2, top + th + 2), FONT, 0.6 * scale, (0, 0, 0), thickness, cv2.LINE_AA)
        if score_bars:
            draw_score_bars(out, face, scale)
    return out


def draw_score_bars(out: np.ndarray, face, scale: float) -> None:
    """Seven horizontal bars beside the box (right side, or left when the frame ends)."""
    x, y, w, h = face.box
    bar_height = max(6, round(12 * scale))
    width = max(60, round(110 * scale))
    text_width = round(62 * scale)
    left = x + w + 6 if x + w + 6 + width + text_width <= out.shape[1] else x - width - text_width - 6
    if left < 0 or y + bar_height * len(CLASS_NAMES) > out.shape[0]:
        return  # no room: the label alone is drawn
    for i, (name, score) in enumerate(zip(CLASS_NAMES, face.scores)):
        top = y + i * bar_height
        cv2.putText(out, name[:8], (left, top + bar_height - 2), FONT, 0.35 * scale + 0.05, (255, 255, 255), 1,
                    cv2.LINE_AA)
        bar_left = left + text_width
        cv2.rectangle(out, (bar_left, top + 1), (bar_left + width, top + bar_height - 1), (60, 60, 60), -1)
        cv2.rectangle(out, (bar_left, top + 1), (bar_left + round(width * float(score)), top + bar_height - 1),
                      EMOTION_COLOURS[name], -1)
