"""What a batch run works on: files, folders (recursively), glob patterns and list files
(one path or URL per line), expanded into a sorted, de-duplicated list of `Item`s."""

from __future__ import annotations

import glob
import hashlib
import os
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlparse

from ..files import VIDEO_SUFFIXES, is_utf8_name, printable

PHOTO_SUFFIXES = frozenset({".jpg", ".jpeg", ".png", ".bmp", ".webp", ".tif", ".tiff", ".jp2", ".pgm", ".ppm"})
LIST_SUFFIXES = frozenset({".txt", ".lst", ".list"})
URL_SCHEMES = frozenset({"http", "https", "ftp", "file"})


@dataclass(frozen=True)
class Item:
    """One input: `source` (absolute path or URL, its identity in every output), `kind` (video |
    photo | unknown) and `key`, the stable name of its outputs (videos/KEY.csv, ...)."""

    source: str
    kind: str  # also "missing", or "bad-name" (not valid UTF-8: its source is the printable form)
    key: str
    # the key before de-clashing (the file's stem or its path below the folder given); not part of the identity
    name: str = field(default="", compare=False)


# A key's longest output name is KEY_timeline.png: the key's last part must leave room for it in a file name
NAME_ROOM = 255 - len("_timeline.png")
HASH_ROOM = 9  # "-" and 8 hex digits


def shortened(name: str, room: int) -> str:
    """`name` with its last part cut to `room` bytes of UTF-8 (never inside a character)."""
    head, _, last = name.rpartition("/")
    last = last.encode()[:room].decode(errors="ignore")
    return f"{head}/{last}" if head else last


def hashed_key(name: str, source: str) -> str:
    """The key of an input whose name another input has (clip.mp4 in two folders): a short hash of its source."""
    return f"{shortened(name, NAME_ROOM - HASH_ROOM)}-{hashlib.sha1(source.encode()).hexdigest()[:8]}"


def plain_key(name: str, source: str) -> str:
    """`name` itself, unless its last part is too long for a file name with the outputs' suffixes: then hashed."""
    return name if len(name.rpartition("/")[2].encode()) <= NAME_ROOM else hashed_key(name, source)


def absolute(path) -> str:
    """An absolute path with `..` and `.` resolved by name, not by links: one file given two ways is one input."""
    return os.path.abspath(os.path.expanduser(str(path)))


def hidden(path: Path, below: Path) -> bool:
    """Whether a file or any folder between `below` and it is hidden (.ipynb_checkpoints, .thumbnails, .git)."""
    return any(part.startswith(".") for part in path.relative_to(below).parts)


def is_url(text: str) -> bool:
    return urlparse(text).scheme in URL_SCHEMES


def media_kind(name: str) -> str:
    suffix = Path(urlparse(name).path if is_url(name) else name).suffix.lower()
    return "video" if suffix in VIDEO_SUFFIXES else "photo" if suffix in PHOTO_SUFFIXES else "unknown"


def expand_inputs(specs) -> list[Item]:
    """Items for every spec, sorted by source (absolute path or URL), duplicates dropped.

    A path that does not exist or a glob without matches becomes an item of kind "missing", so
    it is reported as a failed row rather than stopping the run; an empty folder gives nothing.
    """
    found: dict[str, tuple[str, str]] = {}  # source -> (kind, key before de-clashing)
    for spec in [specs] if isinstance(specs, (str, Path)) else specs:
        for source, kind, name in expand_one(str(spec)):
            if not is_utf8_name(source):  # OpenCV crashes on such a name and the summary cannot hold it
                kind = "missing" if kind == "missing" else "bad-name"
                source, name = printable(source), printable(name)
            found.setdefault(source, (kind, name))
    return unique_keys(found)


def outside(items: list[Item], folders) -> list[Item]:
    """The items not inside any of `folders` (links resolved): a run's own outputs, in an output
    folder that is also an input folder, are never its inputs, and never overwrite one."""
    folders = [folder for folder in map(resolved, folders) if folder]

    def inside(source: str) -> bool:
        path = resolved(source)
        return path is not None and any(path.is_relative_to(folder) for folder in folders)

    return [item for item in items if is_url(item.source) or not inside(item.source)]


def resolved(path) -> Path | None:
    try:
        return Path(path).resolve()
    except (OSError, RuntimeError):  # a link loop: reported (a failed row, a folder error) elsewhere
        return None


def expand_one(spec: str, lists: frozenset[Path] = frozenset()):
    """(source, kind, output name) triples for one spec; `lists`: the list files it was found
    through, which it may not name again (a cycle)."""
    if is_url(spec):
        yield spec, media_kind(spec), Path(urlparse(spec).path).stem or "url"
        return
    path = Path(spec).expanduser()
    if path.is_dir():
        for file in sorted(p for p in path.rglob("*") if p.is_file() and not hidden(p, path)):
            kind = media_kind(file.name)
            if kind != "unknown":  # a folder's other files (notes, .DS_Store) are not inputs
                yield absolute(file), kind, str(file.relative_to(path).with_suffix(""))
    elif path.is_file() and path.suffix.lower() in LIST_SUFFIXES:
        yield from expand_list(path, lists)
    elif path.is_file():
        yield absolute(path), media_kind(path.name), path.stem
    elif glob.has_magic(spec):
        matches = sorted(glob.glob(str(path), recursive=True))
        if not matches:
            yield absolute(path), "missing", path.stem
        for match in map(Path, matches):
            if match.is_file() and match.suffix.lower() in LIST_SUFFIXES:
                yield from expand_list(match, lists)  # as if named: a list's entries are the inputs
            elif match.is_file() and media_kind(match.name) != "unknown":  # other files, as in a folder
                yield absolute(match), media_kind(match.name), match.stem
    else:
        yield absolute(path), "missing", path.stem


def expand_list(path: Path, lists: frozenset[Path] = frozenset()):
    """A list file: one path, folder, glob or URL per line; blank lines and # comments skipped;
    relative paths are relative to the list file's folder. A list naming itself, or one it was
    reached through (a.txt names b.txt, which names a.txt), is skipped: its entries are in already."""
    lists = lists | {path.resolve()}
    # bytes that are not UTF-8 kept as the file system keeps them, so that such a name is found (and refused
    # as "bad-name") rather than turned into U+FFFD and reported missing; a BOM (Notepad) dropped
    for line in path.read_text(encoding="utf-8-sig", errors="surrogateescape").splitlines():
        line = line.strip()
        if line and not line.startswith("#"):
            entry = line if is_url(line) or Path(line).is_absolute() else str(path.parent / line)
            if Path(entry).suffix.lower() in LIST_SUFFIXES and Path(entry).resolve() in lists:
                continue
            yield from expand_one(entry, lists)


def unique_keys(found: dict[str, tuple[str, str]]) -> list[Item]:
    """Items sorted by source; video names shared by two inputs (clip.mp4 in two folders) get a short hash of the
    source, so each video's outputs have their own, stable name. Only videos have outputs named by their key, so a
    photo or a missing path never changes a video's key."""
    counts: dict[str, int] = {}
    for kind, name in found.values():
        if kind == "video":
            counts[name] = counts.get(name, 0) + 1
    items = []
    for source in sorted(found):
        kind, name = found[source]
        key = hashed_key(name, source) if counts.get(name, 0) > 1 else plain_key(name, source)
        items.append(Item(source, kind, key, name))
    return items
