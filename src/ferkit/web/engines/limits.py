"""Bounded in-flight work: a request that finds no free slot is refused at once (429 with
Retry-After) instead of queueing, so a client that sends faster than the server answers costs
no memory and no threads."""

from __future__ import annotations

import threading
from contextlib import contextmanager
from typing import Iterator


class Busy(Exception):
    """The server refuses this request for now; `status` 429 (too many requests) or 503 (a
    server-side limit), `retry_after` seconds until a retry may succeed."""

    def __init__(self, message: str, status: int = 429, retry_after: int = 1):
        super().__init__(message)
        self.status, self.retry_after = status, retry_after


class Slots:
    def __init__(self, capacity: int, what: str):
        self.capacity, self.what = max(1, capacity), what
        self._free = threading.Semaphore(self.capacity)
        self._lock = threading.Lock()
        self.in_use = 0
        self.refused = 0

    @contextmanager
    def take(self, wait_s: float = 0.0) -> Iterator[None]:
        """Hold one slot for the block; Busy if none frees up within `wait_s` seconds."""
        acquired = self._free.acquire(timeout=wait_s) if wait_s > 0 else self._free.acquire(blocking=False)
        if not acquired:
            with self._lock:
                self.refused += 1
            what = self.what + "s" * (self.capacity != 1)  # `what` is one of them: "image"
            raise Busy(f"the server is busy: {self.capacity} {what} already in progress; retry shortly")
        with self._lock:
            self.in_use += 1
        try:
            yield
        finally:
            with self._lock:
                self.in_use -= 1
            self._free.release()
