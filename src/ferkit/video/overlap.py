"""Decoding and encoding beside the frame loop.

OpenCV's decoder and encoder release the GIL, so on a two-core machine reading the next frames and
drawing and encoding the last ones can run while the pipeline works on the current one, instead of
between its frames: at 1080p decoding and encoding cost more CPU than detection and classification.
Both stages keep the frames' order and a fixed number of frames in flight (a 1080p frame is 6 MB).
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from typing import TypeVar

T = TypeVar("T")
IN_FLIGHT = 4  # frames read ahead, and frames waiting to be written
_END = object()


class _OneThread:
    """One worker thread and the futures it owes; `close()` waits for the call in progress and
    drops the calls not started."""

    def __init__(self, name: str):
        self.pool = ThreadPoolExecutor(1, thread_name_prefix=name)
        self.pending: deque[Future] = deque()

    def close(self) -> None:
        self.pending.clear()
        self.pool.shutdown(wait=True, cancel_futures=True)

    def __enter__(self):
        return self

    def __exit__(self, *exc) -> None:
        self.close()


class ReadAhead(_OneThread):
    """Iterates `items` with each `next()` run in one background thread, up to `depth` items ahead.

    An exception the iterator raises reaches the consumer at the item where it happened. `close()`
    (or leaving the `with` block) waits for the read in progress, so the source can be released
    after it without a thread still decoding from it.
    """

    def __init__(self, items: Iterator[T], depth: int = IN_FLIGHT):
        super().__init__("ferkit-read")
        self.items = items
        self.pending.extend(self.pool.submit(next, items, _END) for _ in range(max(1, depth)))

    def __iter__(self) -> Iterator[T]:
        while self.pending:
            item = self.pending.popleft().result()
            if item is _END:
                self.close()
                return
            self.pending.append(self.pool.submit(next, self.items, _END))
            yield item


class WriteBehind(_OneThread):
    """Runs `write(*args)` calls in order in one background thread, at most `depth` calls behind.

    `add` returns at once unless `depth` calls are waiting; a call that failed raises its exception
    from a later `add` or from `finish`, which waits for them all, and the calls after it do nothing
    (no frame is written past a failed one). `close()` drops calls not started.
    """

    def __init__(self, write: Callable[..., None], depth: int = IN_FLIGHT):
        super().__init__("ferkit-write")
        self.write, self.depth = write, max(1, depth)
        self.failed = False

    def _write(self, *args) -> None:
        if self.failed:
            return
        try:
            self.write(*args)
        except BaseException:
            self.failed = True
            raise

    def add(self, *args) -> None:
        self.pending.append(self.pool.submit(self._write, *args))
        while len(self.pending) > self.depth or (self.pending and self.pending[0].done()):
            self.pending.popleft().result()

    def finish(self) -> None:
        while self.pending:
            self.pending.popleft().result()
