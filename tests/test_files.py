"""All-or-nothing output files (ferkit.files): partial names, clean-up, errors."""

from __future__ import annotations

import errno
import os
from pathlib import Path

import pytest
from conftest import write_video

from ferkit.errors import MediaError
from ferkit.files import NAME_MAX, atomic_output, partial_path


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
