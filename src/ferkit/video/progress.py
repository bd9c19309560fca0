"""The terminal progress bar of `ferkit video`: tqdm, fed by process_video's progress_callback."""

from __future__ import annotations

from typing import TextIO

from tqdm import tqdm


class ProgressBar:
    """Callable as process_video's progress_callback(frames_done, frames_total); total 0 = unknown."""

    def __init__(self, stream: TextIO, **options):
        # tqdm redraws at most every mininterval seconds (0.1 s by default), not every frame
        self.bar = tqdm(file=stream, unit="frame", dynamic_ncols=True, **options)

    def __call__(self, done: int, total: int) -> None:
        # frame counts are estimates: a video longer than its count raises the total, never past 100%
        total = max(total, done) if total > 0 else None
        self.bar.total = total
        self.bar.update(done - self.bar.n)

    def finish(self) -> None:
        self.bar.close()
