"""All-or-nothing output files (ferkit.files): partial names, clean-up, errors."""

from __future__ import annotations

import errno
import json
import os
import stat
from pathlib import Path

import pytest
from conftest import write_video

from ferkit import files
from ferkit.errors import MediaError
from ferkit.files import NAME_MAX, atomic_output, is_special_file, partial_path
from ferkit.video.process import default_timeline


@pytest.mark.parametrize("stem_length", [1, 200, 236, 237, 251])
def test_the_partial_of_any_valid_name_is_a_valid_name(tmp_path, stem_length):
    # ".csv" + a stem of up to 251 bytes is a valid name (255 bytes); its partial adds a dot and
    # ".<8 hex>.partial": the stem is cut so that the partial is at most 255 bytes too, and kept whole
    # while it fits (237 + 1 + 17 + 4 = 259 > 255: cut to 233; 236 + 22 = 258: cut too; 200: whole)
    target = tmp_path / ("s" * stem_length + ".csv")
    partial = partial_path(target)
    assert len(os.fsencode(partial.name)) <= NAME_MAX and partial.parent == tmp_path
    assert partial.name.startswith(".s") and partial.name.endswith(".partial.csv")
    kept = len(partial.name) - len(".") - len(".12345678.partial.csv")
    assert kept == min(stem_length, NAME_MAX - 22)
    with atomic_output(target) as path:
        path.write_text("a,b\n")
    assert target.read_text() == "a,b\n" and [p.name for p in tmp_path.iterdir()] == [target.name]


def test_a_multibyte_stem_is_cut_between_characters(tmp_path):
    target = tmp_path / ("é" * 125 + ".csv")  # 250 bytes of stem: a valid name
    partial = partial_path(target)
    assert len(os.fsencode(partial.name)) <= NAME_MAX
    assert set(partial.name[1:partial.name.index(".", 1)]) == {"é"}  # no half character left


def test_a_failed_clean_up_does_not_hide_the_error(tmp_path, monkeypatch):
    # writing fails (ENOSPC), then removing the partial fails too (ENAMETOOLONG, EACCES...): the user
    # sees the first error, as a one-line MediaError, not the clean-up's OSError
    def unlink(self, missing_ok=False):
        raise OSError(errno.EACCES, "Permission denied")

    monkeypatch.setattr(Path, "unlink", unlink)
    target = tmp_path / "faces.csv"
    with pytest.raises(MediaError) as error:
        with atomic_output(target):
            raise OSError(errno.ENOSPC, "No space left on device")
    assert str(error.value) == f"{target}: cannot be written (No space left on device)"
    with pytest.raises(ZeroDivisionError):  # any other failure passes through as it is
        with atomic_output(target):
            raise ZeroDivisionError


def test_ferkit_video_with_a_long_output_name_writes_it(ferkit, tiny_model_dir, tmp_path):
    video = write_video(tmp_path / "in.avi", 6)
    csv = tmp_path / ("f" * 245 + ".csv")  # 249 bytes: valid; its partial was 267 bytes before the fix
    code, out, err = ferkit("video", video, "--csv", csv, "--timeline", tmp_path / "t.png", "--model", tiny_model_dir)
    assert (code, err) == (0, "") and csv.read_text().startswith("frame,time_s,face_id,")
    # the default timeline beside it would be NAME_timeline.png, 258 bytes: too long for any file system,
    # which is one line and exit 2, naming the file, never a traceback
    code, out, err = ferkit("video", video, "--csv", csv, "--model", tiny_model_dir)
    assert code == 2 and err.count("\n") == 1 and "_timeline.png: cannot be written (File name too long)" in err


def test_a_disk_full_csv_is_named_as_the_failed_output(pipeline, tmp_path, monkeypatch):
    # the CSV's write fails (ENOSPC) while a timeline is also being made: the error names the CSV,
    # not the timeline whose clean-up it passes through, and no output is left
    import csv as csv_module

    from ferkit.video.process import process_video

    class FullDisk:
        def __init__(self, file):
            self.rows = 0

        def writerow(self, row):
            self.rows += 1
            if self.rows > 3:
                raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(csv_module, "writer", FullDisk)
    video = write_video(tmp_path / "in.avi", 12)
    with pytest.raises(MediaError) as error:
        process_video(pipeline, video, csv_path=tmp_path / "faces.csv", timeline_png=tmp_path / "t.png")
    assert str(error.value) == f"{tmp_path / 'faces.csv'}: cannot be written (No space left on device)"
    assert [p.name for p in tmp_path.iterdir()] == ["in.avi"]


# --- targets that are not regular files --------------------------------------------------------
# Never a real device here, even with a bug planted: replacing /dev/null would break the machine.
# FIFOs and links in tmp_path show the behaviour; the device case is mocked.

def fifo_with_reader(path: Path) -> int:
    """A FIFO at `path` and a non-blocking read end on it: a writer opens it without waiting, and a
    read never hangs (b"" when nothing was written)."""
    os.mkfifo(path)
    return os.open(path, os.O_RDONLY | os.O_NONBLOCK)


def read_all(fd: int) -> bytes:
    try:
        return os.read(fd, 1 << 16)
    except BlockingIOError:  # a writer is still open and wrote nothing
        return b""
    finally:
        os.close(fd)


def test_a_symlinked_output_stays_a_link_and_its_file_gets_the_content(tmp_path):
    (tmp_path / "real").mkdir()
    target = tmp_path / "real" / "faces.csv"
    target.write_text("old\n")
    link = tmp_path / "link.csv"
    link.symlink_to(target)
    with atomic_output(link) as path:
        path.write_text("a,b\n")
    assert link.is_symlink() and os.readlink(link) == str(target)
    assert target.read_text() == "a,b\n"
    assert sorted(p.name for p in tmp_path.rglob("*")) == ["faces.csv", "link.csv", "real"], "no partial left"
    dangling = tmp_path / "new.csv"  # a link to a file not made yet: the file is made
    dangling.symlink_to(tmp_path / "real" / "later.csv")
    with atomic_output(dangling) as path:
        path.write_text("c\n")
    assert dangling.is_symlink() and (tmp_path / "real" / "later.csv").read_text() == "c\n"


def test_a_fifo_output_is_written_to_not_replaced(tmp_path):
    fifo = tmp_path / "faces.csv"
    reader = fifo_with_reader(fifo)
    with atomic_output(fifo) as path:
        path.write_text("a,b\n")
    assert read_all(reader) == b"a,b\n"
    assert stat.S_ISFIFO(fifo.lstat().st_mode) and [p.name for p in tmp_path.iterdir()] == ["faces.csv"]
    link = tmp_path / "link.csv"  # a link to a FIFO: written through both
    link.symlink_to(fifo)
    reader = os.open(fifo, os.O_RDONLY | os.O_NONBLOCK)
    with atomic_output(link) as path:
        path.write_text("c\n")
    assert read_all(reader) == b"c\n" and link.is_symlink() and stat.S_ISFIFO(fifo.lstat().st_mode)


def test_a_failed_write_to_a_fifo_leaves_it_in_place(tmp_path):
    fifo = tmp_path / "faces.csv"
    os.mkfifo(fifo)
    with pytest.raises(MediaError) as error:
        with atomic_output(fifo):
            raise OSError(errno.EPIPE, "Broken pipe")
    assert str(error.value) == f"{fifo}: cannot be written (Broken pipe)"
    assert stat.S_ISFIFO(fifo.lstat().st_mode), "the FIFO was not ours to remove"


def test_a_device_output_is_written_in_place_and_its_errors_are_one_line(tmp_path, monkeypatch):
    # a regular file that is_special_file calls a device: what `--csv /dev/null` and `/dev/full` get
    device = tmp_path / "full"
    device.write_text("")
    inode = device.stat().st_ino
    monkeypatch.setattr(files, "is_special_file", lambda path: Path(path) == device)
    with atomic_output(device) as path:
        assert path == device
        path.write_text("a,b\n")
    assert device.stat().st_ino == inode and device.read_text() == "a,b\n", "written in place, not replaced"
    with pytest.raises(MediaError) as error:
        with atomic_output(device):
            raise OSError(errno.ENOSPC, "No space left on device")  # what /dev/full answers
    assert str(error.value) == f"{device}: cannot be written (No space left on device)"
    assert device.stat().st_ino == inode, "a device is never removed"
    assert [p.name for p in tmp_path.iterdir()] == ["full"]


def test_is_special_file(tmp_path):
    os.mkfifo(tmp_path / "fifo")
    (tmp_path / "file").write_text("x")
    (tmp_path / "to-fifo").symlink_to(tmp_path / "fifo")
    (tmp_path / "dangling").symlink_to(tmp_path / "missing")
    assert is_special_file(os.devnull)  # only stat()ed
    assert is_special_file(tmp_path / "fifo") and is_special_file(tmp_path / "to-fifo")
    for name in ("file", "dangling", "missing", "."):
        assert not is_special_file(tmp_path / name), name


def test_no_timeline_is_derived_beside_a_device_or_fifo(tmp_path):
    os.mkfifo(tmp_path / "fifo.csv")
    assert default_timeline(None, str(tmp_path / "fifo.csv")) is None
    assert default_timeline(str(tmp_path / "v.mp4"), str(tmp_path / "fifo.csv")) == tmp_path / "v_timeline.png"
    assert default_timeline(None, os.devnull) is None
    assert default_timeline(None, str(tmp_path / "f.csv")) == tmp_path / "f_timeline.png"


def test_ferkit_video_writes_a_csv_into_a_fifo_and_makes_no_timeline_beside_it(ferkit, tiny_model_dir, tmp_path):
    video = write_video(tmp_path / "in.avi", 6)
    fifo = tmp_path / "faces.csv"
    reader = fifo_with_reader(fifo)
    code, out, err = ferkit("video", video, "--csv", fifo, "--model", tiny_model_dir)
    assert (code, err) == (0, "")
    lines = read_all(reader).decode().splitlines()
    assert lines[0].startswith("frame,time_s,face_id,") and len(lines) == 7  # a header and 6 frames, no faces
    assert stat.S_ISFIFO(fifo.lstat().st_mode)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["faces.csv", "in.avi"], "no faces_timeline.png"


def test_printable_json_escapes_non_utf8_names_in_keys_and_values():
    value = {"a\udcff": ["b\udcfe.jpg", ("é", 1)], "n": 2.5, "none": None, "ok": True}
    assert files.printable_json(value) == {"a\\xff": ["b\\xfe.jpg", ["é", 1]], "n": 2.5, "none": None, "ok": True}
    json.dumps(files.printable_json(value), ensure_ascii=False).encode("utf-8")  # strict: valid UTF-8
