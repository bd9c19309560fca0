"""What every request shares, loaded once per process by create_app and kept in app.extensions."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from flask import current_app

if TYPE_CHECKING:
    from ..config import Config
    from ..inference.pipeline import Pipeline
    from .jobs import JobManager
    from .sessions import CameraSessions
    from .stream import FrameBroadcaster

EXTENSION = "ferkit"


@dataclass
class Services:
    config: Config
    pipeline: Pipeline
    broadcaster: FrameBroadcaster
    jobs: JobManager
    cameras: CameraSessions

    def close(self) -> None:
        """Stop the background threads and delete the jobs' files."""
        self.broadcaster.close()
        self.jobs.close()


def services() -> Services:
    """The current app's shared services."""
    return current_app.extensions[EXTENSION]
