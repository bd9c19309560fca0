"""ferkit batch on the local engine: input expansion, outputs equal to `ferkit video`'s, the photo
dataset, the run summary, per-input failures, resumption after a kill, --force, and the CLI.

Generated videos (bright squares on grey, no face for Haar) and photos make most tests run
anywhere; the real media in ../shared checks faces end to end.
"""

from __future__ import annotations

import csv
import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import cv2
import pyarrow.parquet as pq
import pytest

from conftest import expected_csv, mixed_folder, rows, wait_until, write_photo, write_video
from ferkit.batch import analyse
from ferkit.batch.inputs import Item, expand_inputs, hashed_key
from ferkit.errors import FerkitError, MediaError
from ferkit.inference.images import read_image
from ferkit.labels import CLASS_NAMES
from ferkit.video.process import process_video

# From conftest.py: config and pipeline (the tiny model, one per module), and the `ferkit` CLI runner.
# Generated videos are write_video(..., pattern="square"): a bright square sliding across grey.


# --- inputs --------------------------------------------------------------------------------

def test_inputs_folders_globs_lists_and_urls(tmp_path):
    root = mixed_folder(tmp_path / "media")
    other = tmp_path / "other"
    other.mkdir()
    write_video(other / "a.mp4", 5, pattern="square")  # the same name as media/a.mp4
    (tmp_path / "list.txt").write_text("# one per line\n\nother/a.mp4\nhttps://example.org/clips/x.webm?s=1\n"
                                       f"{root}/c.jpg\nnowhere.mp4\n")
    items = expand_inputs([str(root), str(tmp_path / "list.txt"), str(tmp_path / "media" / "*.jpg"),
                           str(tmp_path / "*.nothing")])
    a1, a2 = str(root / "a.mp4"), str(other / "a.mp4")
    assert [(Path(i.source).name if "://" not in i.source else i.source, i.kind) for i in items] == [
        ("*.nothing", "missing"), ("a.mp4", "video"), ("b_bad.mp4", "video"), ("c.jpg", "photo"),
        ("d_bad.jpg", "photo"), ("e.mp4", "video"), ("f.png", "photo"), ("nowhere.mp4", "missing"),
        ("a.mp4", "video"), ("https://example.org/clips/x.webm?s=1", "video")]
    keys = {i.source: i.key for i in items}
    assert keys[str(root / "sub" / "e.mp4")] == "sub/e", "folders keep their tree under videos/"
    assert keys[a1] != keys[a2] and keys[a1].startswith("a-") and keys[a2].startswith("a-"), \
        "two inputs named a.mp4 get their own outputs"
    assert expand_inputs([str(root / "a.mp4")]) == [Item(a1, "video", "a")]
    assert expand_inputs([str(root / "empty")]) == []
    assert expand_inputs(str(root / "notes.md")) == [Item(str(root / "notes.md"), "unknown", "notes")]


def put(write, path: Path, *args, **kwargs) -> Path:
    """write(path, ...) with path's folders made first."""
    path.parent.mkdir(parents=True, exist_ok=True)
    return write(path, *args, **kwargs)


def test_one_file_given_two_ways_is_one_input_and_hidden_folders_are_skipped(tmp_path, monkeypatch):
    root = tmp_path / "media"
    put(write_photo, root / "p.jpg")
    put(write_photo, root / ".thumbnails" / "t.jpg")
    put(write_photo, root / ".ipynb_checkpoints" / "p-checkpoint.jpg")
    put(write_photo, root / "sub" / "ok.jpg")
    (tmp_path / "lists").mkdir()
    (tmp_path / "lists" / "l.txt").write_text("../media/p.jpg\n")
    items = expand_inputs([root / "p.jpg", root / ".." / "media" / "p.jpg", tmp_path / "lists" / "l.txt", root])
    assert [i.source for i in items] == [str(root / "p.jpg"), str(root / "sub" / "ok.jpg")]
    # "~" as the shell would expand it, in a quoted glob too
    monkeypatch.setenv("HOME", str(tmp_path))
    assert [i.source for i in expand_inputs(["~/media/*.jpg", "~/media"])] == [str(root / "p.jpg"),
                                                                              str(root / "sub" / "ok.jpg")]


def test_a_globs_matches_are_taken_as_if_named(tmp_path):
    """A list file a glob matches is read; files that are no media are skipped, as in a folder."""
    put(write_photo, tmp_path / "media" / "p.jpg")
    put(write_video, tmp_path / "media" / "v.mp4", 3, pattern="square")
    (tmp_path / "gl").mkdir()
    (tmp_path / "gl" / "one.txt").write_text("../media/p.jpg\n")
    (tmp_path / "gl" / "two.txt").write_text("../media/v.mp4\n")
    (tmp_path / "gl" / "readme.md").write_text("not media\n")
    assert expand_inputs([str(tmp_path / "gl" / "*")]) == [Item(str(tmp_path / "media" / "p.jpg"), "photo", "p"),
                                                          Item(str(tmp_path / "media" / "v.mp4"), "video", "v")]


def test_a_photo_or_a_missing_path_never_changes_a_videos_key(tmp_path):
    put(write_video, tmp_path / "a" / "clip.mp4", 3, pattern="square")
    put(write_photo, tmp_path / "b" / "clip.jpg")
    items = expand_inputs([tmp_path / "a" / "clip.mp4", tmp_path / "b" / "clip.jpg", tmp_path / "c" / "clip.mov"])
    assert {i.kind: i.key for i in items} == {"video": "clip", "photo": "clip", "missing": "clip"}


def test_list_files_that_name_each_other_are_read_once(tmp_path):
    # a.txt -> b.txt -> c.txt -> a.txt: each list's entries once, the cycle skipped like a list naming itself
    for name, entries in (("a", "b.txt\nx.mp4\n"), ("b", "c.txt\na.txt\ny.jpg\n"), ("c", "./a.txt\nz.png\n")):
        (tmp_path / f"{name}.txt").write_text(entries)
    expected = [Item(str(tmp_path / name), kind, Path(name).stem) for name, kind in
                (("x.mp4", "missing"), ("y.jpg", "missing"), ("z.png", "missing"))]
    assert expand_inputs([str(tmp_path / "a.txt")]) == expected
    assert expand_inputs([str(tmp_path / "b.txt"), str(tmp_path / "c.txt")]) == expected


def test_names_that_are_not_utf8_are_failed_rows_never_given_to_opencv(config, tmp_path):
    # OpenCV crashed (segfault) on such names, and the summary's text columns cannot hold them:
    # they are named by their printable form and refused; everything else runs
    root = tmp_path / "media"
    root.mkdir()
    write_photo(root / "a.png").rename(root / os.fsdecode(b"a\xff\xfeb.png"))  # OpenCV cannot write them either
    write_video(root / "v.mp4", 5, pattern="square").rename(root / os.fsdecode(b"v\xff.mp4"))
    write_photo(root / "good.png")
    photo, video = str(root) + "/a\\xff\\xfeb.png", str(root) + "/v\\xff.mp4"
    assert expand_inputs([root]) == [Item(photo, "bad-name", "a\\xff\\xfeb"),
                                     Item(str(root / "good.png"), "photo", "good"), Item(video, "bad-name", "v\\xff")]
    table = analyse([root], tmp_path / "out", config=config, workers=1, progress=False)
    assert rows(table, "input", "kind", "status", "error") == [
        (photo, "bad-name", "failed", f"{photo}: the file name is not valid UTF-8; rename it"),
        (str(root / "good.png"), "photo", "done", None),
        (video, "bad-name", "failed", f"{video}: the file name is not valid UTF-8; rename it")]


def test_a_list_line_naming_a_file_that_is_not_utf8_finds_it_as_a_bad_name(tmp_path):
    write_photo(tmp_path / "a.png").rename(tmp_path / os.fsdecode(b"a\xff.png"))
    # with a BOM first (Notepad's UTF-8), and the second file does not exist
    (tmp_path / "list.txt").write_bytes(b"\xef\xbb\xbfa\xff.png\nb\xfe.png\n")
    assert expand_inputs([str(tmp_path / "list.txt")]) == [
        Item(str(tmp_path) + "/a\\xff.png", "bad-name", "a\\xff"),
        Item(str(tmp_path) + "/b\\xfe.png", "missing", "b\\xfe")]


# --- a run ---------------------------------------------------------------------------------

def test_mixed_folder_outputs_equal_ferkit_video(config, pipeline, tmp_path):
    root = mixed_folder(tmp_path / "media")
    out = tmp_path / "out"
    table = analyse([root], out, config=config, workers=2, progress=False)
    assert rows(table, "input", "kind", "status", "frames", "faces") == [
        (str(root / "a.mp4"), "video", "done", 30, 0),
        (str(root / "b_bad.mp4"), "video", "failed", None, None),
        (str(root / "c.jpg"), "photo", "done", 1, 0),
        (str(root / "d_bad.jpg"), "photo", "failed", None, None),
        (str(root / "sub" / "e.mp4"), "video", "done", 45, 0),
        (str(root / "sub" / "f.png"), "photo", "done", 1, 0)]
    errors = dict(rows(table, "input", "error"))
    assert errors[str(root / "b_bad.mp4")].startswith(f"{root / 'b_bad.mp4'}: frame ")
    assert errors[str(root / "b_bad.mp4")].endswith("of 60 cannot be read (the file is damaged or truncated)")
    assert errors[str(root / "d_bad.jpg")] == f"{root / 'd_bad.jpg'}: not an image OpenCV can read " \
                                               "(corrupt, unsupported, or too many pixels)"
    # per video: the CSV byte for byte, the timeline, and the JSON summary of `ferkit video --json`
    for name, key, frames in (("a.mp4", "a", 30), ("sub/e.mp4", "sub/e", 45)):
        assert (out / "videos" / f"{key}.csv").read_bytes() == expected_csv(pipeline, root / name, tmp_path)
        assert cv2.imread(str(out / "videos" / f"{key}_timeline.png")) is not None
        summary = json.loads((out / "videos" / f"{key}.json").read_text())
        expected = process_video(pipeline, root / name)
        assert {k: v for k, v in summary.items() if k not in ("fps", "outputs")} == \
               {k: v for k, v in expected.items() if k not in ("fps", "outputs")}
        assert summary["input"] == str(root / name) and summary["frames"] == frames
        assert summary["outputs"] == {"csv": str(out / "videos" / f"{key}.csv"),
                                      "timeline": str(out / "videos" / f"{key}_timeline.png")}
    assert sorted(p.name for p in (out / "videos").rglob("*") if p.is_file()) == [
        "a.csv", "a.json", "a_timeline.png", "e.csv", "e.json", "e_timeline.png"], "nothing for failed inputs"
    # photos: one dataset; a photo without faces is one row with empty face columns
    photos = pq.read_table(out / "photos")
    assert photos.column_names == ["path", "face_id", "x", "y", "w", "h", "det_score", "emotion", *CLASS_NAMES]
    assert sorted(rows(photos, "path", "face_id", "emotion")) == [
        (str(root / "c.jpg"), None, None), (str(root / "sub" / "f.png"), None, None)]
    # the summary, on disk as Parquet and CSV
    assert pq.read_table(out / "summary.parquet").equals(table)
    csv_lines = (out / "summary.csv").read_text().splitlines()
    assert csv_lines[0] == '"input","kind","status","frames","faces","seconds","dominant","elapsed_s","node",' \
                           '"output","error"' and len(csv_lines) == 7
    assert not (out / ".partial").exists()
    assert not [p for p in out.rglob("*") if ".partial" in p.name], "no partial file left behind"


def test_rerun_skips_complete_inputs_and_force_redoes_them(config, tmp_path):
    root = mixed_folder(tmp_path / "media")
    out = tmp_path / "out"
    first = analyse([root], out, config=config, workers=2, progress=False)
    stats = {p: (p.stat().st_ino, p.stat().st_mtime_ns) for p in out.rglob("*") if p.is_file()
             and p.parent.name != "out"}  # all but the summary, which every run rewrites
    second = analyse([root], out, config=config, workers=2, progress=False)
    assert rows(second, "status") == [("skipped",), ("failed",), ("skipped",), ("failed",), ("skipped",),
                                      ("skipped",)], "failed inputs are tried again, done ones are not"
    assert {p: (p.stat().st_ino, p.stat().st_mtime_ns) for p in stats} == stats, "no output was rewritten"
    same = ["input", "kind", "frames", "faces", "seconds", "dominant", "error"]
    assert second.select(same).equals(first.select(same))
    third = analyse([root], out, config=config, workers=1, force=True, progress=False)
    assert [s for (s,) in rows(third, "status")] == ["done", "failed", "done", "failed", "done", "done"]
    assert len(pq.read_table(out / "photos")) == 2, "redone photos replace their rows, never duplicate them"
    assert third.select(same).equals(first.select(same))


def test_annotate_writes_the_annotated_video_and_completes_older_runs(config, tmp_path):
    root = tmp_path / "media"
    root.mkdir()
    write_video(root / "a.mp4", 12, pattern="square")
    analyse([root], tmp_path / "out", config=config, progress=False)
    table = analyse([root], tmp_path / "out", config=config, annotate=True, progress=False)
    assert rows(table, "status") == [("done",)], "a run without the annotated video is not complete for --annotate"
    capture = cv2.VideoCapture(str(tmp_path / "out" / "videos" / "a.mp4"))
    frames = 0
    while capture.read()[0]:
        frames += 1
    assert frames == 12


def test_url_inputs_are_downloaded(config, pipeline, tmp_path):
    video = write_video(tmp_path / "clip.mp4", 10, pattern="square")
    (tmp_path / "urls.txt").write_text(f"{video.as_uri()}\nfile:///no/such/photo.jpg\n")
    table = analyse([tmp_path / "urls.txt"], tmp_path / "out", config=config, progress=False)
    assert rows(table, "input", "status", "frames") == [("file:///no/such/photo.jpg", "failed", None),
                                                        (video.as_uri(), "done", 10)]
    assert dict(rows(table, "input", "error"))["file:///no/such/photo.jpg"].startswith(
        "file:///no/such/photo.jpg: cannot be downloaded")
    assert (tmp_path / "out" / "videos" / "clip.csv").read_bytes() == expected_csv(pipeline, video, tmp_path)


def test_what_stops_a_run(config, tmp_path):
    (tmp_path / "empty").mkdir()
    with pytest.raises(FerkitError, match="no photos or videos found in"):
        analyse([tmp_path / "empty"], tmp_path / "out", config=config, progress=False)
    assert not (tmp_path / "out").exists()
    with pytest.raises(FerkitError, match="unknown engine 'spark'"):
        analyse([tmp_path], tmp_path / "out", engine="spark", config=config)
    with pytest.raises(FerkitError, match="workers must be at least 1"):
        analyse([tmp_path], tmp_path / "out", workers=0, config=config)


def test_an_output_folder_that_is_also_the_input_folder(config, tmp_path):
    # `batch DIR --out DIR`: a rerun must not take its own videos/*_timeline.png for photos, and
    # an input inside its videos/ folder (where an annotated video could replace it) is no input
    root = tmp_path / "media"
    root.mkdir()
    write_video(root / "a.mp4", 5, pattern="square")
    write_photo(root / "c.png")
    expected = [(str(root / "a.mp4"), "video"), (str(root / "c.png"), "photo")]
    first = analyse([root], root, config=config, workers=1, progress=False)
    assert rows(first, "input", "kind") == expected and rows(first, "status") == [("done",), ("done",)]
    assert (root / "videos" / "a_timeline.png").is_file()
    second = analyse([root], root, config=config, workers=1, progress=False)
    assert rows(second, "input", "kind") == expected and rows(second, "status") == [("skipped",), ("skipped",)]
    with pytest.raises(FerkitError) as error:
        analyse([root / "videos"], root, config=config, annotate=True, progress=False)
    assert str(error.value) == f"no photos or videos found in {root / 'videos'} outside {root / 'videos'} and " \
                               f"{root / '.partial'}, where this run writes"


# A worker that dies (a segfault, the OOM killer) gives no result and raises nothing in it. This
# driver makes the workers die on inputs named crash*: the patch is top-level code, which every
# spawned worker runs too (it imports the driver's main module).
CRASHING_DRIVER = """
import os
import signal
import sys

import ferkit.batch.local as local

real_video, real_photos = local.analyse_video, local.analyse_photos


def analyse_video(config, item, *args, **kwargs):
    if "crash" in item.source:
        os.kill(os.getpid(), signal.SIGSEGV)
    return real_video(config, item, *args, **kwargs)


def analyse_photos(config, sources):
    if any("crash" in source for source in sources):
        os.kill(os.getpid(), signal.SIGSEGV)
    return real_photos(config, sources)


local.analyse_video, local.analyse_photos = analyse_video, analyse_photos

if __name__ == "__main__":
    from ferkit.cli import main

    sys.exit(main(sys.argv[1:]))
"""


def test_a_worker_that_dies_is_a_failed_row_and_every_other_input_is_done(tiny_model_dir, tmp_path):
    # multiprocessing.Pool waited forever for a dead worker's result: run where a hang is a failure
    root = tmp_path / "media"
    root.mkdir()
    for name in ("crash.mp4", "ok.mp4"):
        write_video(root / name, 5, pattern="square")
    for name in ("crash.png", "p1.png", "p2.png"):  # one task: the group is split to find the culprit
        write_photo(root / name)
    (tmp_path / "driver.py").write_text(CRASHING_DRIVER)
    command = [sys.executable, str(tmp_path / "driver.py"), "batch", str(root), "--out", str(tmp_path / "out"),
               "--workers", "2", "--model", str(tiny_model_dir), "--no-progress"]
    try:
        done = subprocess.run(command, capture_output=True, text=True, timeout=180)
    except subprocess.TimeoutExpired:
        pytest.fail("the run hung on a dead worker")
    died = "the worker process died while analysing it (a crash in native code, or out of memory)"
    assert done.returncode == 2, done.stderr
    assert [line for line in done.stderr.splitlines() if line.startswith("ferkit batch:")] == [
        f"ferkit batch: failed: {root / 'crash.mp4'}: {died}", f"ferkit batch: failed: {root / 'crash.png'}: {died}"]
    assert done.stdout.startswith("5 inputs: 3 done, 0 skipped (done before), 2 failed in ")
    summary = pq.read_table(tmp_path / "out" / "summary.parquet")
    assert rows(summary, "input", "status") == [(str(root / name), status) for name, status in (
        ("crash.mp4", "failed"), ("crash.png", "failed"), ("ok.mp4", "done"), ("p1.png", "done"), ("p2.png", "done"))]
    assert sorted(pq.read_table(tmp_path / "out" / "photos").column("path").to_pylist()) == [
        str(root / "p1.png"), str(root / "p2.png")]


# --- ferkit batch --------------------------------------------------------------------------

def test_cli_exit_status_is_the_number_of_failed_inputs(ferkit, tiny_model_dir, tmp_path):
    root = mixed_folder(tmp_path / "media")
    code, out, err = ferkit("batch", root, tmp_path / "missing.mp4", "--out", tmp_path / "out",
                            "--model", tiny_model_dir)
    assert code == 3, err
    assert err.splitlines()[0].startswith(f"ferkit batch: failed: {root / 'b_bad.mp4'}: frame ")
    assert err.splitlines()[0].endswith("of 60 cannot be read (the file is damaged or truncated)")
    assert err.splitlines()[1:] == [
        f"ferkit batch: failed: {root / 'd_bad.jpg'}: not an image OpenCV can read (corrupt, unsupported, or too "
        "many pixels)", f"ferkit batch: failed: {tmp_path / 'missing.mp4'}: no such file, folder or match"]
    assert out.startswith("7 inputs: 4 done, 0 skipped (done before), 3 failed in ")
    assert out.rstrip().endswith(f"summary: {tmp_path / 'out' / 'summary.csv'}")
    code, out, err = ferkit("batch", root / "a.mp4", "--out", tmp_path / "out", "--model", tiny_model_dir)
    assert code == 0 and out.startswith("1 input: 0 done, 1 skipped (done before), 0 failed")


def test_a_video_never_takes_the_outputs_of_another_input_of_the_same_name(config, tmp_path):
    """Day by day into one --out: clip.mp4 of day 2 gets its own outputs; reruns of either day skip it."""
    first = put(write_video, tmp_path / "day1" / "clip.mp4", 4, pattern="square", seed=1)
    second = put(write_video, tmp_path / "day2" / "clip.mp4", 5, pattern="square", seed=2)
    out = tmp_path / "out"
    for video in (first, second):
        assert rows(analyse([video], out, config=config, workers=1, progress=False), "status") == [("done",)]
    videos = out / "videos"
    hashed = hashed_key("clip", str(second))
    assert json.loads((videos / "clip.json").read_text())["input"] == str(first)
    assert json.loads((videos / f"{hashed}.json").read_text())["input"] == str(second)
    both = analyse([first, second], out, config=config, workers=1, progress=False)
    assert rows(both, "status", "output") == [("skipped", str(videos / "clip.json")),
                                              ("skipped", str(videos / f"{hashed}.json"))]
    assert sorted(p.name for p in videos.iterdir()) == sorted(
        f"{key}{end}" for key in ("clip", hashed) for end in (".csv", ".json", "_timeline.png"))


def test_an_interrupted_force_run_keeps_the_photos_it_did_not_reach(config, tmp_path, monkeypatch):
    from ferkit.batch import local

    root = tmp_path / "media"
    for name in ("p1.png", "p2.png"):
        put(write_photo, root / name)
    out = tmp_path / "out"
    analyse([root], out, config=config, workers=1, progress=False)
    before = sorted(pq.read_table(out / "photos").column("path").to_pylist())

    def interrupted(job, report, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(local, "run", interrupted)
    with pytest.raises(KeyboardInterrupt):
        analyse([root], out, config=config, workers=1, progress=False, force=True)
    assert sorted(pq.read_table(out / "photos").column("path").to_pylist()) == before
    monkeypatch.undo()
    analyse([root], out, config=config, workers=1, progress=False, force=True)  # redone: replaced, not doubled
    assert sorted(pq.read_table(out / "photos").column("path").to_pylist()) == before


def test_an_interrupted_run_writes_its_own_summary(config, tmp_path, monkeypatch):
    """What this run did (the video) and what it did not reach (the photo), not the earlier run's rows."""
    from dataclasses import replace as replaced

    from ferkit.batch import local

    root = tmp_path / "media"
    photo, video = put(write_photo, root / "p.png"), put(write_video, root / "v.mp4", 4, pattern="square")
    out = tmp_path / "out"
    analyse([root], out, config=config, workers=1, progress=False)  # both done: the summary to replace
    run = local.run

    def interrupted_after_the_video(job, report, **kwargs):
        run(replaced(job, photos=[]), report, **kwargs)
        raise KeyboardInterrupt

    monkeypatch.setattr(local, "run", interrupted_after_the_video)
    with pytest.raises(KeyboardInterrupt):
        analyse([root], out, config=config, workers=1, progress=False, force=True)
    reason = "the run was interrupted before this input finished; run again to finish it"
    assert rows(pq.read_table(out / "summary.parquet"), "input", "status", "frames", "error") == [
        (str(photo), "failed", None, reason), (str(video), "done", 4, None)]
    assert [row["status"] for row in csv.DictReader((out / "summary.csv").open())] == ["failed", "done"]


def test_cli_keep_partial_keeps_a_damaged_videos_frames_and_says_so(ferkit, tiny_model_dir, tmp_path):
    root = mixed_folder(tmp_path / "media")
    code, out, err = ferkit("batch", root / "b_bad.mp4", root / "d_bad.jpg", "--out", tmp_path / "out",
                            "--keep-partial", "--model", tiny_model_dir)
    assert code == 1, err  # the photo still fails: kept in part is not failed
    summary = pq.read_table(tmp_path / "out" / "summary.parquet")
    (status, frames, error), _ = rows(summary, "status", "frames", "error")
    reason = f"frame {frames + 1} of 60 cannot be read (the file is damaged or truncated)"
    assert (status, error) == ("done", reason) and 0 < frames < 60
    assert err.splitlines() == [  # in input order
        f"ferkit batch: warning: {root / 'b_bad.mp4'}: {reason}; kept the {frames} frames before it",
        f"ferkit batch: failed: {root / 'd_bad.jpg'}: not an image OpenCV can read (corrupt, unsupported, or too "
        "many pixels)"]
    video = json.loads((tmp_path / "out" / "videos" / "b_bad.json").read_text())
    assert (video["frames"], video["ended"]) == (frames, reason)
    lines = (tmp_path / "out" / "videos" / "b_bad.csv").read_text().splitlines()
    assert sorted({int(r["frame"]) for r in csv.DictReader(lines)}) == list(range(frames))
    # a rerun finds it complete and skips it, the damage still said
    code, out, err = ferkit("batch", root / "b_bad.mp4", "--out", tmp_path / "out", "--model", tiny_model_dir)
    assert code == 0 and out.startswith("1 input: 0 done, 1 skipped (done before), 0 failed")
    assert err == f"ferkit batch: warning: {root / 'b_bad.mp4'}: {reason}; kept the {frames} frames before it\n"


def test_a_relative_out_folder_gives_absolute_output_paths_as_the_inputs_are(ferkit, tiny_model_dir, tmp_path,
                                                                              monkeypatch):
    root = mixed_folder(tmp_path / "media")
    monkeypatch.chdir(tmp_path)
    code, out, err = ferkit("batch", "media/a.mp4", "media/c.jpg", "--out", "res", "--model", tiny_model_dir)
    assert code == 0, err
    summary = pq.read_table(tmp_path / "res" / "summary.parquet")
    assert rows(summary, "input", "output") == [(str(root / "a.mp4"), str(tmp_path / "res" / "videos" / "a.json")),
                                                (str(root / "c.jpg"), str(tmp_path / "res" / "photos"))]
    video = json.loads((tmp_path / "res" / "videos" / "a.json").read_text())
    assert video["outputs"] == {"csv": str(tmp_path / "res" / "videos" / "a.csv"),
                                "timeline": str(tmp_path / "res" / "videos" / "a_timeline.png")}


@pytest.mark.parametrize("args, message", [
    (["EMPTY"], "ferkit batch: error: no photos or videos found in EMPTY"),
    (["EMPTY/..", "--workers", "0"], "ferkit batch: error: argument --workers: 0 is out of range"),
    (["EMPTY/..", "--engine", "spark"], "ferkit batch: error: argument --engine: invalid choice: 'spark'"),
    (["EMPTY/..", "--model", "/no/model"], "ferkit batch: error: "),
])
def test_cli_errors_that_stop_the_run(ferkit, tmp_path, tiny_model_dir, args, message):
    (tmp_path / "EMPTY").mkdir()
    args = [str(tmp_path / a) if a.startswith("EMPTY") else a for a in args]
    code, out, err = ferkit("batch", *args, "--out", tmp_path / "out", *(["--model", tiny_model_dir]
                                                                        if "--model" not in args else []))
    assert code == 2 and out == ""
    assert err.count("\n") == 1 and err.startswith(message.replace("EMPTY", str(tmp_path / "EMPTY")))


def test_an_out_folder_named_in_bytes_that_are_not_utf8_is_one_error_line(ferkit, tmp_path, tiny_model_dir):
    # pyarrow takes paths as UTF-8 only: such an --out was a traceback after the whole run
    photo = write_photo(tmp_path / "p.png")
    code, out, err = ferkit("batch", photo, "--out", tmp_path / "o\udcff", "--model", tiny_model_dir)
    assert (code, out) == (2, "")
    assert err == (f"ferkit batch: error: {tmp_path}/o\\xff: the output folder's name is not valid UTF-8; "
                   "choose another folder\n")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["p.png"]


@pytest.mark.slow
def test_killed_run_resumes_and_does_no_input_twice(config, tiny_model_dir, pipeline, tmp_path):
    """SIGKILL the CLI once two videos are done; the rerun skips exactly the finished ones, leaves
    their files untouched, does the rest, and every CSV equals `ferkit video`'s."""
    root = tmp_path / "media"
    root.mkdir()
    for i in range(8):
        write_video(root / f"v{i}.mp4", 120, seed=i % 4, size=(320, 240), pattern="square")
    out = tmp_path / "out"
    command = [sys.executable, "-m", "ferkit.cli", "batch", str(root), "--out", str(out), "--workers", "1",
               "--model", str(tiny_model_dir), "--no-progress"]
    process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    wait_until(lambda: len(list((out / "videos").glob("*.json"))) >= 2 or process.poll() is not None, timeout=300,
               interval=0.05)
    process.send_signal(signal.SIGKILL)
    process.wait()
    done_before = {p.stem for p in (out / "videos").glob("*.json")}
    assert 2 <= len(done_before) < 8, process.stderr.read().decode()
    assert not (out / "summary.csv").exists(), "the killed run wrote no summary"
    kept = {p: (p.stat().st_ino, p.stat().st_mtime_ns) for p in (out / "videos").iterdir()
            if p.name.split(".")[0].removesuffix("_timeline") in done_before}
    assert len(kept) == 3 * len(done_before)

    table = analyse([root], out, config=config, workers=2, progress=False)
    status = {Path(source).stem: s for source, s in rows(table, "input", "status")}
    assert {k for k, s in status.items() if s == "skipped"} == done_before
    assert {k for k, s in status.items() if s == "done"} == {f"v{i}" for i in range(8)} - done_before
    assert {p: (p.stat().st_ino, p.stat().st_mtime_ns) for p in kept} == kept, "finished videos were not redone"
    for i in range(8):
        video = root / f"v{i}.mp4"
        assert (out / "videos" / f"v{i}.csv").read_bytes() == expected_csv(pipeline, video, tmp_path), video
    assert not [p for p in out.rglob("*") if ".partial" in p.name]


# --- real media ----------------------------------------------------------------------------

@pytest.mark.shared
def test_real_photos_and_videos(config, pipeline, shared_dir, tmp_path):
    media = shared_dir / "data" / "media"
    photos = [media / "photos" / "multi_face.jpg", *sorted((media / "photos" / "dlib_faces").glob("*.jpg"))[:2]]
    video = media / "videos" / "single_face.mp4"
    out = tmp_path / "out"
    table = analyse([*photos, video], out, config=config, progress=False)
    assert [s for (s,) in rows(table, "status")] == ["done"] * 4
    dataset = pq.read_table(out / "photos").sort_by([("path", "ascending"), ("face_id", "ascending")])
    for photo in photos:
        faces = pipeline.analyse(read_image(photo))
        got = [row for row in dataset.to_pylist() if row["path"] == str(photo)]
        expected = [(i + 1, *face.box, face.emotion) for i, face in enumerate(faces)] or [(None,) * 6]
        assert [(r["face_id"], r["x"], r["y"], r["w"], r["h"], r["emotion"]) for r in got] == expected
        for row, face in zip(got, faces):
            assert [row[name] for name in CLASS_NAMES] == pytest.approx(face.scores, abs=1e-6)
            expected_score = getattr(face, "det_score", None)  # None for detectors without one (Haar)
            assert row["det_score"] == (None if expected_score is None else pytest.approx(expected_score, abs=1e-6))
    summary = {Path(r["input"]).name: r for r in table.to_pylist()}
    assert summary["multi_face.jpg"]["faces"] == len(pipeline.analyse(read_image(photos[0]))) == 5
    assert (out / "videos" / "single_face.csv").read_bytes() == expected_csv(pipeline, video, tmp_path)
    video_summary = json.loads((out / "videos" / "single_face.json").read_text())
    assert summary["single_face.mp4"]["frames"] == 72 and summary["single_face.mp4"]["faces"] == 1
    assert summary["single_face.mp4"]["dominant"] == f"1:{video_summary['faces']['1']['emotion']}"


@pytest.mark.slow
def test_no_worker_outlives_a_killed_driver(tiny_model_dir, tmp_path):
    """The pool's workers die with the driver (PR_SET_PDEATHSIG): killed mid-video, they write
    nothing more, so no orphan keeps working or writing."""
    root = tmp_path / "media"
    root.mkdir()
    for i in range(2):
        write_video(root / f"v{i}.mp4", 400, seed=i, size=(320, 240), pattern="square")
    staging = tmp_path / "out" / ".partial"
    command = [sys.executable, "-m", "ferkit.cli", "batch", str(root), "--out", str(tmp_path / "out"),
               "--workers", "2", "--model", str(tiny_model_dir), "--no-progress"]
    process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    wait_until(lambda: list(staging.glob("*/*")), timeout=120, interval=0.01)  # a worker is writing a CSV
    workers = pool_workers(process.pid)
    process.send_signal(signal.SIGKILL)
    process.wait()
    written = {p: p.stat().st_size for p in staging.rglob("*") if p.is_file()}
    assert len(workers) == 2 and written
    assert wait_until(lambda: not [pid for pid in workers if alive(pid)], timeout=120, interval=0.05)
    assert {p: p.stat().st_size for p in staging.rglob("*") if p.is_file()} == written


def pool_workers(pid: int) -> list[int]:
    """The driver's spawned pool workers (not multiprocessing's resource tracker)."""
    try:
        pids = [int(c) for c in Path(f"/proc/{pid}/task/{pid}/children").read_text().split()]
        return [c for c in pids if b"spawn_main" in Path(f"/proc/{c}/cmdline").read_bytes()]
    except OSError:
        return []


def alive(pid: int) -> bool:
    try:
        return Path(f"/proc/{pid}/stat").read_text().split(") ")[1][0] not in "ZX"
    except (OSError, IndexError):
        return False


def test_an_input_the_engine_never_reports_is_a_failed_row(config, monkeypatch, tmp_path):
    import ferkit.batch.local

    write_video(tmp_path / "a.mp4", 5, pattern="square")
    monkeypatch.setattr(ferkit.batch.local, "run", lambda job, report, **options: None)  # a worker that died
    table = analyse([tmp_path / "a.mp4"], tmp_path / "out", config=config, progress=False)
    assert rows(table, "status", "error") == [
        ("failed", "no result came back from the engine (a worker died?); run again to retry")]


def test_the_ray_engine_without_ray_installed_is_one_error_line(ferkit, tiny_model_dir, monkeypatch, tmp_path):
    monkeypatch.setitem(sys.modules, "ray", None)  # what `import ray` meets without the extra
    monkeypatch.delitem(sys.modules, "ferkit.batch.ray_engine", raising=False)
    write_photo(tmp_path / "p.png")
    code, out, err = ferkit("batch", tmp_path / "p.png", "--out", tmp_path / "out", "--engine", "ray",
                            "--model", tiny_model_dir)
    assert (code, out) == (2, "")
    assert err == 'ferkit batch: error: the ray engine needs Ray: pip install "ferkit[ray]"\n'
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize("flush_every_s, parts", [(30.0, 1), (-1.0, 2)])
def test_photo_rows_are_written_in_parts_by_count_or_time(config, monkeypatch, tmp_path, flush_every_s, parts):
    """20 photos come back in two groups of at most 16: one part at the end, or one per group when
    the flush interval has passed (so a killed run loses at most that interval's photos)."""
    import ferkit.batch

    monkeypatch.setattr(ferkit.batch, "FLUSH_EVERY_S", flush_every_s)
    for i in range(20):
        write_photo(tmp_path / f"p{i:02d}.png", seed=i % 3)
    analyse([tmp_path], tmp_path / "out", config=config, workers=1, progress=False)
    assert len(list((tmp_path / "out" / "photos").glob("part-*.parquet"))) == parts
    assert sorted(pq.read_table(tmp_path / "out" / "photos").column("path").to_pylist()) == \
           [str(tmp_path / f"p{i:02d}.png") for i in range(20)]


def test_the_progress_bar_ends_on_the_last_frame_count(tmp_path):
    from ferkit.batch import Recorder
    from ferkit.batch.outputs import OutputFolder

    item = Item(str(tmp_path / "v.mp4"), "video", "v")
    folder = OutputFolder(tmp_path / "out")
    recorder = Recorder(folder, [item], annotate=False, progress=True)
    recorder.frames(item.source, 10)  # drawn: the first
    recorder.frames(item.source, 30)  # within half a second of it: not drawn
    assert recorder.bar.postfix.startswith("10 frames")
    recorder.close()
    folder.close()
    assert recorder.bar.postfix.startswith("30 frames")


def test_a_video_whose_name_leaves_no_room_for_the_outputs_suffixes_gets_a_shortened_key(config, tmp_path):
    video = put(write_video, tmp_path / "media" / f"{'v' * 245}.mp4", 3, pattern="square")
    table = analyse([video], tmp_path / "out", config=config, workers=1, progress=False)
    (status, output), = rows(table, "status", "output")
    assert status == "done" and Path(output).name == f"{'v' * 233}-{hashed_key('v', str(video))[-8:]}.json"
    assert sorted(len(p.name.encode()) for p in (tmp_path / "out" / "videos").iterdir()) == [246, 247, 255]


def test_a_video_whose_outputs_cannot_all_be_committed_leaves_none(config, tmp_path, monkeypatch):
    from ferkit.batch import outputs

    video = put(write_video, tmp_path / "media" / "clip.mp4", 3, pattern="square")
    real = outputs.atomic_output

    def no_timeline(path, *args, **kwargs):
        if str(path).endswith("_timeline.png"):
            raise MediaError(f"{path}: cannot be written (File name too long)")
        return real(path, *args, **kwargs)

    monkeypatch.setattr(outputs, "atomic_output", no_timeline)
    table = analyse([video], tmp_path / "out", config=config, workers=1, progress=False)
    assert rows(table, "status") == [("failed",)] and "_timeline.png: cannot be written" in rows(table, "error")[0][0]
    assert not (tmp_path / "out" / "videos").exists()  # nothing in it: the empty folder goes too


def test_a_rerun_with_other_settings_is_refused_unless_forced(config, tmp_path, tiny_model_dir):
    """Done is decided by the outputs: with another model or detector a rerun would skip everything as done."""
    from dataclasses import replace

    from ferkit.config import DetectorConfig

    video = put(write_video, tmp_path / "media" / "clip.mp4", 3, pattern="square")
    out = tmp_path / "out"
    analyse([video], out, config=config, workers=1, progress=False)
    other = replace(config, detector=DetectorConfig(min_face=30))
    with pytest.raises(MediaError) as error:
        analyse([video], out, config=other, workers=1, progress=False)
    assert str(error.value) == (f"{out}: holds results made with other settings (changed: detector); --force redoes "
                                "them with these, or choose another --out")
    assert rows(analyse([video], out, config=other, workers=1, progress=False, force=True), "status") == [("done",)]
    assert json.loads((out / "settings.json").read_text())["detector"]["min_face"] == 30
    assert rows(analyse([video], out, config=other, workers=1, progress=False), "status") == [("skipped",)]
    # the same model named by another path is the same setting
    relative = replace(other, model=os.path.relpath(tiny_model_dir))
    assert rows(analyse([video], out, config=relative, workers=1, progress=False), "status") == [("skipped",)]


def test_no_inputs_at_all_and_a_generator_of_them_are_named(config, tmp_path):
    with pytest.raises(MediaError, match="^no inputs given: name photos, videos, folders, globs or list files$"):
        analyse([], tmp_path / "out", config=config, progress=False)
    (tmp_path / "empty").mkdir()
    with pytest.raises(MediaError) as error:
        analyse((p for p in [tmp_path / "empty"]), tmp_path / "out", config=config, progress=False)
    assert str(error.value) == f"no photos or videos found in {tmp_path / 'empty'}"


def test_a_script_that_calls_analyse_without_the_main_guard_is_told_so(tiny_model_dir, tmp_path):
    """The local engine spawns its workers, which import the script again: unguarded, they die as they start."""
    photo = write_photo(tmp_path / "p.png")
    script = tmp_path / "noguard.py"
    script.write_text("from ferkit.batch import analyse\nfrom ferkit.config import Config\n"
                      f"table = analyse([{str(photo)!r}], {str(tmp_path / 'out')!r}, "
                      f"config=Config(model={str(tiny_model_dir)!r}), workers=1, progress=False)\n"
                      "print(table.column('error').to_pylist())\n")
    run = subprocess.run([sys.executable, str(script)], capture_output=True, text=True, timeout=300, cwd=tmp_path)
    assert run.returncode == 0 and run.stdout.strip().endswith(
        "analyse() called outside `if __name__ == \"__main__\":`)']")
