"""Input checks and all-or-nothing output files, shared by the image, video and web front ends."""

from __future__ import annotations

import os
import uuid
from contextlib import contextmanager
from pathlib import Path

from .errors import MediaError

# Video containers every front end accepts by name (the web upload, batch inputs); FFmpeg probes
# the content, so the list only decides what is tried as a video.
VIDEO_SUFFIXES = frozenset({".mp4", ".m4v", ".mov", ".avi", ".mkv", ".webm", ".mpg", ".mpeg", ".wmv", ".flv",
                            ".3gp", ".ts", ".mts"})


def require_file(path: str | Path) -> Path:
    """`path` as a Path, or MediaError when it is missing or not a regular file."""
    path = Path(path)
    if not path.exists():
        raise MediaError(f"{path}: no such file")
    if not path.is_file():
        raise MediaError(f"{path}: not a file")
    return path


NAME_MAX = 255  # bytes in one file name (Linux, macOS, Windows)


def partial_path(target: Path) -> Path:
    """A hidden, unique name beside `target` with the same extension (writers pick formats by it);
    the stem is shortened where needed, so that any name the target may have, the partial may too."""
    tail = f".{uuid.uuid4().hex[:8]}.partial{target.suffix}"
    room = max(1, NAME_MAX - 1 - len(os.fsencode(tail)))
    stem = os.fsencode(target.stem)[:room].decode(errors="ignore") if target.stem else "_"
    return target.with_name(f".{stem}{tail}")


def remove_quietly(path: Path) -> None:
    try:
        path.unlink(missing_ok=True)
    except OSError:  # cleaning up must not hide the error that made it necessary
        pass


def prepare_parent(target: str | Path) -> Path:
    """`target` as a Path whose folder exists; MediaError when the folder cannot be created."""
    target = Path(target)
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise MediaError(f"{target}: cannot create its folder ({exc.strerror})") from None
    try:
        is_dir = target.is_dir()
    except OSError as exc:  # e.g. a name too long for the file system
        raise MediaError(f"{target}: cannot be written ({exc.strerror})") from None
    if is_dir:
        raise MediaError(f"{target}: is a folder, not a file name")
    return target


@contextmanager
def atomic_output(target: str | Path):
    """Yield a partial path to write; it becomes `target` on success and is removed on any failure,
    so an output file is either complete or absent, never truncated."""
    target = prepare_parent(target)
    partial = partial_path(target)
    try:
        yield partial
        os.replace(partial, target)
    except OSError as exc:
        remove_quietly(partial)
        raise MediaError(f"{target}: cannot be written ({exc.strerror or exc})") from None
    except BaseException:
        remove_quietly(partial)
        raise
