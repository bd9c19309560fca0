"""What every request shares, made once per process by create_app and kept in app.extensions."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from flask import current_app

if TYPE_CHECKING:
    from ..config import Config
    from ..inference.pipeline import Pipeline
    from .auth import TokenAuth
    from .engines.broadcast import FrameBroadcaster
    from .engines.jobs import JobManager
    from .engines.limits import Slots
    from .engines.sessions import CameraSessions

EXTENSION = "ferkit"


@dataclass
class Services:
    config: Config
    pipeline: Pipeline
    broadcaster: FrameBroadcaster
    jobs: JobManager
    cameras: CameraSessions
    inference: Slots  # images analysed at once, over /api/predict, /api/annotate and /api/frame
    auth: TokenAuth

    def close(self) -> None:
        """Stop the background threads and delete the jobs' files."""
        self.broadcaster.close()
        self.jobs.close()


def services() -> Services:
    """The current app's shared services."""
    return current_app.extensions[EXTENSION]
