"""Still images: read_image, predict_image and `ferkit predict` (JSON, annotated copies, bad input)."""

from __future__ import annotations

import json

import cv2
import numpy as np
import pytest

from ferkit.cli import main
from ferkit.config import Config, DetectorConfig, PipelineConfig
from ferkit.errors import MediaError
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


@pytest.fixture(scope="module")
def classifier(tiny_model_dir):
    return FacialExpressionModel(tiny_model_dir)


@pytest.fixture
def blank_png(tmp_path):
    path = tmp_path / "blank.png"
    cv2.imwrite(str(path), np.full((120, 160, 3), 90, np.uint8))
    return path


def run_cli(capsys, *args):
    code = main(["predict", *map(str, args)])
    out, err = capsys.readouterr()
    return code, out, err


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
def test_cli_json_for_several_images(capsys, tiny_model_dir, shared_dir, blank_png):
    photo = shared_dir / "data" / "media" / "photos" / "multi_face.jpg"
    code, out, err = run_cli(capsys, photo, blank_png, "--json", "--model", tiny_model_dir)
    assert code == 0, err
    report = json.loads(out)
    assert [image["path"] for image in report["images"]] == [str(photo), str(blank_png)]
    assert len(report["images"][0]["faces"]) >= 4
    assert report["images"][1]["faces"] == [], "an image without faces is an empty list, not an error"


@pytest.mark.shared
def test_cli_text_output_and_annotated_copies(capsys, tmp_path, tiny_model_dir, shared_dir, blank_png):
    photo = shared_dir / "data" / "media" / "photos" / "multi_face.jpg"
    same_name = tmp_path / "other" / "blank.png"
    same_name.parent.mkdir()
    same_name.write_bytes(blank_png.read_bytes())
    out_dir = tmp_path / "annotated" / "nested"
    code, out, err = run_cli(capsys, photo, blank_png, same_name, "--out", out_dir, "--model", tiny_model_dir)
    assert code == 0, err
    assert f"{photo}: " in out and f"{blank_png}: 0 faces" in out
    assert sorted(p.name for p in out_dir.iterdir()) == ["blank-2.png", "blank.png", "multi_face.jpg"]
    annotated = cv2.imread(str(out_dir / "multi_face.jpg"))
    assert annotated.shape == cv2.imread(str(photo)).shape
    assert cv2.imread(str(out_dir / "blank.png")).shape == (120, 160, 3)


def test_cli_missing_image_is_one_error_line(capsys, tmp_path, tiny_model_dir, blank_png):
    code, out, err = run_cli(capsys, blank_png, tmp_path / "missing.jpg", "--json", "--model", tiny_model_dir)
    assert code == 2 and out == ""
    assert err.strip().splitlines() == [f"ferkit predict: error: {tmp_path / 'missing.jpg'}: no such file"]


@pytest.mark.parametrize("content", [b"", b"garbage" * 100])
def test_cli_corrupt_or_empty_image_is_an_error_and_writes_nothing(capsys, tmp_path, tiny_model_dir, content):
    bad = tmp_path / "bad.png"
    bad.write_bytes(content)
    out_dir = tmp_path / "out"
    code, out, err = run_cli(capsys, bad, "--json", "--out", out_dir, "--model", tiny_model_dir)
    assert code == 2 and out == "" and len(err.strip().splitlines()) == 1
    assert "bad.png" in err
    assert list(out_dir.iterdir()) == []


def test_cli_unwritable_out_folder_is_an_error(capsys, tmp_path, tiny_model_dir, blank_png):
    not_a_folder = tmp_path / "file.txt"
    not_a_folder.write_text("x")
    code, out, err = run_cli(capsys, blank_png, "--out", not_a_folder / "out", "--model", tiny_model_dir)
    assert code == 2 and len(err.strip().splitlines()) == 1 and "cannot create the output folder" in err


def test_annotated_copy_of_a_file_without_image_extension_is_png(capsys, tmp_path, tiny_model_dir, blank_png):
    upload = tmp_path / "upload.bin"  # PNG bytes under a name OpenCV cannot pick an encoder by
    upload.write_bytes(blank_png.read_bytes())
    code, out, err = run_cli(capsys, upload, "--out", tmp_path / "out", "--model", tiny_model_dir)
    assert code == 0, err
    assert [p.name for p in (tmp_path / "out").iterdir()] == ["upload.png"]
