"""Output folders of the commands that write several files there (evaluate, explore, ensemble, calibrate).

Checked before the work, so that an unusable --out is one error line at once, not a traceback after
scoring a whole split; nothing is created by the check, so a bad --data leaves no empty folder behind.
"""

from __future__ import annotations

import os
from pathlib import Path

from ..errors import MediaError


def check_output_folder(folder: str | Path, files: tuple[str, ...] = ()) -> Path:
    """`folder` as a Path, or MediaError when it cannot hold `files`: a file where it or a folder above
    it should be, no write permission, or a folder where one of `files` should go."""
    folder = Path(folder)
    try:
        existing = folder
        while not existing.exists() and existing != existing.parent:
            existing = existing.parent
        if existing == folder and not folder.is_dir():
            raise MediaError(f"{folder}: is a file, not a folder")
        if not existing.is_dir():
            raise MediaError(f"{folder}: cannot be created ({existing} is a file, not a folder)")
        # os.access also says no on a read-only file system; creating or replacing a file needs w and x
        if not os.access(existing, os.W_OK | os.X_OK):
            raise MediaError(f"{folder}: folder is not writable" if existing == folder else
                             f"{folder}: cannot be created ({existing} is not writable)")
        for name in files:
            if (folder / name).is_dir():
                raise MediaError(f"{folder / name}: is a folder, not a file name")
    except OSError as exc:  # e.g. a name too long for the file system
        raise MediaError(f"{folder}: cannot be written ({exc.strerror or exc})") from None
    return folder
