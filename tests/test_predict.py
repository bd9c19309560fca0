"""Still images: read_image, predict_image and `ferkit predict` (JSON, annotated copies, bad input)."""

from __future__ import annotations

import json
import os
import struct

import cv2
import numpy as np
import pytest
from conftest import bright_box_detector, run_ferkit

from ferkit.cli import main
from ferkit.config import Config, DetectorConfig, PipelineConfig
from ferkit.errors import MediaError
from ferkit.inference import images
from ferkit.inference.classifier import FacialExpressionModel
from ferkit.inference.images import predict_image, read_image
from ferkit.inference.pipeline import Pipeline
from ferkit.labels import CLASS_NAMES
from ferkit.vision.detectors import FaceDetector


class FixedDetector(FaceDetector):
    """Always 'finds' the same boxes: the JSON and drawing paths without a real face."""

    def __init__(self, boxes):
        super().__init__(DetectorConfig(min_face=1))
        self.boxes = np.asarray(boxes)

    def _detect(self, small, min_size):
        return self.boxes


@pytest.fixture
def blank_png(tmp_path):
    path = tmp_path / "blank.png"
    cv2.imwrite(str(path), np.full((120, 160, 3), 90, np.uint8))
    return path


def assert_face_record(face: dict, image_shape):
    x, y, w, h = face["box"]
    assert all(isinstance(v, int) for v in face["box"]) and w > 0 and h > 0
    assert 0 <= x < image_shape[1] and 0 <= y < image_shape[0]
    assert list(face["scores"]) == list(CLASS_NAMES)
    assert sum(face["scores"].values()) == pytest.approx(1.0, abs=1e-3)
    assert face["emotion"] == max(face["scores"], key=face["scores"].get)


# --- read_image ----------------------------------------------------------------------------

def test_read_image_from_a_path_or_bytes(blank_png):
    from_path = read_image(blank_png)
    from_bytes = read_image(blank_png.read_bytes())
    assert from_path.shape == (120, 160, 3) and from_path.dtype == np.uint8
    assert np.array_equal(from_path, from_bytes)


def test_read_image_gives_colour_for_gray_and_alpha_files(tmp_path):
    cv2.imwrite(str(tmp_path / "gray.png"), np.zeros((10, 12), np.uint8))
    cv2.imwrite(str(tmp_path / "alpha.png"), np.zeros((10, 12, 4), np.uint8))
    assert read_image(tmp_path / "gray.png").shape == (10, 12, 3)
    assert read_image(tmp_path / "alpha.png").shape == (10, 12, 3)


@pytest.mark.parametrize("content, message", [
    (b"", "empty"),
    (b"\x89PNG\r\n\x1a\n" + bytes(range(256)) * 4, "not an image"),  # a PNG header, then junk
    (b"hello, this is text\n" * 20, "not an image"),
])
def test_read_image_rejects_bad_files(tmp_path, content, message):
    path = tmp_path / "bad.jpg"
    path.write_bytes(content)
    with pytest.raises(MediaError, match=message):
        read_image(path)
    with pytest.raises(MediaError, match=message):
        read_image(content)


def with_exif_orientation(jpeg: bytes, orientation: int) -> bytes:
    """The JPEG with an EXIF block (APP1) holding only the Orientation tag (0x0112)."""
    entry = struct.pack(">HHIHH", 0x0112, 3, 1, orientation, 0)  # tag, type SHORT, count 1, value
    tiff = b"MM\x00\x2a" + struct.pack(">IH", 8, 1) + entry + struct.pack(">I", 0)
    app1 = b"Exif\x00\x00" + tiff
    return jpeg[:2] + b"\xff\xe1" + struct.pack(">H", len(app1) + 2) + app1 + jpeg[2:]


# The stored photo is 100 wide and 60 tall, with a 40x20 face at x 10, y 5 (near the top-left).
# (orientation, shape shown, where the face is shown): 6 turns it clockwise, 8 anticlockwise.
EXIF_CASES = [(1, (60, 100), (10, 5, 40, 20)), (3, (60, 100), (50, 35, 40, 20)),
              (6, (100, 60), (35, 10, 20, 40)), (8, (100, 60), (5, 50, 20, 40))]


@pytest.mark.parametrize("orientation, shape, box", EXIF_CASES)
def test_exif_orientation_is_applied_and_faces_are_where_the_photo_shows_them(tmp_path, classifier, orientation,
                                                                               shape, box):
    stored = np.full((60, 100, 3), 30, np.uint8)
    stored[5:25, 10:50] = 255
    ok, jpeg = cv2.imencode(".jpg", stored, [cv2.IMWRITE_JPEG_QUALITY, 100])
    path = tmp_path / "photo.jpg"
    path.write_bytes(with_exif_orientation(jpeg.tobytes(), orientation))
    image = read_image(path)
    assert image.shape[:2] == shape
    pipeline = Pipeline(classifier, bright_box_detector(min_face=10), PipelineConfig())
    [face] = predict_image(pipeline, image)["faces"]
    assert all(abs(found - expected) <= 1 for found, expected in zip(face["box"], box)), face["box"]


def test_read_image_rejects_missing_files_and_folders(tmp_path):
    with pytest.raises(MediaError, match="no such file"):
        read_image(tmp_path / "missing.jpg")
    with pytest.raises(MediaError, match="not a file"):
        read_image(tmp_path)


def test_read_image_rejects_a_truncated_jpeg(tmp_path):
    ok, encoded = cv2.imencode(".jpg", np.random.default_rng(0).integers(0, 255, (200, 200, 3), np.uint8))
    with pytest.raises(MediaError):
        read_image(encoded.tobytes()[:200])


# --- predict_image -------------------------------------------------------------------------

def test_read_image_refuses_a_decompression_bomb():
    # 81 megapixels of zeros compress to about 90 KB; decoding must fail cleanly, not allocate 243 MB
    ok, encoded = cv2.imencode(".png", np.zeros((9000, 9000), np.uint8))
    assert ok and len(encoded) < 200_000
    with pytest.raises(MediaError, match="too many pixels"):
        read_image(encoded.tobytes())


def test_a_large_tiff_is_read_without_pillows_warnings(recwarn):
    # the size check reads the first MiB only; a TIFF's directory lies past it, and Pillow warned "Corrupt EXIF
    # data" into the server log for every such upload
    image = np.random.default_rng(0).integers(0, 255, (1200, 900, 3), np.uint8)
    ok, encoded = cv2.imencode(".tif", image)
    assert ok and len(encoded) > 2**20
    assert read_image(encoded.tobytes()).shape == (1200, 900, 3)
    assert [str(w.message) for w in recwarn] == []


def test_predict_image_reports_every_face(classifier):
    pipeline = Pipeline(classifier, FixedDetector([[10, 10, 40, 40], [80, 20, 60, 60]]), PipelineConfig())
    image = np.random.default_rng(1).integers(0, 255, (120, 160, 3), np.uint8)
    result = predict_image(pipeline, image)
    assert [face["box"] for face in result["faces"]] == [[80, 20, 60, 60], [10, 10, 40, 40]]  # largest first
    for face in result["faces"]:
        assert_face_record(face, image.shape)
        assert "face_id" not in face, "still images have no face ids"
    json.dumps(result)


def test_predict_image_without_faces_gives_an_empty_list(classifier):
    pipeline = Pipeline(classifier, FixedDetector(np.zeros((0, 4))), PipelineConfig())
    assert predict_image(pipeline, np.zeros((50, 50, 3), np.uint8)) == {"faces": []}


@pytest.mark.shared
def test_predict_image_with_haar_on_the_group_photo(tiny_model_dir, shared_dir):
    pipeline = Pipeline.from_config(Config(model=str(tiny_model_dir)))
    image = read_image(shared_dir / "data" / "media" / "photos" / "multi_face.jpg")
    faces = predict_image(pipeline, image)["faces"]
    assert 4 <= len(faces) <= 6  # five people; Haar may add one false face
    for face in faces:
        assert_face_record(face, image.shape)


# --- ferkit predict ------------------------------------------------------------------------

@pytest.mark.shared
def test_cli_json_for_several_images(ferkit, tiny_model_dir, shared_dir, blank_png):
    photo = shared_dir / "data" / "media" / "photos" / "multi_face.jpg"
    code, out, err = ferkit("predict", photo, blank_png, "--json", "--model", tiny_model_dir)
    assert code == 0, err
    report = json.loads(out)
    assert [image["path"] for image in report["images"]] == [str(photo), str(blank_png)]
    assert len(report["images"][0]["faces"]) >= 4
    assert report["images"][1]["faces"] == [], "an image without faces is an empty list, not an error"


@pytest.mark.shared
def test_cli_text_output_and_annotated_copies(ferkit, tmp_path, tiny_model_dir, shared_dir, blank_png):
    photo = shared_dir / "data" / "media" / "photos" / "multi_face.jpg"
    same_name = tmp_path / "other" / "blank.png"
    same_name.parent.mkdir()
    same_name.write_bytes(blank_png.read_bytes())
    out_dir = tmp_path / "annotated" / "nested"
    code, out, err = ferkit("predict", photo, blank_png, same_name, "--out", out_dir, "--model", tiny_model_dir)
    assert code == 0, err
    assert f"{photo}: " in out and f"{blank_png}: 0 faces" in out
    assert sorted(p.name for p in out_dir.iterdir()) == ["blank-2.png", "blank.png", "multi_face.jpg"]
    annotated = cv2.imread(str(out_dir / "multi_face.jpg"))
    assert annotated.shape == cv2.imread(str(photo)).shape
    assert cv2.imread(str(out_dir / "blank.png")).shape == (120, 160, 3)


def test_cli_missing_image_is_one_error_line_and_the_other_image_is_still_reported(ferkit, tmp_path, tiny_model_dir,
                                                                                    blank_png):
    missing = tmp_path / "missing.jpg"
    code, out, err = ferkit("predict", blank_png, missing, "--json", "--model", tiny_model_dir)
    assert code == 2
    assert err == f"ferkit predict: error: {missing}: no such file\n"
    assert json.loads(out) == {"images": [{"path": str(blank_png), "faces": []}],
                               "errors": [{"path": str(missing), "error": f"{missing}: no such file"}]}


NOT_AN_IMAGE = "not an image OpenCV can read (corrupt, unsupported, or too many pixels)"


@pytest.mark.parametrize("content, problem", [(b"", "the file is empty"), (b"garbage" * 100, NOT_AN_IMAGE)],
                         ids=["empty", "garbage"])
def test_cli_corrupt_or_empty_image_is_an_error_and_writes_nothing(ferkit, tmp_path, tiny_model_dir, content, problem):
    bad = tmp_path / "bad.png"
    bad.write_bytes(content)
    out_dir = tmp_path / "out"
    code, out, err = ferkit("predict", bad, "--json", "--out", out_dir, "--model", tiny_model_dir)
    assert code == 2 and err == f"ferkit predict: error: {bad}: {problem}\n"
    assert json.loads(out) == {"images": [], "errors": [{"path": str(bad), "error": f"{bad}: {problem}"}]}
    assert list(out_dir.iterdir()) == []


def test_cli_unwritable_out_folder_is_an_error(ferkit, tmp_path, tiny_model_dir, blank_png):
    # not one image's problem: it stops the run before any image is read (the missing one is not reported)
    not_a_folder = tmp_path / "file.txt"
    not_a_folder.write_text("x")
    code, out, err = ferkit("predict", blank_png, tmp_path / "missing.jpg", "--json", "--out", not_a_folder / "out",
                            "--model", tiny_model_dir)
    assert (code, out) == (2, "")
    assert err == (f"ferkit predict: error: {not_a_folder / 'out'}: cannot be created ({not_a_folder} is a file, "
                   "not a folder)\n")  # said before the model loads, as every command says it


# --- ferkit predict with bad images among good ones -------------------------------------------
# Stand-in faces: bright boxes on grey, found by the bright-box detector (tests/conftest.py), classified
# by the tiny model, so each photo has a known number of faces.

def box_photo(path, boxes):
    image = np.full((120, 160, 3), 40, np.uint8)
    for x, y, w, h in boxes:
        image[y:y + h, x:x + w] = 255
    assert cv2.imwrite(str(path), image)
    return path


@pytest.fixture
def box_faces(monkeypatch, classifier):
    """`ferkit predict` finds the bright boxes of box_photo as its faces."""
    class Loader:
        @staticmethod
        def from_config(config):
            return Pipeline(classifier, bright_box_detector(min_face=10), PipelineConfig())

    monkeypatch.setattr(images, "Pipeline", Loader)


@pytest.fixture
def photos(tmp_path):
    """two.png (two faces), one.jpg (one face), corrupt.jpg (a JPEG cut short), all in tmp_path/in."""
    folder = tmp_path / "in"
    folder.mkdir()
    two = box_photo(folder / "two.png", [(10, 10, 40, 40), (90, 50, 50, 50)])
    one = box_photo(folder / "one.jpg", [(60, 30, 45, 45)])
    corrupt = folder / "corrupt.jpg"
    corrupt.write_bytes(one.read_bytes()[:150])
    return two, one, corrupt


def test_cli_a_corrupt_image_is_one_error_line_and_the_others_are_still_analysed(ferkit, tmp_path, tiny_model_dir,
                                                                                 box_faces, photos):
    two, one, corrupt = photos
    code, clean_out, err = ferkit("predict", two, one, "--out", tmp_path / "clean", "--model", tiny_model_dir)
    assert (code, err) == (0, "")
    code, out, err = ferkit("predict", two, corrupt, one, "--out", tmp_path / "out", "--model", tiny_model_dir)
    assert code == 2
    assert err == f"ferkit predict: error: {corrupt}: {NOT_AN_IMAGE}\n"
    # both good images, in order, exactly as a run without the corrupt one reports them
    assert out == clean_out
    assert [line for line in out.splitlines() if not line.startswith(" ")] == [f"{two}: 2 faces", f"{one}: 1 face"]
    assert len(out.splitlines()) == 2 + 1 + 1 + 1
    # annotated copies for the good images only, the same bytes as the clean run's
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == ["one.jpg", "two.png"]
    for name in ["one.jpg", "two.png"]:
        assert (tmp_path / "out" / name).read_bytes() == (tmp_path / "clean" / name).read_bytes(), name


def test_cli_json_has_every_good_image_and_an_errors_list_in_input_order(ferkit, tmp_path, tiny_model_dir, box_faces,
                                                                         photos):
    two, one, corrupt = photos
    missing = tmp_path / "in" / "missing.png"
    code, clean_out, err = ferkit("predict", two, one, "--json", "--model", tiny_model_dir)
    assert (code, err) == (0, "")
    clean = json.loads(clean_out)
    assert list(clean) == ["images"], "no errors key when every image was read (the web API's shape)"
    assert [len(image["faces"]) for image in clean["images"]] == [2, 1]
    code, out, err = ferkit("predict", corrupt, two, missing, one, "--json", "--model", tiny_model_dir)
    assert code == 2
    # the missing file is found before the model loads, but reported in its place among the others
    assert err == f"ferkit predict: error: {corrupt}: {NOT_AN_IMAGE}\n" \
                  f"ferkit predict: error: {missing}: no such file\n"
    assert out.count("\n") == 1 and json.loads(out) == {
        "images": clean["images"],
        "errors": [{"path": str(corrupt), "error": f"{corrupt}: {NOT_AN_IMAGE}"},
                   {"path": str(missing), "error": f"{missing}: no such file"}]}


def test_cli_every_image_bad_is_exit_2_with_no_text_output(ferkit, tmp_path, tiny_model_dir, box_faces, photos):
    two, one, corrupt = photos
    folder, missing = tmp_path / "in", tmp_path / "missing.jpg"
    expected_err = (f"ferkit predict: error: {missing}: no such file\n"
                    f"ferkit predict: error: {folder}: is a folder; use `ferkit batch` for folders\n"
                    f"ferkit predict: error: {corrupt}: {NOT_AN_IMAGE}\n")
    code, out, err = ferkit("predict", missing, folder, corrupt, "--out", tmp_path / "out", "--model", tiny_model_dir)
    assert (code, out, err) == (2, "", expected_err)
    assert list((tmp_path / "out").iterdir()) == []
    code, out, err = ferkit("predict", missing, folder, corrupt, "--json", "--model", tiny_model_dir)
    assert (code, err) == (2, expected_err)
    assert json.loads(out) == {"images": [], "errors": [
        {"path": str(missing), "error": f"{missing}: no such file"},
        {"path": str(folder), "error": f"{folder}: is a folder; use `ferkit batch` for folders"},
        {"path": str(corrupt), "error": f"{corrupt}: {NOT_AN_IMAGE}"}]}


def test_cli_no_readable_file_loads_no_model_and_makes_no_folder(ferkit, tmp_path):
    # nothing to analyse: the per-file errors, not the model's (which is never loaded)
    missing, out_dir = tmp_path / "missing.jpg", tmp_path / "out"
    code, out, err = ferkit("predict", missing, "--out", out_dir, "--model", tmp_path / "no_such_model")
    assert (code, out, err) == (2, "", f"ferkit predict: error: {missing}: no such file\n")
    assert not out_dir.exists()


def test_cli_a_bad_model_stops_before_any_image_is_read(ferkit, tmp_path, photos):
    two, one, corrupt = photos
    code, out, err = ferkit("predict", two, corrupt, "--json", "--out", tmp_path / "out", "--model",
                            tmp_path / "no_such_model")
    assert (code, out) == (2, "")
    # one line, the model's (its list of bundled models may grow), and nothing about the corrupt image
    assert err.count("\n") == 1
    assert err.startswith(f"ferkit predict: error: model '{tmp_path / 'no_such_model'}' not found: ")
    assert not (tmp_path / "out").exists()  # made only once the model loaded


def test_annotated_copy_of_a_file_without_image_extension_is_png(ferkit, tmp_path, tiny_model_dir, blank_png):
    upload = tmp_path / "upload.bin"  # PNG bytes under a name OpenCV cannot pick an encoder by
    upload.write_bytes(blank_png.read_bytes())
    code, out, err = ferkit("predict", upload, "--out", tmp_path / "out", "--model", tiny_model_dir)
    assert code == 0, err
    assert [p.name for p in (tmp_path / "out").iterdir()] == ["upload.png"]


def test_cli_refuses_an_out_folder_that_would_overwrite_the_photo(ferkit, tmp_path, tiny_model_dir, blank_png):
    original = blank_png.read_bytes()
    code, out, err = ferkit("predict", blank_png, "--out", tmp_path, "--model", tiny_model_dir)
    assert (code, out) == (2, "")
    assert err == f"ferkit predict: error: {blank_png}: an output may not overwrite an input photo " \
                  "(choose another --out folder)\n"
    assert blank_png.read_bytes() == original


def test_cli_photo_named_in_bytes_that_are_not_utf8(tmp_path, tiny_model_dir, blank_png):
    # the name crashed OpenCV (exit 139, no message): now read, annotated under its own name, and
    # printed with its odd bytes as \\xNN; in a fresh interpreter, so a crash cannot take pytest along
    photo = blank_png.rename(tmp_path / os.fsdecode(b"a\xff\xfeb.png"))
    done = run_ferkit("predict", photo, "--out", tmp_path / "out", "--model", tiny_model_dir)
    assert (done.returncode, done.stderr) == (0, "")
    assert done.stdout == f"{tmp_path}/a\\xff\\xfeb.png: 0 faces\n"
    assert os.listdir(os.fsencode(tmp_path / "out")) == [b"a\xff\xfeb.png"]
    assert np.array_equal(read_image(tmp_path / "out" / photo.name), read_image(photo)), "no face: nothing drawn"


# --- the bundled ferplus model ---------------------------------------------------------------

def test_bundled_ferplus_model_loads_both_ways_and_predicts():
    from ferkit.inference.classifier import resolve_model

    folder = resolve_model("ferplus")
    model = FacialExpressionModel.load("ferplus")
    assert (model.name, model.backend) == ("ferplus", "onnx") and model.card["train"]["labels"] == "ferplus"
    faces = np.random.default_rng(5).integers(0, 256, (6, 48, 48)).astype(np.uint8)
    onnx = model.predict_proba(faces)
    assert onnx.shape == (6, 7) and np.allclose(onnx.sum(axis=1), 1, atol=1e-5)
    keras = FacialExpressionModel(folder / "model.json", folder / "model.weights.h5").predict_proba(faces)
    np.testing.assert_allclose(onnx, keras, atol=1e-4)


@pytest.mark.shared
def test_bundled_ferplus_model_scores_what_its_card_says(shared_dir, capsys):
    """The card's headline: accuracy on PublicTest under the FER+ majority-vote protocol."""
    import re

    from ferkit.inference.classifier import CARD_FILE, resolve_model

    card = (resolve_model("ferplus") / CARD_FILE).read_text()
    faces, percent = re.search(r"majority-vote protocol \(([\d,]+) faces\) \*\*([\d.]+)%\*\*", card).groups()
    data = shared_dir / "data" / "fer2013" / "fer2013.csv.gz"
    assert main(["evaluate", "--data", str(data), "--model", "ferplus", "--labels", "ferplus", "--split",
                 "PublicTest", "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["n"] == int(faces.replace(",", ""))
    assert round(100 * report["accuracy"], 2) == float(percent)
