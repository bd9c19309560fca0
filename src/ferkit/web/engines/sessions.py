"""Browser-camera sessions: one FaceStream (tracker + smoother) per browser tab, bounded and expiring.

A tab picks a random id and sends it with every frame, so face ids and score smoothing follow
that tab's video only. Old tabs are forgotten after a while, and the oldest go first when full.
A FaceStream takes one frame at a time: a frame that arrives while its tab's previous one is
still being processed is dropped (Busy), never queued.
"""

from __future__ import annotations

import re
import threading
import time
from collections import OrderedDict

import numpy as np

from ...inference.pipeline import Face, FaceStream, Pipeline
from .limits import Busy

SESSION_ID = re.compile(r"[A-Za-z0-9_-]{8,64}")


class CameraSession:
    def __init__(self, stream: FaceStream, now: float):
        self.stream, self.last_used = stream, now
        self.lock = threading.Lock()  # a FaceStream's tracker state is not thread-safe
        self.dropped = 0


class CameraSessions:
    def __init__(self, pipeline: Pipeline, max_sessions: int, ttl_s: float, clock=time.monotonic):
        self.pipeline, self.max_sessions, self.ttl_s, self.clock = pipeline, max(1, max_sessions), ttl_s, clock
        self._sessions: OrderedDict[str, CameraSession] = OrderedDict()  # least recently used first
        self._lock = threading.Lock()

    def __len__(self) -> int:
        return len(self._sessions)

    def __contains__(self, session_id: str) -> bool:
        return session_id in self._sessions

    def process(self, session_id: str, frame: np.ndarray, pipeline: Pipeline | None = None) -> list[Face]:
        """The faces of one frame of this tab's video (ids and smoothing carried from its last
        frames); Busy when the tab's previous frame is still in progress (this one is dropped).
        `pipeline`: this frame's (the shared one with the tab's own uniform prior); the tab's tracks go on."""
        session = self._session(session_id)
        if not session.lock.acquire(blocking=False):
            session.dropped += 1
            raise Busy("frame dropped: this tab's previous frame is still being processed")
        try:
            # the same classifier and detector either way: faces keep their ids, and their smoothed scores
            # move to the other prior over the next frames
            session.stream.pipeline = pipeline or self.pipeline
            return session.stream.process(frame)
        finally:
            session.lock.release()

    def _session(self, session_id: str) -> CameraSession:
        now = self.clock()
        with self._lock:
            self._forget_expired(now)
            session = self._sessions.pop(session_id, None) or CameraSession(self.pipeline.stream(), now)
            session.last_used = now
            self._sessions[session_id] = session
            while len(self._sessions) > self.max_sessions:
                self._sessions.popitem(last=False)
            return session

    def _forget_expired(self, now: float) -> None:
        while self._sessions:
            oldest_id, oldest = next(iter(self._sessions.items()))
            if now - oldest.last_used <= self.ttl_s:
                break
            del self._sessions[oldest_id]
