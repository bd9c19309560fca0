"""A one-line progress bar for long videos, redrawn in place on the terminal."""

from __future__ import annotations

import time
from typing import TextIO


class ProgressBar:
    """Callable as process_video's progress_callback(frames_done, frames_total); total 0 = unknown."""

    def __init__(self, stream: TextIO, width: int = 30, min_interval_s: float = 0.1):
        self.stream, self.width, self.min_interval_s = stream, width, min_interval_s
        self.started = time.perf_counter()
        self.last_drawn = 0.0

    def __call__(self, done: int, total: int) -> None:
        now = time.perf_counter()
        if now - self.last_drawn < self.min_interval_s and done != total:
            return  # redrawing every frame would cost more than the frame
        self.last_drawn = now
        self.stream.write("\r" + self.line(done, total, done / max(now - self.started, 1e-9)))
        self.stream.flush()

    def line(self, done: int, total: int, fps: float) -> str:
        if total <= 0:
            return f"{done} frames, {fps:.0f} fps"
        share = min(1.0, done / total)  # frame counts are estimates: never show more than 100%
        filled = round(share * self.width)
        return f"[{'#' * filled}{'-' * (self.width - filled)}] {share:4.0%} {done}/{total} frames, {fps:.0f} fps"

    def finish(self) -> None:
        self.stream.write("\n")
        self.stream.flush()
