"""ferkit.inference.images pinned to exact values: error messages word for word, the annotated copies'
names for runs of duplicates, `ferkit predict`'s text and JSON output line by line, and decoded
pixels (grey, alpha, every EXIF orientation) value by value.

tests/test_predict.py covers the same module end to end with a real model and detector; here a stub
pipeline returns faces with hand-picked scores, so every printed line and JSON field is known in
advance. Written against the mutants that test_predict.py let survive (issue 10).
"""

from __future__ import annotations

import errno
import json
import os
import struct
import subprocess
import sys
from pathlib import Path

import cv2
import numpy as np
import pytest
from conftest import png_bytes, write_photo

from ferkit.config import Config
from ferkit.errors import MediaError
from ferkit.inference import images
from ferkit.inference.images import annotated_name, prepare_out_dir, print_faces, read_image, run_predict, write_image
from ferkit.inference.pipeline import Face
from ferkit.labels import CLASS_NAMES
from ferkit.vision.draw import draw_faces

assert CLASS_NAMES == ("angry", "disgust", "fear", "happy", "sad", "surprise", "neutral")  # the scores below

# Two faces with all seven scores different, so the three best, in order, are one answer only:
# HAPPY's best three are happy 52%, surprise 23%, disgust 11% -- not the first three in CLASS_NAMES
# order (angry, disgust, fear), not alphabetical, not the three lowest (sad 2%, fear 3%, angry 4%).
HAPPY = Face((10, 20, 30, 40), np.array([0.04, 0.11, 0.03, 0.52, 0.02, 0.23, 0.05], np.float32))
HAPPY_LINE = "  box [10, 20, 30, 40]: happy (happy 52%, surprise 23%, disgust 11%)"
# ANGRY's best three are angry 30%, sad 25%, fear 20%; its fourth (neutral 10%) must not be printed.
ANGRY = Face((100, 5, 60, 70), np.array([0.30, 0.01, 0.20, 0.09, 0.25, 0.05, 0.10], np.float32), det_score=0.875)
ANGRY_LINE = "  box [100, 5, 60, 70]: angry (angry 30%, sad 25%, fear 20%)"

# Their JSON records, written out by hand (Face.to_dict: scores rounded to 4 places, in CLASS_NAMES order).
HAPPY_JSON = {"box": [10, 20, 30, 40], "emotion": "happy", "det_score": None,
              "scores": {"angry": 0.04, "disgust": 0.11, "fear": 0.03, "happy": 0.52, "sad": 0.02,
                         "surprise": 0.23, "neutral": 0.05}}
ANGRY_JSON = {"box": [100, 5, 60, 70], "emotion": "angry", "det_score": 0.875,
              "scores": {"angry": 0.3, "disgust": 0.01, "fear": 0.2, "happy": 0.09, "sad": 0.25,
                         "surprise": 0.05, "neutral": 0.1}}


# --- read_image / read_bytes: exact error messages -----------------------------------------------

NOT_AN_IMAGE = "not an image OpenCV can read (corrupt, unsupported, or too many pixels)"


def message(excinfo) -> str:
    return str(excinfo.value)


@pytest.mark.parametrize("kind", [bytes, bytearray, memoryview])
def test_bytes_errors_name_the_source_image(kind):
    # bytes have no file name: the message names them "image", in the same words as for a file
    with pytest.raises(MediaError) as empty:
        read_image(kind(b""))
    assert message(empty) == "image: the file is empty"
    with pytest.raises(MediaError) as junk:
        read_image(kind(b"hello, this is text\n" * 20))
    assert message(junk) == f"image: {NOT_AN_IMAGE}"


def test_file_errors_name_the_path_as_given(tmp_path):
    # a path (str or Path) names itself, exactly as str() writes it
    empty, junk = tmp_path / "empty.jpg", tmp_path / "junk.png"
    empty.write_bytes(b"")
    junk.write_bytes(b"\x89PNG\r\n\x1a\n" + bytes(range(256)) * 4)  # a PNG signature, then junk
    for source in (empty, str(empty)):
        with pytest.raises(MediaError) as excinfo:
            read_image(source)
        assert message(excinfo) == f"{empty}: the file is empty"
    with pytest.raises(MediaError) as excinfo:
        read_image(junk)
    assert message(excinfo) == f"{junk}: {NOT_AN_IMAGE}"
    with pytest.raises(MediaError) as excinfo:
        read_image(tmp_path / "missing.jpg")
    assert message(excinfo) == f"{tmp_path / 'missing.jpg'}: no such file"


def test_bytes_of_every_kind_decode_like_the_file(tmp_path):
    data = png_bytes(width=31, height=17, seed=3)
    path = tmp_path / "noise.png"
    path.write_bytes(data)
    expected = read_image(path)
    assert expected.shape == (17, 31, 3)
    for source in (data, bytearray(data), memoryview(data), str(path)):
        assert np.array_equal(read_image(source), expected)


def test_a_file_the_system_cannot_read_is_a_media_error_with_the_reason(tmp_path, monkeypatch):
    # np.fromfile's OSError becomes "<path>: cannot be read (<strerror>)", without the traceback chain.
    # Stand-in for a disk error or a file whose permissions forbid reading (which root ignores).
    path = write_photo(tmp_path / "photo.png")

    def failing_fromfile(file, dtype):
        raise OSError(errno.EIO, os.strerror(errno.EIO), str(file))

    monkeypatch.setattr(np, "fromfile", failing_fromfile)
    with pytest.raises(MediaError) as excinfo:
        read_image(path)
    assert message(excinfo) == f"{path}: cannot be read (Input/output error)"
    assert excinfo.value.__cause__ is None and excinfo.value.__suppress_context__


def png_header(width: int, height: int) -> bytes:
    """A PNG's signature, IHDR chunk (8-bit grey) and an empty IDAT: a header with no pixels behind it."""
    import zlib

    def chunk(body: bytes) -> bytes:
        return struct.pack(">I", len(body) - 4) + body + struct.pack(">I", zlib.crc32(body))

    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR" + struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)) + chunk(b"IDAT")


def test_the_pixel_cap_is_read_from_the_header_to_the_pixel():
    # 8000 x 8000 is exactly the cap: allowed through to OpenCV (which then finds no pixel data);
    # one row more is refused by the header check, naming the declared size
    with pytest.raises(MediaError) as at_cap:
        read_image(png_header(8000, 8000))
    assert message(at_cap) == f"image: {NOT_AN_IMAGE}"
    with pytest.raises(MediaError) as over:
        read_image(png_header(8000, 8001))
    assert message(over) == "image: too many pixels (8000 x 8001; at most 64,000,000 are decoded)"
    with pytest.raises(MediaError) as wide:
        read_image(png_header(64_000_001, 1))
    assert message(wide) == "image: too many pixels (64000001 x 1; at most 64,000,000 are decoded)"


def test_a_decompression_bomb_is_refused_even_when_cv2_was_imported_first(tmp_path):
    # OpenCV reads OPENCV_IO_MAX_IMAGE_PIXELS once, when cv2 loads: a program that imports cv2 before
    # ferkit decodes 81 megapixels (the probe proves it does), yet read_image must still refuse them
    bomb = tmp_path / "bomb.png"
    ok, encoded = cv2.imencode(".png", np.zeros((9000, 9000), np.uint8))
    bomb.write_bytes(encoded.tobytes())
    probe = f"""
import cv2, numpy as np
decoded = cv2.imdecode(np.fromfile({str(bomb)!r}, np.uint8), cv2.IMREAD_GRAYSCALE)
print("cv2 decodes", decoded.shape)
from ferkit.errors import MediaError
from ferkit.inference.images import read_image
try:
    read_image({str(bomb)!r})
except MediaError as err:
    print(err)
"""
    env = {k: v for k, v in os.environ.items() if k != "OPENCV_IO_MAX_IMAGE_PIXELS"}
    done = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, timeout=120, env=env)
    assert done.returncode == 0, done.stderr
    assert done.stdout.splitlines() == [
        "cv2 decodes (9000, 9000)", f"{bomb}: too many pixels (9000 x 9000; at most 64,000,000 are decoded)"]


# --- read_image: decoded pixels ------------------------------------------------------------------

def test_a_grey_file_becomes_three_equal_channels(tmp_path):
    # 10 rows x 12 columns, value 20*row + col: a gradient both ways, so a transposed or mirrored
    # result would not match; each of B, G, R must be the grey value itself
    grey = (20 * np.arange(10)[:, None] + np.arange(12)[None, :]).astype(np.uint8)
    cv2.imwrite(str(tmp_path / "grey.png"), grey)
    image = read_image(tmp_path / "grey.png")
    assert image.shape == (10, 12, 3) and image.dtype == np.uint8
    for channel in range(3):
        assert np.array_equal(image[:, :, channel], grey)


def test_an_alpha_file_keeps_its_colours_and_drops_the_alpha(tmp_path):
    # B, G, R different per channel and per pixel; alpha varies from transparent to opaque. The
    # colour channels come back unchanged (not blended with black or white by alpha).
    rng = np.random.default_rng(7)
    bgra = rng.integers(0, 256, (9, 14, 4), dtype=np.uint8)
    bgra[:, :, 3] = np.linspace(0, 255, 14, dtype=np.uint8)[None, :]
    cv2.imwrite(str(tmp_path / "alpha.png"), bgra)
    image = read_image(tmp_path / "alpha.png")
    assert image.shape == (9, 14, 3)
    assert np.array_equal(image, bgra[:, :, :3])


def exif_jpeg(image: np.ndarray, orientation: int) -> bytes:
    """A quality-100 JPEG of `image` with an EXIF block (APP1) holding only the Orientation tag."""
    ok, jpeg = cv2.imencode(".jpg", image, [cv2.IMWRITE_JPEG_QUALITY, 100])
    assert ok
    jpeg = jpeg.tobytes()
    entry = struct.pack(">HHIHH", 0x0112, 3, 1, orientation, 0)  # tag, type SHORT, count 1, value
    tiff = b"MM\x00\x2a" + struct.pack(">IH", 8, 1) + entry + struct.pack(">I", 0)
    app1 = b"Exif\x00\x00" + tiff
    return jpeg[:2] + b"\xff\xe1" + struct.pack(">H", len(app1) + 2) + app1 + jpeg[2:]


# What each EXIF orientation means (EXIF 2.3, tag 0x0112): how the stored pixels are shown.
#   1 as stored; 2 mirrored left-right; 3 turned 180 degrees; 4 mirrored top-bottom;
#   5 transposed (stored row r is shown as column r); 6 turned 90 degrees clockwise;
#   7 transverse (turned 180 degrees, then transposed); 8 turned 90 degrees anticlockwise.
SHOWN = {1: lambda a: a, 2: lambda a: a[:, ::-1], 3: lambda a: a[::-1, ::-1], 4: lambda a: a[::-1, :],
         5: lambda a: a.transpose(1, 0, 2), 6: lambda a: np.rot90(a, -1), 7: lambda a: a[::-1, ::-1].transpose(1, 0, 2),
         8: lambda a: np.rot90(a, 1)}


@pytest.mark.parametrize("orientation", sorted(SHOWN))
def test_every_exif_orientation_shows_the_photo_the_right_way_up(tmp_path, orientation):
    # 3 x 5 flat blocks of 16 pixels (48 tall, 80 wide), 15 different colours: any wrong turn or
    # mirror puts a different colour at some block. JPEG blurs colour across block edges, but the
    # middle of each block keeps its colour within a few levels at quality 100: compare those.
    colours = np.random.default_rng(11).integers(20, 236, (3, 5, 3), dtype=np.uint8)
    stored = np.kron(colours, np.ones((16, 16, 1), np.uint8))
    path = tmp_path / "photo.jpg"
    path.write_bytes(exif_jpeg(stored, orientation))
    image = read_image(path)
    expected = SHOWN[orientation](stored)
    assert image.shape == expected.shape == ((48, 80, 3) if orientation <= 4 else (80, 48, 3))
    middles = (slice(8, None, 16), slice(8, None, 16))
    assert np.abs(image[middles].astype(int) - expected[middles].astype(int)).max() <= 4
    assert np.array_equal(read_image(path.read_bytes()), image), "bytes are turned the same way"


# --- annotated_name ------------------------------------------------------------------------------

def test_duplicate_names_are_numbered_from_2_in_order():
    # the first keeps its name; the k-th copy of a name becomes stem-k.suffix
    taken: set[str] = set()
    assert annotated_name(Path("a/photo.jpg"), taken) == "photo.jpg"
    assert taken == {"photo.jpg"}
    assert annotated_name(Path("b/photo.jpg"), taken) == "photo-2.jpg"
    assert taken == {"photo.jpg", "photo-2.jpg"}
    assert annotated_name(Path("c/photo.jpg"), taken) == "photo-3.jpg"
    assert annotated_name(Path("photo.jpg"), taken) == "photo-4.jpg"
    assert taken == {"photo.jpg", "photo-2.jpg", "photo-3.jpg", "photo-4.jpg"}


def test_a_numbered_name_already_taken_gets_its_own_number():
    # an input really called photo-2.jpg, after photo.jpg twice: photo-2.jpg is taken, so it is
    # numbered as a copy of itself (stem "photo-2"), and the next photo.jpg skips to photo-3.jpg
    taken: set[str] = set()
    names = [annotated_name(Path(p), taken) for p in ("x/photo.jpg", "y/photo.jpg", "photo-2.jpg", "z/photo.jpg")]
    assert names == ["photo.jpg", "photo-2.jpg", "photo-2-2.jpg", "photo-3.jpg"]
    assert taken == set(names)


def test_names_taken_before_the_first_call_are_avoided():
    taken = {"photo.jpg", "photo-2.jpg", "other.png"}
    assert annotated_name(Path("photo.jpg"), taken) == "photo-3.jpg"
    assert taken == {"photo.jpg", "photo-2.jpg", "photo-3.jpg", "other.png"}


@pytest.mark.parametrize("name", ["photo.jpg", "photo.png", "photo.webp", "photo.bmp", "photo.tiff", "photo.JPG"])
def test_formats_opencv_writes_keep_their_name(name):
    assert cv2.haveImageWriter(name)  # the premise: OpenCV has an encoder for this extension
    assert annotated_name(Path("in") / name, set()) == name


@pytest.mark.parametrize("name, expected", [("upload.bin", "upload.png"), ("scan", "scan.png"),
                                            ("archive.tar.xyz", "archive.tar.png")])
def test_other_names_become_png(name, expected):
    # no encoder for the extension (or none at all): the stem plus .png, the stem being all but the last suffix
    assert not cv2.haveImageWriter(name)
    assert annotated_name(Path(name), set()) == expected


def test_png_fallbacks_are_numbered_with_real_pngs():
    # two uploads called scan.bin are written as PNG and numbered as PNGs; a real scan.png after
    # them continues the same numbering
    taken: set[str] = set()
    names = [annotated_name(Path(p), taken) for p in ("a/scan.bin", "b/scan.bin", "scan.png", "scan.jpg")]
    assert names == ["scan.png", "scan-2.png", "scan-3.png", "scan.jpg"]


@pytest.mark.parametrize("name, expected", [("scan.pbm", "scan.png"), ("scan.pgm", "scan.png"), ("x.PBM", "x.png"),
                                            ("photo.ppm", "photo.ppm"), ("photo.JPG", "photo.JPG"),
                                            ("photo.tiff", "photo.tiff"), ("photo.webp", "photo.webp")])
def test_formats_without_colour_get_png_copies(name, expected, tmp_path):
    # an annotated copy is a colour drawing: PBM (one bit) and PGM (grey) cannot hold it, so their
    # copies are PNG (before, a .pbm input failed when its copy was written); colour formats stay
    assert annotated_name(Path(name), set()) == expected
    write_image(np.full((8, 10, 3), (0, 0, 255), np.uint8), tmp_path / expected)  # the copy can be written


def test_write_image_without_an_encoder_is_a_media_error(tmp_path):
    # cv2.imencode raises (rather than returning False) for an extension it has no encoder for
    target = tmp_path / "out.xyz"
    with pytest.raises(MediaError) as excinfo:
        write_image(np.zeros((4, 4, 3), np.uint8), target)
    assert message(excinfo) == f"{target}: OpenCV cannot encode this image format"
    assert list(tmp_path.iterdir()) == []


# --- write_image / prepare_out_dir ---------------------------------------------------------------

def test_write_image_refuses_what_the_format_cannot_hold_and_leaves_nothing(tmp_path):
    # PBM holds one-bit single-channel images only: OpenCV's encoder fails (returns no data) for a
    # colour image, which must be a MediaError naming the target, with no file, partial or not, left
    colour = np.full((8, 10, 3), 200, np.uint8)
    target = tmp_path / "out.pbm"
    with pytest.raises(MediaError) as excinfo:
        write_image(colour, target)
    assert message(excinfo) == f"{target}: OpenCV cannot encode this image format"
    assert list(tmp_path.iterdir()) == []


def test_write_image_writes_exactly_the_encoded_image(tmp_path):
    image = np.random.default_rng(2).integers(0, 256, (13, 21, 3), dtype=np.uint8)
    target = tmp_path / "sub" / "copy.png"  # the folder is made on the way
    write_image(image, target)
    assert [p.name for p in target.parent.iterdir()] == ["copy.png"]
    assert np.array_equal(cv2.imread(str(target)), image)  # PNG is lossless: the same pixels


def test_prepare_out_dir_makes_nested_folders_and_accepts_existing_ones(tmp_path):
    nested = tmp_path / "a" / "b" / "c"
    assert prepare_out_dir(str(nested)) == nested and nested.is_dir()  # parents made too
    (nested / "keep.txt").write_text("x")
    assert prepare_out_dir(nested) == nested  # an existing folder is fine, and left as it was
    assert [p.name for p in nested.iterdir()] == ["keep.txt"]


def test_prepare_out_dir_error_names_the_folder_and_the_reason(tmp_path):
    (tmp_path / "file.txt").write_text("x")
    out = tmp_path / "file.txt" / "out"  # its parent is a file
    with pytest.raises(MediaError) as excinfo:
        prepare_out_dir(out)
    assert message(excinfo) == f"{out}: cannot create the output folder (Not a directory)"


# --- print_faces ---------------------------------------------------------------------------------

@pytest.mark.parametrize("faces, header", [([], "0 faces"), ([HAPPY], "1 face"), ([HAPPY, ANGRY], "2 faces"),
                                           ([HAPPY, ANGRY, HAPPY], "3 faces")])
def test_print_faces_header_counts_faces_in_good_english(capsys, faces, header):
    print_faces(Path("dir/photo.jpg"), faces)
    lines = capsys.readouterr().out.splitlines()
    assert lines[0] == f"{Path('dir/photo.jpg')}: {header}"
    assert len(lines) == 1 + len(faces)  # one line per face, nothing else


def test_print_faces_lists_each_face_with_its_three_best_scores_best_first(capsys):
    print_faces(Path("photo.jpg"), [HAPPY, ANGRY])
    assert capsys.readouterr().out == f"photo.jpg: 2 faces\n{HAPPY_LINE}\n{ANGRY_LINE}\n"


# --- run_predict (what `ferkit predict` runs) -----------------------------------------------------

class StubPipeline:
    """Faces chosen by the image's width, so each test knows every face in advance."""

    def __init__(self, faces_by_width: dict[int, list[Face]]):
        self.faces_by_width, self.seen = faces_by_width, []

    def analyse(self, image):
        self.seen.append(image.shape)
        return self.faces_by_width[image.shape[1]]


@pytest.fixture
def stub(monkeypatch):
    """run_predict builds this stub instead of loading a model: 200-wide images (write_photo) hold
    HAPPY and ANGRY, 64-wide ones none, 90-wide ones ANGRY only."""
    pipeline = StubPipeline({200: [HAPPY, ANGRY], 64: [], 90: [ANGRY]})
    configs = []

    class Loader:
        @staticmethod
        def from_config(config):
            configs.append(config)
            return pipeline

    monkeypatch.setattr(images, "Pipeline", Loader)
    pipeline.configs = configs
    return pipeline


@pytest.fixture
def inputs(tmp_path):
    """three images: faces.jpg (200x150, two faces), none.png (64x48, no face), one.png (90x60, one face)"""
    folder = tmp_path / "in"
    folder.mkdir()
    faces = write_photo(folder / "faces.jpg")
    none = folder / "none.png"
    none.write_bytes(png_bytes(width=64, height=48, seed=1))
    one = folder / "one.png"
    one.write_bytes(png_bytes(width=90, height=60, seed=2))
    return [faces, none, one]


def test_run_predict_prints_text_by_default_and_writes_nothing(capsys, stub, inputs, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    before = sorted(tmp_path.rglob("*"))
    config = Config()
    assert run_predict([str(p) for p in inputs], config) == 0  # no as_json, no out_dir: the defaults
    faces, none, one = inputs
    assert capsys.readouterr().out == (f"{faces}: 2 faces\n{HAPPY_LINE}\n{ANGRY_LINE}\n"
                                       f"{none}: 0 faces\n"
                                       f"{one}: 1 face\n{ANGRY_LINE}\n")
    assert stub.configs == [config] and stub.seen == [(150, 200, 3), (48, 64, 3), (60, 90, 3)]
    assert sorted(tmp_path.rglob("*")) == before, "no output folder and no copies without out_dir"


def test_run_predict_json_is_one_object_with_every_image_in_order(capsys, stub, inputs):
    assert run_predict(inputs, Config(), as_json=True) == 0
    out = capsys.readouterr().out
    assert out.count("\n") == 1 and out.endswith("\n"), "one line of JSON and no text lines"
    faces, none, one = inputs
    assert json.loads(out) == {"images": [{"path": str(faces), "faces": [HAPPY_JSON, ANGRY_JSON]},
                                          {"path": str(none), "faces": []},
                                          {"path": str(one), "faces": [ANGRY_JSON]}]}


def test_run_predict_writes_annotated_copies_with_unique_names(capsys, stub, inputs, tmp_path):
    # faces.jpg twice (from two folders) and an upload without an image extension: faces.jpg,
    # faces-2.jpg, and upload.png (PNG, as OpenCV has no writer for .bin)
    faces, none, one = inputs
    again = tmp_path / "again" / "faces.jpg"
    again.parent.mkdir()
    write_photo(again, seed=1)
    upload = tmp_path / "upload.bin"
    upload.write_bytes(one.read_bytes())
    out_dir = tmp_path / "out" / "nested"
    assert run_predict([faces, again, none, upload], Config(), as_json=True, out_dir=out_dir) == 0
    assert sorted(p.name for p in out_dir.iterdir()) == ["faces-2.jpg", "faces.jpg", "none.png", "upload.png"]
    # each copy is its own input with its own faces drawn, encoded in the copy's format
    for source, name, drawn_faces in [(faces, "faces.jpg", [HAPPY, ANGRY]), (again, "faces-2.jpg", [HAPPY, ANGRY]),
                                      (none, "none.png", []), (upload, "upload.png", [ANGRY])]:
        drawn = draw_faces(read_image(source), drawn_faces)
        expected = cv2.imencode(Path(name).suffix, drawn)[1].tobytes()
        assert (out_dir / name).read_bytes() == expected, name
    assert not np.array_equal(cv2.imread(str(out_dir / "upload.png")), read_image(one)), "faces are drawn"
    assert np.array_equal(cv2.imread(str(out_dir / "none.png")), read_image(none)), "nothing to draw"
    report = json.loads(capsys.readouterr().out)
    assert [image["path"] for image in report["images"]] == [str(faces), str(again), str(none), str(upload)]


def test_run_predict_reports_a_missing_file_and_loads_nothing_when_nothing_is_readable(stub, inputs, tmp_path,
                                                                                        capsys):
    missing = tmp_path / "in" / "missing.jpg"
    out_dir = tmp_path / "out"
    assert run_predict([*inputs, missing], Config(), as_json=True) == 2
    report = json.loads(capsys.readouterr().out)
    assert len(report["images"]) == 3 and report["errors"] == [{"path": str(missing), "error": f"{missing}: no such file"}]
    stub.configs.clear()
    assert run_predict([missing], Config(), out_dir=out_dir) == 2
    assert stub.configs == [] and not out_dir.exists()


def test_run_predict_refuses_to_overwrite_an_input_before_any_work(stub, inputs, tmp_path):
    # `--out` the photos' own folder (the copy faces.jpg would replace faces.jpg), a link to an input,
    # and another input's folder (a/faces.jpg's copy would be b/faces.jpg, an input too): refused
    # before the model loads, every input unchanged
    faces, none, one = inputs
    before = {path: path.read_bytes() for path in inputs}
    with pytest.raises(MediaError) as excinfo:
        run_predict(inputs, Config(), out_dir=faces.parent)
    assert message(excinfo) == f"{faces}: an output may not overwrite an input photo (choose another --out folder)"
    linked = tmp_path / "linked"
    linked.mkdir()
    (linked / "none.png").symlink_to(none)
    with pytest.raises(MediaError) as excinfo:
        run_predict([faces, none], Config(), out_dir=linked)
    assert message(excinfo) == \
           f"{linked / 'none.png'}: an output may not overwrite an input photo (choose another --out folder)"
    other = tmp_path / "b" / "faces.jpg"
    other.parent.mkdir()
    write_photo(other, seed=1)
    with pytest.raises(MediaError) as excinfo:
        run_predict([faces, other], Config(), out_dir=other.parent)
    assert message(excinfo) == f"{other}: an output may not overwrite an input photo (choose another --out folder)"
    assert stub.configs == [] and stub.seen == []
    assert {path: path.read_bytes() for path in inputs} == before


def test_a_name_that_is_not_utf8_keeps_its_format_and_is_printed_readably(capsys, stub, inputs, tmp_path):
    # OpenCV's haveImageWriter crashed (segfault) on such a name; the name is not printable as it is
    # (strict JSON parsers refuse lone surrogates), so its bytes are shown as \\xNN
    probe = "import os, pathlib; from ferkit.inference.images import annotated_name; " \
            "print(ascii(annotated_name(pathlib.Path(os.fsdecode(b'a\\xff\\xfeb.jpg')), set())))"
    done = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, timeout=120)
    assert (done.returncode, done.stdout) == (0, "'a\\udcff\\udcfeb.jpg'\n"), "a crash here takes no pytest with it"
    faces = inputs[0].rename(inputs[0].with_name(os.fsdecode(b"a\xff\xfeb.jpg")))
    shown = str(tmp_path / "in") + "/a\\xff\\xfeb.jpg"
    assert run_predict([faces], Config(), out_dir=tmp_path / "out") == 0
    assert capsys.readouterr().out == f"{shown}: 2 faces\n{HAPPY_LINE}\n{ANGRY_LINE}\n"
    assert os.listdir(os.fsencode(tmp_path / "out")) == [b"a\xff\xfeb.jpg"]
    expected = cv2.imencode(".jpg", draw_faces(read_image(faces), [HAPPY, ANGRY]))[1].tobytes()
    assert (tmp_path / "out" / faces.name).read_bytes() == expected
    assert run_predict([faces], Config(), as_json=True) == 0
    assert json.loads(capsys.readouterr().out)["images"][0]["path"] == shown
