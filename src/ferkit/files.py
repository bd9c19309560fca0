"""Input checks and all-or-nothing output files, shared by the image, video and web front ends."""

from __future__ import annotations

import os
import stat
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


def is_utf8_name(path: str | Path) -> bool:
    """Whether `path` is valid UTF-8. Python holds other bytes as lone surrogates, which OpenCV's
    name-taking calls crash on (segfault) and text columns (Parquet, CSV) refuse."""
    try:
        str(path).encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def printable(path: str | Path) -> str:
    """`path` as text any output takes: bytes that are not UTF-8 shown as \\xNN, the rest as it is."""
    return os.fsencode(path).decode("utf-8", "backslashreplace")


def printable_json(value):
    """`value` (dicts, lists, strings, numbers) with every string, keys too, in printable() form: json.dumps
    would write a non-UTF-8 name's lone surrogates as \\udcNN escapes, which strict JSON parsers refuse."""
    if isinstance(value, str):
        return printable(value)
    if isinstance(value, dict):
        return {printable_json(k): printable_json(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [printable_json(v) for v in value]
    return value


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


def is_special_file(path: str | Path) -> bool:
    """Whether `path` exists and, links followed, is not a regular file or folder: a device, a FIFO or
    a socket. Such a target is written to as it is (never replaced) and gets no outputs beside it."""
    try:
        mode = os.stat(path).st_mode
    except (OSError, ValueError):  # missing, a dangling link, a name the OS refuses: not one
        return False
    return not (stat.S_ISREG(mode) or stat.S_ISDIR(mode))


# Commands that write several files into one folder (evaluate, explore, ensemble, calibrate) check it before
# their work: an unusable --out is one error line at once, not a traceback after scoring a whole split; the
# check creates nothing, so a bad --data leaves no empty folder behind.
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


@contextmanager
def atomic_output(target: str | Path):
    """Yield a partial path to write; it becomes `target` on success and is removed on any failure,
    so an output file is either complete or absent, never truncated.

    A symbolic link stays: the file it points to is replaced. A device, FIFO or socket (`--csv
    /dev/null`) is written to directly, since replacing it would destroy it (as root, /dev/null).
    """
    target = prepare_parent(target)
    real = Path(os.path.realpath(target)) if target.is_symlink() else target
    if is_special_file(real):
        try:
            yield real
        except OSError as exc:  # nothing to remove: the file was there before and is not ours
            raise MediaError(f"{target}: cannot be written ({exc.strerror or exc})") from None
        return
    partial = partial_path(real)
    try:
        yield partial
        os.replace(partial, real)
    except OSError as exc:
        remove_quietly(partial)
        raise MediaError(f"{target}: cannot be written ({exc.strerror or exc})") from None
    except BaseException:
        remove_quietly(partial)
        raise
