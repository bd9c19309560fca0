"""The web app through Flask's test client: every route, its bad inputs, and the background parts
(MJPEG broadcaster, camera sessions, video jobs), with real threads where work runs in parallel.
Through the real waitress server: tests/test_web_server.py; fuzzing: tests/test_web_fuzz.py."""

from __future__ import annotations

import ast
import errno
import html
import io
import json
import re
import subprocess
import sys
import threading
import time
import urllib.request
from pathlib import Path

import cv2
import numpy as np
import pytest
from conftest import (FakeCapture, ferkit_threads, png_bytes, serve_on_loopback, temporary_jobs_folders,
                      wait_for_job, wait_until, write_video)

from ferkit import __version__
from ferkit.cli import main as cli_main
from ferkit.config import Config, ServeConfig
from ferkit.labels import CLASS_NAMES
from ferkit.web import create_app
from ferkit.web.engines import broadcast as stream_module
from ferkit.web.engines.broadcast import BOUNDARY, FrameBroadcaster
from ferkit.web.engines.sessions import CameraSessions

from ferkit.web.engines import jobs as jobs_module
from ferkit.web.engines.limits import Busy, Slots

FACE_PHOTO = "data/media/photos/multi_face.jpg"
WEB_PACKAGE = Path(__file__).resolve().parents[1] / "src" / "ferkit" / "web"

# From conftest.py: pipeline (one per module), make_app, gated; and no thread or jobs folder outlives the module.
pytestmark = pytest.mark.usefixtures("nothing_left_behind")


# --- fixtures -------------------------------------------------------------------------------------------
@pytest.fixture
def app(make_app):
    return make_app()


@pytest.fixture
def client(app):
    return app.test_client()


@pytest.fixture
def face_photo(shared_dir) -> Path:
    return shared_dir / FACE_PHOTO


def assert_json_error(response, status: int) -> dict:
    assert response.status_code == status
    assert response.is_json, response.data[:200]
    body = response.get_json()
    assert body["error"]["status"] == status and body["error"]["message"]
    assert b"Traceback" not in response.data
    return body


def assert_face_shape(face: dict) -> None:
    assert len(face["box"]) == 4 and all(isinstance(v, int) for v in face["box"])
    assert face["emotion"] in CLASS_NAMES
    assert list(face["scores"]) == list(CLASS_NAMES)
    assert sum(face["scores"].values()) == pytest.approx(1.0, abs=1e-3)
    assert face["emotion"] == max(face["scores"], key=face["scores"].get)


# --- pages and health -------------------------------------------------------------------------------------
def test_health_names_model_and_version(client, tiny_model_dir):
    body = client.get("/api/health").get_json()
    assert body["status"] == "ok"
    assert body["model"] == tiny_model_dir.name
    assert body["version"] == __version__


def test_index_without_source_says_so_and_offers_the_camera(client):
    page = client.get("/").get_data(as_text=True)
    assert "No server-side video source is configured" in page
    assert 'id="live-feed"' not in page
    assert 'id="camera-start"' in page and "app.js" in page
    config = json.loads(page.split('id="ferkit-config" type="application/json">')[1].split("</script>")[0])
    assert config["class_names"] == list(CLASS_NAMES)
    assert set(config["colours"]) == set(CLASS_NAMES)


def test_index_with_source_shows_the_live_feed(make_app, tmp_path):
    source = write_video(tmp_path / "clip.avi", 12, fps=12.0)
    page = make_app(source=str(source)).test_client().get("/").get_data(as_text=True)
    assert 'id="live-feed"' in page and 'src="/video_feed"' in page


def test_static_files_are_served(client):
    assert b"getUserMedia" in client.get("/static/app.js").data
    assert client.get("/static/style.css").status_code == 200


def test_unknown_page_is_a_friendly_html_404(client):
    response = client.get("/no/such/page")
    assert response.status_code == 404 and response.mimetype == "text/html"
    assert b"Back to the start page" in response.data


def test_never_in_debug_mode(app):
    assert not app.debug


# --- /api/predict ------------------------------------------------------------------------------------------
@pytest.mark.shared
def test_predict_multipart_matches_cli_predict_json(client, face_photo, tiny_model_dir, capsys):
    response = client.post("/api/predict", data={"image": (face_photo.open("rb"), "people.jpg")})
    assert response.status_code == 200
    body = response.get_json()
    assert cli_main(["predict", "--json", "--model", str(tiny_model_dir), str(face_photo)]) == 0
    cli = json.loads(capsys.readouterr().out)
    assert body["images"][0]["path"] == "people.jpg"
    assert body["images"][0]["faces"] == cli["images"][0]["faces"]
    assert list(body["images"][0]) == list(cli["images"][0])  # same keys, same order
    assert len(body["images"][0]["faces"]) >= 3
    for face in body["images"][0]["faces"]:
        assert_face_shape(face)


@pytest.mark.shared
def test_predict_raw_body_gives_the_same_faces(client, face_photo):
    data = face_photo.read_bytes()
    raw = client.post("/api/predict", data=data, content_type="image/jpeg").get_json()
    form = client.post("/api/predict", data={"image": (io.BytesIO(data), "a.jpg")}).get_json()
    assert raw["images"][0]["path"] is None
    assert raw["images"][0]["faces"] == form["images"][0]["faces"]


@pytest.mark.parametrize("content_type", ["image/png", "application/octet-stream",
                                          "application/x-www-form-urlencoded"])  # curl --data-binary's default
def test_predict_raw_image_without_faces(client, content_type):
    response = client.post("/api/predict", data=png_bytes(), content_type=content_type)
    assert response.get_json() == {"images": [{"path": None, "faces": []}]}


FIELD_HINT = ("send the image as the multipart form field 'image' (a file, its name in UTF-8) "
              "or as the raw body")


@pytest.mark.parametrize("kwargs, status, message", [
    ({"data": {"photo": (io.BytesIO(png_bytes()), "x.png")}}, 400, FIELD_HINT),  # wrong field name
    ({"data": {"image": "just text"}, "content_type": "multipart/form-data"}, 400, FIELD_HINT),  # text, not a file
    # a form: its body is taken as a raw image (curl --data-binary sends images with this type)
    ({"data": {"image": "just text"}}, 415, None),
    ({"data": b"", "content_type": "image/jpeg"}, 400, "the upload is empty"),  # empty body
    ({"data": {"image": (io.BytesIO(b""), "x.png")}}, 400, "the upload is empty"),  # empty file
    ({"data": b"\x89PNG\r\n\x1a\n corrupt", "content_type": "image/png"}, 415, None),  # undecodable
    ({"data": {"image": (io.BytesIO(b"%PDF-1.4 not an image"), "x.pdf")}}, 415, None),  # not an image
    ({"data": "hello", "content_type": "text/plain"}, 415, "expected an image, got text/plain"),
    ({"data": "hello", "content_type": "text/csv"}, 415, "expected an image, got text/csv"),
    ({"json": {"image": "aGVsbG8="}}, 415, "expected an image, got application/json"),
])
def test_predict_bad_input_is_a_json_error(client, kwargs, status, message):
    error = assert_json_error(client.post("/api/predict", **kwargs), status)["error"]
    if message:
        assert error["message"] == message
    else:  # the decoder's verdict, naming what was sent
        assert error["message"].startswith("image: not an image OpenCV can read")


@pytest.mark.parametrize("path, field", [("/api/predict", "image"), ("/api/annotate", "image"), ("/jobs", "video")])
def test_a_file_name_that_is_not_utf8_is_named_as_the_likely_cause(client, path, field):
    """werkzeug drops such a part silently; the 400 must not claim the field was missing and stop there."""
    body = (b"--XyZ\r\nContent-Disposition: form-data; name=\"" + field.encode()
            + b"\"; filename=\"a\xff\xfe.png\"\r\n"
            b"Content-Type: image/png\r\n\r\n" + png_bytes() + b"\r\n--XyZ--\r\n")
    error = assert_json_error(client.post(path, data=body, content_type="multipart/form-data; boundary=XyZ"), 400)
    assert f"multipart form field '{field}' (a file, its name in UTF-8)" in error["error"]["message"]


def test_a_raw_body_is_read_once_and_not_kept_by_flask(client, monkeypatch, face_photo):
    # the raw body is read with get_data(cache=False): the app holds no second copy of an upload
    from flask import Request

    calls = []
    original = Request.get_data

    def spy(self, *args, **kwargs):
        calls.append(kwargs.get("cache", args[0] if args else True))
        return original(self, *args, **kwargs)

    monkeypatch.setattr(Request, "get_data", spy)
    assert client.post("/api/predict", data=face_photo.read_bytes(), content_type="image/jpeg").status_code == 200
    assert calls == [False]


def test_a_multipart_upload_keeps_its_file_name_and_a_nameless_one_has_none(client):
    named = client.post("/api/predict", data={"image": (io.BytesIO(png_bytes()), "holiday.png")})
    assert named.get_json()["images"][0]["path"] == "holiday.png"
    nameless = client.post("/api/predict", data=png_bytes(), content_type="image/png")
    assert nameless.get_json()["images"][0]["path"] is None


def test_oversized_upload_is_413_json(make_app):
    client = make_app(max_upload_mb=1).test_client()
    big = b"\xff" * (1024 * 1024 + 10)
    for response in (client.post("/api/predict", data=big, content_type="image/jpeg"),
                     client.post("/api/predict", data={"image": (io.BytesIO(big), "big.jpg")}),
                     client.post("/jobs", data={"video": (io.BytesIO(big), "big.mp4")})):
        body = assert_json_error(response, 413)
        assert body["error"]["message"] == "upload larger than the limit of 1 MB"


def test_wrong_method_is_405_json(client):
    assert_json_error(response := client.get("/api/predict"), 405)
    assert sorted(response.headers["Allow"].split(", ")) == ["OPTIONS", "POST"]  # HTTP requires a 405 to say it
    assert_json_error(response := client.post("/api/health"), 405)
    assert sorted(response.headers["Allow"].split(", ")) == ["GET", "HEAD", "OPTIONS"]


def test_unexpected_error_is_500_json_without_traceback(app, client, monkeypatch):
    def fail(image):
        raise RuntimeError("secret internal detail")

    monkeypatch.setattr(app.extensions["ferkit"].pipeline, "analyse", fail)
    response = client.post("/api/predict", data=png_bytes(), content_type="image/png")
    assert_json_error(response, 500)
    assert b"secret internal detail" not in response.data


def test_uploaded_images_stay_in_memory(client, monkeypatch):
    """werkzeug spools file uploads over 500 KB to a temporary file; this app must not."""
    import werkzeug.formparser
    from werkzeug import Request

    spooled = []

    def record(*args, **kwargs):
        spooled.append(args)
        return io.BytesIO()

    monkeypatch.setattr(werkzeug.formparser, "SpooledTemporaryFile", record)
    image = png_bytes(800, 800)  # ~1.9 MB of noise
    assert len(image) > 500 * 1024
    assert client.post("/api/predict", data={"image": (io.BytesIO(image), "big.png")}).status_code == 200
    assert spooled == []
    # Control: werkzeug's plain Request does spool such an upload, so the check above can fail.
    Request.from_values(method="POST", data={"image": (io.BytesIO(image), "big.png")}).files
    assert spooled


# --- /api/annotate (the page's photo upload) --------------------------------------------------------------
@pytest.mark.shared
def test_annotate_returns_predict_json_and_the_drawn_image(client, face_photo):
    data = face_photo.read_bytes()
    body = client.post("/api/annotate", data={"image": (io.BytesIO(data), "p.jpg")}).get_json()
    predicted = client.post("/api/predict", data={"image": (io.BytesIO(data), "p.jpg")}).get_json()
    assert body["images"] == predicted["images"]
    prefix = "data:image/jpeg;base64,"
    assert body["annotated"].startswith(prefix)
    import base64

    drawn = cv2.imdecode(np.frombuffer(base64.b64decode(body["annotated"][len(prefix):]), np.uint8), cv2.IMREAD_COLOR)
    original = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_COLOR)
    assert drawn.shape == original.shape
    assert np.abs(drawn.astype(int) - original.astype(int)).mean() > 1  # boxes and labels were drawn


def test_annotate_bad_input(client):
    assert_json_error(client.post("/api/annotate", data=b"nope", content_type="image/jpeg"), 415)


# --- /api/frame (browser camera) ------------------------------------------------------------------------------
def send_frames(client, session_id: str, data: bytes, count: int) -> list[dict]:
    return [client.post(f"/api/frame?session={session_id}", data=data, content_type="image/jpeg").get_json()
            for _ in range(count)]


@pytest.mark.shared
def test_frames_keep_face_ids_per_browser_tab(app, client, face_photo):
    data = face_photo.read_bytes()
    # Faces show once two detection rounds confirmed them: frames 0 and detect_every.
    frames = 2 * app.extensions["ferkit"].pipeline.cfg.detect_every
    first_tab = send_frames(client, "tab-one-0001", data, frames)
    second_tab = send_frames(client, "tab-two-0002", data, frames)
    height, width = cv2.imread(str(face_photo)).shape[:2]
    last = first_tab[-1]
    assert (last["width"], last["height"]) == (width, height)
    assert last["server_ms"] >= 0
    assert len(last["faces"]) >= 3
    for face in last["faces"]:
        assert_face_shape({k: v for k, v in face.items() if k != "face_id"})
    ids = sorted(face["face_id"] for face in last["faces"])
    assert ids == list(range(1, len(ids) + 1))
    assert sorted(face["face_id"] for face in first_tab[-2]["faces"]) in ([], ids)  # the same tracks while they last
    assert sorted(face["face_id"] for face in second_tab[-1]["faces"]) == ids  # a new tab numbers its own faces
    assert len(app.extensions["ferkit"].cameras) == 2


@pytest.mark.parametrize("query", ["", "?session=short", "?session=../../etc/passwd", "?session=" + "a" * 65])
def test_frame_needs_a_valid_session_id(client, query):
    assert_json_error(client.post(f"/api/frame{query}", data=png_bytes(), content_type="image/png"), 400)


def test_frame_bad_image(client):
    assert_json_error(client.post("/api/frame?session=abcdefgh", data=b"xx", content_type="image/jpeg"), 415)


# --- ?uniform_prior= per request (photo, camera tab, video job) -------------------------------------------------
def face_scores(body: dict) -> tuple[list, np.ndarray]:
    """(boxes, (N, 7) scores) of one /api/predict or /api/annotate answer."""
    faces = body["images"][0]["faces"]
    return [face["box"] for face in faces], np.array([[face["scores"][n] for n in CLASS_NAMES] for face in faces])


@pytest.mark.shared
@pytest.mark.parametrize("route", ["/api/predict", "/api/annotate"])
def test_uniform_prior_per_request_divides_by_the_class_shares(app, client, face_photo, route):
    from ferkit.inference.classifier import apply_uniform_prior

    data = face_photo.read_bytes()
    post = lambda query: client.post(f"{route}{query}", data={"image": (io.BytesIO(data), "p.jpg")}).get_json()
    boxes, plain = face_scores(post(""))
    shared = app.extensions["ferkit"].pipeline
    shares = shared.classifier.class_shares()
    assert len(boxes) >= 3 and shares[1] == pytest.approx(436 / 28709)  # the tiny model: FER2013's shares
    for on in ("1", "true", "ON"):
        uniform_boxes, uniform = face_scores(post(f"?uniform_prior={on}"))
        assert uniform_boxes == boxes
        np.testing.assert_allclose(uniform, apply_uniform_prior(plain, shares), atol=2e-3)  # scores: 4 decimals
        assert (uniform[:, 1] > plain[:, 1]).all()  # disgust, the rarest class, gains on every face
    for off in ("0", "false", "Off"):
        assert face_scores(post(f"?uniform_prior={off}")) == (boxes, pytest.approx(plain, abs=1e-9))
    assert shared.cfg.uniform_prior is False  # the request's setting never touched the shared pipeline


def test_a_server_started_with_the_uniform_prior_lets_a_request_turn_it_off(pipeline, tiny_model_dir, tmp_path):
    from dataclasses import replace

    from ferkit.inference.pipeline import Pipeline

    uniform = Pipeline(pipeline.classifier, pipeline.detector, replace(pipeline.cfg, uniform_prior=True))
    app = create_app(Config(model=str(tiny_model_dir), serve=ServeConfig(jobs_dir=str(tmp_path))), uniform)
    try:
        with app.test_request_context("/api/predict?uniform_prior=0"):
            from ferkit.web.params import request_pipeline

            off = request_pipeline()
        assert off.cfg.uniform_prior is False and off.classifier is pipeline.classifier
        with app.test_request_context("/api/predict"):
            assert request_pipeline() is uniform  # no parameter: the server's own
        page = app.test_client().get("/").get_data(as_text=True)
        assert re.search(r'<input id="uniform-prior" type="checkbox" checked>', page)
    finally:
        app.extensions["ferkit"].close()


@pytest.mark.parametrize("route", ["/api/predict", "/api/annotate", "/api/frame?session=abcdefgh", "/jobs"])
def test_a_bad_uniform_prior_value_is_a_400_before_the_upload_is_read(app, client, route):
    joiner = "&" if "?" in route else "?"
    body = assert_json_error(client.post(f"{route}{joiner}uniform_prior=maybe", data=b"not even an image",
                                         content_type="image/jpeg"), 400)
    assert body["error"]["message"] == "?uniform_prior= takes 1 or 0 (true or false), got 'maybe'"
    assert app.extensions["ferkit"].jobs._jobs == {} and len(app.extensions["ferkit"].cameras) == 0


def test_a_parameter_given_twice_is_a_400_not_a_guess_at_which_counts(app, client):
    body = assert_json_error(client.post("/api/predict?uniform_prior=1&uniform_prior=0", data=b"x",
                                         content_type="image/jpeg"), 400)
    assert body["error"]["message"] == "query parameter 'uniform_prior' given more than once"


def test_a_model_without_known_class_shares_refuses_the_uniform_prior_and_the_page_disables_it(
        pipeline, tiny_model_dir, tmp_path):
    from ferkit.inference.classifier import FacialExpressionModel
    from ferkit.inference.pipeline import Pipeline

    classifier = FacialExpressionModel(tiny_model_dir)
    classifier.labels = "folders"  # as a model whose calibration names labels ferkit has no counts for
    app = create_app(Config(model=str(tiny_model_dir), serve=ServeConfig(jobs_dir=str(tmp_path))),
                     Pipeline(classifier, pipeline.detector, pipeline.cfg))
    try:
        client = app.test_client()
        body = assert_json_error(client.post("/api/predict?uniform_prior=1", data=png_bytes(),
                                             content_type="image/png"), 400)
        assert body["error"]["message"] == (f"{tiny_model_dir.name}: its training labels (folders) have no known "
                                            "class shares; a uniform prior needs a model trained on fer2013 or "
                                            "ferplus labels")
        off = client.post("/api/predict?uniform_prior=0", data=png_bytes(), content_type="image/png")
        assert off.status_code == 200
        page = client.get("/").get_data(as_text=True)
        assert re.search(r'<input id="uniform-prior" type="checkbox" disabled>', page)
    finally:
        app.extensions["ferkit"].close()


@pytest.mark.shared
def test_a_camera_tab_switching_the_prior_keeps_its_faces(app, client, face_photo):
    data = face_photo.read_bytes()
    cameras = app.extensions["ferkit"].cameras
    frames = 2 * app.extensions["ferkit"].pipeline.cfg.detect_every
    post = lambda query: client.post(f"/api/frame?session=tab-prior-01{query}", data=data,
                                     content_type="image/jpeg").get_json()
    before = [post("&uniform_prior=0") for _ in range(frames)][-1]["faces"]
    stream = cameras._sessions["tab-prior-01"].stream
    assert stream.pipeline.cfg.uniform_prior is False and len(before) >= 3
    after = post("&uniform_prior=1")["faces"]
    assert stream.pipeline.cfg.uniform_prior is True
    assert stream.pipeline.classifier is app.extensions["ferkit"].pipeline.classifier
    assert sorted(face["face_id"] for face in after) == sorted(face["face_id"] for face in before)
    # the faces classified on the switched frame moved towards the uniform prior: disgust up, none down
    moved = {face["face_id"]: face["scores"]["disgust"] for face in after}
    gains = [moved[face["face_id"]] - face["scores"]["disgust"] for face in before]
    assert max(gains) > 0 and min(gains) >= 0
    assert post("")["faces"] and stream.pipeline is app.extensions["ferkit"].pipeline  # no parameter: the server's


def test_a_video_job_runs_with_the_prior_its_upload_asked_for(app, client, tmp_path, monkeypatch):
    from ferkit.video import process as process_module

    used = []
    real = process_module.process_video
    monkeypatch.setattr(process_module, "process_video",
                        lambda pipeline, *args, **kwargs: used.append(pipeline.cfg.uniform_prior) or real(
                            pipeline, *args, **kwargs))
    video = write_video(tmp_path / "upload.avi", frames=6, fps=12.0)
    jobs = [client.post(f"/jobs{query}", data={"video": (video.open("rb"), "v.avi")}).get_json()
            for query in ("?uniform_prior=1", "", "?uniform_prior=0")]
    assert [job["uniform_prior"] for job in jobs] == [True, False, False]
    assert [wait_for_job(client, job["id"])["state"] for job in jobs] == ["done"] * 3
    assert sorted(used) == [False, False, True] and used.count(True) == 1


def test_camera_sessions_are_bounded_and_expire(pipeline):
    now = [0.0]
    sessions = CameraSessions(pipeline, max_sessions=2, ttl_s=10, clock=lambda: now[0])
    frame = np.zeros((120, 160, 3), np.uint8)
    for session_id in ("aaaaaaaa", "bbbbbbbb", "cccccccc"):
        sessions.process(session_id, frame)
    assert len(sessions) == 2 and "aaaaaaaa" not in sessions  # the least recently used went first
    now[0] = 5.0
    sessions.process("bbbbbbbb", frame)
    now[0] = 12.0
    sessions.process("dddddddd", frame)
    assert "cccccccc" not in sessions and "bbbbbbbb" in sessions  # idle for over 10 s: forgotten


def test_camera_sessions_keep_at_least_one_and_expire_only_past_the_ttl(pipeline):
    now = [0.0]
    frame = np.zeros((120, 160, 3), np.uint8)
    one = CameraSessions(pipeline, max_sessions=0, ttl_s=10, clock=lambda: now[0])  # 0 means 1
    one.process("aaaaaaaa", frame)
    one.process("bbbbbbbb", frame)
    assert len(one) == 1 and "bbbbbbbb" in one
    sessions = CameraSessions(pipeline, max_sessions=4, ttl_s=10, clock=lambda: now[0])
    sessions.process("aaaaaaaa", frame)
    now[0] = 10.0  # idle exactly ttl_s: kept
    sessions.process("bbbbbbbb", frame)
    assert "aaaaaaaa" in sessions
    now[0] = 10.001  # idle a moment longer than ttl_s: forgotten
    sessions.process("bbbbbbbb", frame)
    assert "aaaaaaaa" not in sessions and "bbbbbbbb" in sessions


def test_a_frame_while_the_tab_is_busy_is_dropped_with_its_reason(pipeline):
    sessions = CameraSessions(pipeline, max_sessions=2, ttl_s=10)
    frame = np.zeros((120, 160, 3), np.uint8)
    sessions.process("aaaaaaaa", frame)
    busy = sessions._sessions["aaaaaaaa"]
    with busy.lock:  # the tab's previous frame is in progress
        for _ in range(2):
            with pytest.raises(Busy, match=r"^frame dropped: this tab's previous frame is still being processed$"):
                sessions.process("aaaaaaaa", frame)
        assert busy.dropped == 2  # counted per tab
        sessions.process("bbbbbbbb", frame)  # another tab is not held up
        assert sessions._sessions["bbbbbbbb"].dropped == 0
    sessions.process("aaaaaaaa", frame)  # and the tab goes on once its frame is done


# --- query parameters -------------------------------------------------------------------------------------------
@pytest.mark.parametrize("method, path, name", [
    ("POST", "/api/predict?model=accurate", "model"), ("GET", "/api/health?detector=haar", "detector"),
    ("POST", "/api/frame?session=abcdefgh&sesion=x", "sesion"), ("GET", "/?min-face=-5", "min-face"),
    ("GET", "/jobs/" + "0" * 32 + "/timeline.png?downlaod=1", "downlaod"), ("GET", "/video_feed?token=x", "token")])
def test_an_unknown_query_parameter_is_a_400_naming_it(client, method, path, name):
    """Each route reads only the parameters it names; any other is an error, not silently ignored."""
    response = client.open(path, method=method, data=png_bytes(), content_type="image/png")
    assert response.status_code == 400 and b"Traceback" not in response.data
    message = response.get_json()["error"]["message"] if response.is_json else html.unescape(response.get_data(
        as_text=True))
    assert f"unknown query parameter '{name}'" in message


def test_a_model_parameter_says_where_the_model_is_chosen(client, tiny_model_dir):
    body = assert_json_error(client.post("/api/predict?model=accurate", data=png_bytes(),
                                         content_type="image/png"), 400)
    assert "serve --model NAME" in body["error"]["message"]
    assert repr(tiny_model_dir.name) in body["error"]["message"]  # the model this server does run


@pytest.mark.parametrize("path, takes", [("/api/frame?x=1", "it takes session"),
                                         ("/api/stream?x=1", "it takes none")])
def test_the_400_lists_what_the_route_takes(client, path, takes):
    response = client.open(path, method="POST" if "frame" in path else "GET", data=png_bytes(),
                           content_type="image/png")
    assert takes in assert_json_error(response, 400)["error"]["message"]


def test_the_parameters_the_page_sends_are_accepted(client):
    assert client.get("/?token=whatever").status_code == 200  # loopback: no token needed, and it does no harm
    assert client.get("/video_feed?reconnect=123").status_code == 503  # no source: past the query check
    assert client.post("/api/frame?session=abcdefgh", data=b"xx", content_type="image/jpeg").status_code == 415
    assert client.get("/static/app.js?v=2").status_code == 200  # static files take any cache-busting parameter


# --- /video_feed -------------------------------------------------------------------------------------------------
def test_video_feed_without_source_is_503_at_once(client):
    started = time.monotonic()
    body = assert_json_error(client.get("/video_feed"), 503)
    assert "--source" in body["error"]["message"]
    assert time.monotonic() - started < 1


def read_part(iterator) -> np.ndarray:
    part = next(iterator)
    header, jpeg = part.split(b"\r\n\r\n", 1)
    assert header.startswith(f"--{BOUNDARY}\r\nContent-Type: image/jpeg".encode())
    image = cv2.imdecode(np.frombuffer(jpeg.rstrip(b"\r\n"), np.uint8), cv2.IMREAD_COLOR)
    assert image is not None
    return image


def feed_threads() -> list[threading.Thread]:
    return [t for t in threading.enumerate() if t.name == "ferkit-video-feed"]


def test_video_feed_one_capture_thread_serves_every_viewer(make_app, tmp_path):
    source = write_video(tmp_path / "clip.avi", frames=6, size=(160, 120), fps=12.0)
    app = make_app(source=str(source), stream_max_fps=60, stream_idle_s=0.3)
    broadcaster = app.extensions["ferkit"].broadcaster
    client = app.test_client()
    responses = [client.get("/video_feed", buffered=False) for _ in range(3)]
    assert responses[0].mimetype == "multipart/x-mixed-replace"
    iterators = [iter(response.response) for response in responses]
    for iterator in iterators:
        assert read_part(iterator).shape == (120, 160, 3)
    assert len(feed_threads()) == 1 and broadcaster.opens == 1
    assert broadcaster.status()["viewers"] == 3
    for _ in range(10):  # the 6-frame file loops
        read_part(iterators[0])
    assert broadcaster.opens >= 2
    for response in responses:  # viewers leave: nothing is kept running for them
        response.close()
    assert broadcaster.status()["viewers"] == 0
    assert wait_until(lambda: not broadcaster.running, timeout=5)
    assert not feed_threads()
    # A new viewer starts it again.
    response = client.get("/video_feed", buffered=False)
    read_part(iter(response.response))
    assert broadcaster.running
    response.close()


def test_dropped_camera_is_reopened_with_backoff(pipeline, monkeypatch):
    monkeypatch.setattr(stream_module, "FIRST_RETRY_S", 0.02)
    monkeypatch.setattr(stream_module, "LAST_RETRY_S", 0.05)
    attempts = []
    # First open works (3 frames, then the camera drops), the next two fail, then it comes back.
    outcomes = [FakeCapture(3), None, None, FakeCapture(1000)]

    def open_source(source):
        attempts.append(source)
        return outcomes[min(len(attempts), len(outcomes)) - 1]

    broadcaster = FrameBroadcaster(pipeline, ServeConfig(source="0", stream_max_fps=200, stream_idle_s=0.2),
                                   open_source)
    viewer = broadcaster.viewer()
    try:
        read_part(viewer)
        assert wait_until(lambda: broadcaster.opens == 2, timeout=5)
        # Viewers get the newest frame, so a message frame may come first; then the camera's again.
        assert any(read_part(viewer).shape == (90, 120, 3) for _ in range(20))
    finally:
        viewer.close()
        broadcaster.close()
    assert attempts[:4] == [0, 0, 0, 0]  # camera index 0, opened four times
    assert broadcaster.opens == 2
    assert broadcaster.error is None  # recovered


def test_unavailable_source_shows_a_message_frame(pipeline, monkeypatch):
    monkeypatch.setattr(stream_module, "FIRST_RETRY_S", 0.02)
    broadcaster = FrameBroadcaster(pipeline, ServeConfig(source="rtsp://127.0.0.1:9/none", stream_idle_s=0.2),
                                   lambda source: None)
    viewer = broadcaster.viewer()
    try:
        frame = read_part(viewer)  # a placeholder frame, not a hang
        assert frame.shape == (360, 640, 3)
        assert "unavailable" in broadcaster.status()["error"]
    finally:
        viewer.close()
        broadcaster.close()
    assert broadcaster.status()["viewers"] == 0


def test_stream_status(client):
    assert client.get("/api/stream").get_json() == {"configured": False, "running": False, "viewers": 0,
                                                     "fps": 0.0, "frames": 0, "error": None}


# --- video jobs ---------------------------------------------------------------------------------------------------
@pytest.fixture
def finished_job(app, client, tmp_path) -> dict:
    video = write_video(tmp_path / "upload.avi", frames=12, fps=12.0)
    response = client.post("/jobs", data={"video": (video.open("rb"), "my clip.avi")})
    assert response.status_code == 202
    assert response.headers["Location"] == f"/jobs/{response.get_json()['id']}"
    return wait_for_job(client, response.get_json()["id"])


def test_video_job_progress_and_downloads(app, client, finished_job):
    job = finished_job
    assert job["state"] == "done", job
    assert job["progress"] == 1.0 and job["done_frames"] == job["total_frames"] == 12
    assert job["summary"]["frames"] == 12 and job["summary"]["input"] == "my clip.avi"
    assert "outputs" not in job["summary"]  # no server paths go to the client
    assert 0 < job["expires_in_s"] <= app.extensions["ferkit"].config.serve.job_ttl
    files = job["files"]
    video_name = next(name for name in files if name.startswith("annotated."))
    assert set(files) == {video_name, "frames.csv", "timeline.png", "summary.json"}
    video = client.get(files[video_name])
    assert video.status_code == 200 and video.mimetype.startswith("video/") and len(video.data) > 1000
    csv_text = client.get(files["frames.csv"]).get_data(as_text=True)
    assert csv_text.splitlines()[0].startswith("frame,time_s,face_id") and len(csv_text.splitlines()) == 13
    png = client.get(files["timeline.png"] + "?download=1")
    assert png.data.startswith(b"\x89PNG") and "attachment" in png.headers["Content-Disposition"]
    assert "attachment" not in client.get(files["timeline.png"] + "?download=off").headers["Content-Disposition"]
    body = assert_json_error(client.get(files["timeline.png"] + "?download=yes"), 400)  # was served inline, silently
    assert body["error"]["message"] == "?download= takes 1 or 0 (true or false), got 'yes'"
    assert client.get(files["summary.json"]).get_json()["frames"] == 12
    # Only the results stay: the uploaded video was deleted once processed.
    folder = app.extensions["ferkit"].jobs.root / job["id"]
    assert sorted(p.name for p in folder.iterdir()) == sorted(files)


def test_user_deletes_a_job(app, client, finished_job):
    job_id = finished_job["id"]
    assert client.delete(f"/jobs/{job_id}").get_json() == {"deleted": job_id}
    assert_json_error(client.get(f"/jobs/{job_id}"), 404)
    assert_json_error(client.get(f"/jobs/{job_id}/frames.csv"), 404)
    assert_json_error(client.delete(f"/jobs/{job_id}"), 404)
    assert not (app.extensions["ferkit"].jobs.root / job_id).exists()


def test_jobs_expire_after_their_ttl(app, client, finished_job):
    jobs = app.extensions["ferkit"].jobs
    job_id = finished_job["id"]
    assert jobs.sweep() == []  # not yet
    stale = jobs.root / ("0" * 32)  # left by an earlier server with the same jobs folder
    stale.mkdir()
    assert sorted(jobs.sweep(now=time.time() + jobs.ttl_s + 1)) == sorted([job_id, stale.name])
    assert_json_error(client.get(f"/jobs/{job_id}"), 404)
    assert list(jobs.root.iterdir()) == []


def test_janitor_deletes_expired_jobs_by_itself(make_app, tmp_path):
    app = make_app(job_ttl=1)  # the janitor then looks every second
    client = app.test_client()
    video = write_video(tmp_path / "v.avi", frames=3, fps=12.0)
    job_id = client.post("/jobs", data={"video": (video.open("rb"), "v.avi")}).get_json()["id"]
    assert wait_for_job(client, job_id)["state"] == "done"
    assert wait_until(lambda: client.get(f"/jobs/{job_id}").status_code == 404, timeout=10)


@pytest.mark.parametrize("path", [
    "/jobs/" + "0" * 32,  # well-formed but unknown
    "/jobs/not-a-job",
    "/jobs/..%2F..%2Fetc",
    "/jobs/" + "0" * 32 + "/frames.csv",
])
def test_unknown_job_is_404(client, path):
    assert_json_error(client.get(path), 404)


@pytest.mark.parametrize("name", ["upload.avi", "..%2Fupload.avi", "%2Fetc%2Fpasswd", "annotated.avi", "FRAMES.CSV"])
def test_job_files_come_from_a_fixed_list(client, finished_job, name):
    assert_json_error(client.get(f"/jobs/{finished_job['id']}/{name}"), 404)


@pytest.mark.parametrize("data, status", [
    ({}, 400),  # no file
    ({"file": (io.BytesIO(b"x"), "a.mp4")}, 400),  # wrong field
    ({"video": (io.BytesIO(png_bytes()), "photo.png")}, 415),  # an image, not a video
    ({"video": (io.BytesIO(b"\x00\x00\x00\x18ftypmp42 broken"), "clip.mp4")}, 415),  # undecodable
    ({"video": (io.BytesIO(b"hello"), "../../etc/clip.mp4")}, 415),  # the name never becomes a path
])
def test_bad_video_upload_leaves_nothing_behind(app, client, data, status):
    assert_json_error(client.post("/jobs", data=data), status)
    assert list(app.extensions["ferkit"].jobs.root.iterdir()) == []
    assert len(app.extensions["ferkit"].jobs) == 0


@pytest.mark.parametrize("name, mimetype", [("photo.mp4", "application/octet-stream"), ("photo", "video/mp4"),
                                             ("photo.jpg", "video/mp4")])
def test_a_photo_sent_as_a_video_is_415_at_submit(app, client, name, mimetype):
    """A JPEG named .mp4 or typed video/*: FFmpeg opens it as a one-frame video, so it was taken (202)
    and failed later, naming the server's upload.mp4 and advising `ferkit predict`."""
    jpeg = cv2.imencode(".jpg", np.full((120, 160, 3), 90, np.uint8))[1].tobytes()
    error = assert_json_error(client.post("/jobs", data={"video": (io.BytesIO(jpeg), name, mimetype)}), 415)
    assert error["error"]["message"] == "not a video: the upload is an image (photos go to /api/predict)"
    assert list(app.extensions["ferkit"].jobs.root.iterdir()) == [] and len(app.extensions["ferkit"].jobs) == 0


def test_closing_the_app_removes_its_temporary_jobs_folder(make_app):
    app = make_app(jobs_dir=None)
    root = app.extensions["ferkit"].jobs.root
    assert root.is_dir()
    app.extensions["ferkit"].close()
    assert not root.exists()


# --- the server and the command -----------------------------------------------------------------------------------
@pytest.fixture
def live_server(make_app):
    """The app on waitress (as `ferkit serve` runs it) on a free port of 127.0.0.1."""
    (host, port), stop = serve_on_loopback(make_app(), threads=2, max_upload_mb=1)
    yield f"http://{host}:{port}"
    stop()


def test_waitress_serves_the_app_on_loopback(live_server):
    assert live_server.startswith("http://127.0.0.1:")
    with urllib.request.urlopen(f"{live_server}/api/health", timeout=10) as response:
        assert json.load(response)["status"] == "ok"
        assert response.headers["Server"] == "ferkit"
    request = urllib.request.Request(f"{live_server}/api/predict", data=png_bytes(), method="POST",
                                     headers={"Content-Type": "image/png"})
    with urllib.request.urlopen(request, timeout=10) as response:
        assert json.load(response) == {"images": [{"path": None, "faces": []}]}


def test_waitress_refuses_a_huge_body_before_reading_it(live_server):
    import http.client

    host, port = live_server.removeprefix("http://").split(":")
    connection = http.client.HTTPConnection(host, int(port), timeout=10)
    connection.putrequest("POST", "/api/predict")
    connection.putheader("Content-Type", "image/jpeg")
    connection.putheader("Content-Length", str(10 * 2**30))  # announced, never sent
    connection.endheaders()
    assert connection.getresponse().status == 413
    connection.close()


def test_serve_command_uses_waitress_on_loopback(tiny_model_dir, tmp_path, monkeypatch, capsys):
    from waitress.server import BaseWSGIServer

    from ferkit.web import server as server_module

    served, apps = [], []
    monkeypatch.setattr(BaseWSGIServer, "run", lambda server: served.append(server))  # returns as Ctrl+C would
    monkeypatch.setattr(server_module, "create_app", lambda config: apps.append(create_app(config)) or apps[-1])
    code = cli_main(["serve", "--model", str(tiny_model_dir), "--port", "0", "--jobs-dir", str(tmp_path / "j"),
                     "--max-upload-mb", "3", "--job-ttl", "60"])
    assert code == 0 and len(served) == 1 and len(apps) == 1
    assert served[0].effective_host == "127.0.0.1"
    app = apps[0]
    assert app.config["MAX_CONTENT_LENGTH"] == 3 * 2**20 and not app.debug
    assert app.extensions["ferkit"].jobs.ttl_s == 60
    out = capsys.readouterr().out
    assert f"http://127.0.0.1:{served[0].effective_port}/" in out


def test_serve_command_with_a_missing_model_is_one_line_error(capsys):
    assert cli_main(["serve", "--model", "no/such/model", "--port", "0"]) == 2
    err = capsys.readouterr().err
    assert "no/such/model" in err and "Traceback" not in err


def test_serve_port_and_threads_out_of_range_exit_2(capsys):
    for argv in (["serve", "--port", "70000"], ["serve", "--threads", "0"], ["serve", "--port", "-1"],
                 ["serve", "--max-upload-mb", "0"], ["serve", "--job-workers", "0"], ["serve", "--port", "http"]):
        with pytest.raises(SystemExit) as exit_info:
            cli_main(argv)
        assert exit_info.value.code == 2, argv
        err = capsys.readouterr().err
        assert err.splitlines()[-1].startswith(f"ferkit serve: error: argument {argv[1]}"), err
        assert "Traceback" not in err


def test_serve_flags_reach_serve_config(tiny_model_dir, monkeypatch):
    from ferkit import cli

    seen = []
    monkeypatch.setattr("ferkit.web.server.serve", lambda config: seen.append(config) or 0)
    monkeypatch.setenv("FERKIT_TOKEN", "from-the-environment")
    assert cli.main(["serve", "--port", "0", "--threads", "3", "--job-workers", "2", "--job-queue", "7",
                     "--job-max-frames", "99", "--jobs-max-mb", "5", "--max-inflight", "6", "--job-ttl", "61",
                     "--no-auth"]) == 0
    serve = seen[0].serve
    assert (serve.port, serve.threads, serve.job_workers, serve.job_queue, serve.job_max_frames, serve.jobs_max_mb,
            serve.max_inflight, serve.job_ttl, serve.no_auth) == (0, 3, 2, 7, 99, 5, 6, 61, True)
    assert serve.token == "from-the-environment"
    assert cli.main(["serve", "--token", "given-on-the-command-line"]) == 0
    assert seen[1].serve.token == "given-on-the-command-line" and seen[1].serve.no_auth is False


# --- architecture: engines free of Flask, no import cycle, nothing started by create_app -----------------------------
def local_imports(path: Path) -> set[str]:
    """The ferkit.web modules a module imports at its top level (imports inside functions run later)."""
    package = "ferkit.web" + ("" if path.parent == WEB_PACKAGE else "." + path.parent.name)
    module = package + ("" if path.stem == "__init__" else "." + path.stem)
    found = set()
    for node in ast.parse(path.read_text()).body:
        if isinstance(node, ast.ImportFrom):
            if node.level:
                base = module if path.stem == "__init__" else module.rsplit(".", 1)[0]
                base = ".".join(base.split(".")[: len(base.split(".")) - node.level + 1])
                target = f"{base}.{node.module}" if node.module else base
            else:
                target = node.module
            names = [f"{target}.{alias.name}" for alias in node.names]
            found.update(n for n in [target, *names] if n.startswith("ferkit.web"))
        elif isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names if alias.name.startswith("ferkit.web"))
    return found


def test_web_package_has_no_import_cycle():
    modules = {}
    for path in WEB_PACKAGE.rglob("*.py"):
        name = "ferkit.web" + ("" if path.parent == WEB_PACKAGE else "." + path.parent.name)
        name += "" if path.stem == "__init__" else "." + path.stem
        modules[name] = path
    graph = {name: {m for m in local_imports(path) if m in modules and m != name} for name, path in modules.items()}
    assert graph["ferkit.web.app"] >= {"ferkit.web.api", "ferkit.web.routes_jobs", "ferkit.web.engines.jobs"}

    def visit(name, trail):
        assert name not in trail, " -> ".join([*trail, name])
        for dependency in graph[name]:
            if dependency != "ferkit.web":  # the package __init__ only re-exports create_app
                visit(dependency, [*trail, name])

    for name in graph:
        visit(name, [])


def test_engines_do_not_import_flask():
    code = ("import sys; import ferkit.web.engines.jobs, ferkit.web.engines.broadcast, "
            "ferkit.web.engines.sessions, ferkit.web.engines.limits; print('flask' in sys.modules)")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "False"


def test_create_app_starts_no_thread_and_writes_no_folder(pipeline, tiny_model_dir, tmp_path):
    threads, folders = ferkit_threads(), temporary_jobs_folders()
    app = create_app(Config(model=str(tiny_model_dir)), pipeline)  # a temporary jobs folder, when one is needed
    assert ferkit_threads() == threads and temporary_jobs_folders() == folders
    client = app.test_client()
    assert client.get("/").status_code == 200 and client.get("/api/stream").status_code == 200
    assert ferkit_threads() == threads and temporary_jobs_folders() == folders
    # The first upload makes them; close() ends them.
    video = write_video(tmp_path / "v.avi", frames=3, fps=12.0)
    job_id = client.post("/jobs", data={"video": (video.open("rb"), "v.avi")}).get_json()["id"]
    assert wait_for_job(client, job_id)["state"] == "done"
    assert "ferkit-job-janitor" in ferkit_threads() and len(temporary_jobs_folders() - folders) == 1
    app.extensions["ferkit"].close()
    assert ferkit_threads() == threads and temporary_jobs_folders() == folders


def test_an_app_never_closed_removes_its_jobs_folder_at_exit(tiny_model_dir, tmp_path):
    video = write_video(tmp_path / "v.avi", frames=3, fps=12.0)
    code = f"""
import time
from ferkit.config import Config
from ferkit.web import create_app
app = create_app(Config(model={str(tiny_model_dir)!r}))
client = app.test_client()
job_id = client.post("/jobs", data={{"video": (open({str(video)!r}, "rb"), "v.avi")}}).get_json()["id"]
while client.get("/jobs/" + job_id).get_json()["state"] not in ("done", "failed"):
    time.sleep(0.05)
print(app.extensions["ferkit"].jobs.root)
"""  # and exits without close()
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-2000:]
    root = Path(result.stdout.strip().splitlines()[-1])
    assert root.name.startswith("ferkit-jobs-") and not root.exists()


# --- security headers and access ------------------------------------------------------------------------------------
def test_every_response_carries_the_security_headers(app, client, finished_job):
    responses = {"page": client.get("/"), "api": client.get("/api/health"), "error": client.get("/api/nothing"),
                 "job": client.get(f"/jobs/{finished_job['id']}"),
                 "result": client.get(finished_job["files"]["frames.csv"]), "static": client.get("/static/app.js")}
    for kind, response in responses.items():
        headers = response.headers
        assert headers["X-Content-Type-Options"] == "nosniff", kind
        assert headers["Referrer-Policy"] == "no-referrer", kind
        csp = headers["Content-Security-Policy"]
        assert "script-src 'self'" in csp and "frame-ancestors 'none'" in csp and "unsafe-inline" not in csp, kind
        if kind != "static":  # results are never cached
            assert headers["Cache-Control"] == "no-store", kind
    assert responses["static"].headers.get("Cache-Control") != "no-store"


@pytest.mark.parametrize("page", ["index.html", "login.html", "error.html", "base.html"])
def test_templates_pass_the_csp_without_inline_script_or_style(page):
    html = (WEB_PACKAGE / "templates" / page).read_text()
    for tag in re.findall(r"<script\b[^>]*>", html):
        assert "src=" in tag or 'type="application/json"' in tag, tag  # data blocks never run
    assert not re.search(r"\sstyle\s*=", html) and "<style" not in html
    assert not re.search(r"\son[a-z]+\s*=", html)  # no inline event handlers
    assert "javascript:" not in html


def test_job_ids_are_128_random_bits(app, client, tmp_path):
    video = write_video(tmp_path / "v.avi", frames=2, fps=12.0)
    ids = [client.post("/jobs", data={"video": (video.open("rb"), "v.avi")}).get_json()["id"] for _ in range(3)]
    assert all(re.fullmatch(r"[0-9a-f]{32}", job_id) for job_id in ids) and len(set(ids)) == 3
    # All 128 bits random: a uuid4 fixes 6 of them (a '4' at 12, one of '89ab' at 16); chance 4e-6 for 3 ids.
    assert not all(job_id[12] == "4" and job_id[16] in "89ab" for job_id in ids)
    for job_id in ids:
        wait_for_job(client, job_id)


def test_loopback_is_open_and_other_addresses_need_a_token(make_app):
    assert not make_app(host="127.0.0.1").extensions["ferkit"].auth.required
    assert not make_app(host="localhost").extensions["ferkit"].auth.required
    assert not make_app(host="::1").extensions["ferkit"].auth.required
    generated = make_app(host="0.0.0.0").extensions["ferkit"].auth
    assert generated.required and generated.generated and re.fullmatch(r"[0-9a-f]{32}", generated.token)
    assert make_app(host="0.0.0.0").extensions["ferkit"].auth.token != generated.token
    assert make_app(host="192.168.1.5", token="mine-mine-mine").extensions["ferkit"].auth.token == "mine-mine-mine"
    assert not make_app(host="0.0.0.0", no_auth=True).extensions["ferkit"].auth.required
    # open: no token made up, none generated (nothing to print with the URL)
    for open_auth in (make_app(host="127.0.0.1").extensions["ferkit"].auth,
                      make_app(host="0.0.0.0", no_auth=True).extensions["ferkit"].auth):
        assert open_auth.token is None and not open_auth.generated
    given = make_app(host="0.0.0.0", token="mine-mine-mine").extensions["ferkit"].auth
    assert given.required and not given.generated  # the user's own token is not announced as generated


def test_only_the_bearer_scheme_carries_the_token(make_app):
    client = make_app(host="0.0.0.0", token=TOKEN).test_client()
    for header in (f"Basic {TOKEN}", f"Token {TOKEN}", TOKEN, f"Bearer{TOKEN}"):
        assert client.get("/api/health", headers={"Authorization": header}).status_code == 401, header
    for header in (f"Bearer {TOKEN}", f"bearer {TOKEN}", f"BEARER  {TOKEN} "):
        assert client.get("/api/health", headers={"Authorization": header}).status_code == 200, header


TOKEN = "correct-horse-battery-staple"


@pytest.fixture
def guarded(make_app):
    """A test client of an app bound (in its config) to every address, so it needs TOKEN."""
    return make_app(host="0.0.0.0", token=TOKEN).test_client()


@pytest.mark.parametrize("method, path", [("GET", "/"), ("GET", "/api/health"), ("POST", "/api/predict"),
                                          ("POST", "/api/frame?session=abcdefgh"), ("GET", "/api/stream"),
                                          ("GET", "/video_feed"), ("POST", "/jobs"), ("GET", "/jobs/" + "0" * 32),
                                          ("DELETE", "/jobs/" + "0" * 32), ("GET", "/no/such/page")])
def test_every_route_needs_the_token(guarded, method, path):
    response = guarded.open(path, method=method, data=png_bytes(), content_type="image/png")
    assert response.status_code == 401
    assert response.headers["WWW-Authenticate"].startswith("Bearer")
    if path.startswith(("/api/", "/jobs", "/video_feed")):
        assert_json_error(response, 401)
    else:
        assert response.mimetype == "text/html" and b'id="login-form"' in response.data
    # A token that differs in its last character only, in each place a token may come from:
    wrong = TOKEN[:-1] + "X"
    assert guarded.open(path, method=method, headers={"Authorization": f"Bearer {wrong}"}).status_code == 401
    guarded.set_cookie("ferkit_auth", wrong)
    assert guarded.open(path, method=method).status_code == 401
    # The right one, as a Bearer header:
    accepted = guarded.open(path, method=method, data=png_bytes(), content_type="image/png",
                            headers={"Authorization": f"Bearer {TOKEN}"})
    assert accepted.status_code != 401


def test_static_files_need_no_token(guarded):
    assert guarded.get("/static/app.js").status_code == 200


def test_page_trades_the_query_token_for_a_strict_httponly_cookie(guarded):
    wrong = guarded.get("/?token=nope")
    assert wrong.status_code == 401 and b"not right" in wrong.data and "Set-Cookie" not in wrong.headers
    response = guarded.get(f"/?token={TOKEN}&lang=en")
    assert response.status_code == 303 and response.headers["Location"] == "/?lang=en"  # the token leaves the URL
    cookie = response.headers["Set-Cookie"]
    assert "HttpOnly" in cookie and "SameSite=Strict" in cookie and "Path=/" in cookie
    value = re.match(r"ferkit_auth=([^;]+)", cookie).group(1)
    assert TOKEN not in value and len(value) >= 32  # stands for the token, is not the token
    # The browser now sends the cookie with every request of the page: page, API, stream, jobs.
    assert guarded.get("/").status_code == 200
    assert guarded.get("/api/health").status_code == 200
    assert guarded.post("/api/predict", data=png_bytes(), content_type="image/png").status_code == 200
    # A query token is for the page only; API clients send Bearer.
    api = guarded.__class__(guarded.application)
    assert api.get(f"/api/health?token={TOKEN}").status_code == 401


# --- backpressure ----------------------------------------------------------------------------------------------------
def post_frame(app, session: str, data: bytes, results: list) -> None:
    response = app.test_client().post(f"/api/frame?session={session}", data=data, content_type="image/png")
    results.append((response.status_code, response.get_json(), response.headers.get("Retry-After")))


def test_a_tab_sending_frames_in_parallel_gets_them_dropped_not_mixed(app, gated):
    """One tab, two frames at once (real threads): the second is dropped with 429 while the first is
    processed; the tab's tracker never runs two frames at once; other tabs are not held up."""
    first = []
    thread = threading.Thread(target=post_frame, args=(app, "tab-aaaaaaaa", png_bytes(seed=1), first))
    thread.start()
    assert gated["entered"].wait(10)
    second = []
    post_frame(app, "tab-aaaaaaaa", png_bytes(seed=2), second)
    status, body, retry_after = second[0]
    assert status == 429 and retry_after == "1" and "dropped" in body["error"]["message"]
    gated["gate"].set()
    thread.join(10)
    assert first[0][0] == 200 and first[0][1]["width"] == 320
    assert gated["peak"] == 1
    assert app.extensions["ferkit"].cameras._sessions["tab-aaaaaaaa"].dropped == 1


def test_many_parallel_frames_of_one_tab_never_overlap(app, gated):
    gated["gate"].set()
    results, data = [], png_bytes(seed=3)
    threads = [threading.Thread(target=lambda: [post_frame(app, "tab-bbbbbbbb", data, results) for _ in range(4)])
               for _ in range(6)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    statuses = [status for status, _, _ in results]
    assert len(statuses) == 24 and set(statuses) <= {200, 429}
    assert gated["peak"] == 1  # one frame of the tab at a time
    assert statuses.count(200) == gated["calls"]  # every answered frame went through the tracker once


def test_inflight_images_are_bounded_and_the_rest_get_429(make_app, gated, monkeypatch):
    from ferkit.web import api

    monkeypatch.setattr(api, "PREDICT_WAIT_S", 0.05)
    app = make_app(max_inflight=1)
    holder = []
    thread = threading.Thread(target=post_frame, args=(app, "tab-cccccccc", png_bytes(), holder))
    thread.start()
    assert gated["entered"].wait(10)  # the one slot is taken
    client = app.test_client()
    predict = client.post("/api/predict", data=png_bytes(), content_type="image/png")
    body = assert_json_error(predict, 429)
    assert predict.headers["Retry-After"] == "1" and "1 image already in progress" in body["error"]["message"]
    assert_json_error(client.post("/api/frame?session=tab-dddddddd", data=png_bytes(), content_type="image/png"), 429)
    assert client.get("/api/health").status_code == 200  # what needs no inference is not held up
    gated["gate"].set()
    thread.join(10)
    assert holder[0][0] == 200
    assert client.post("/api/predict", data=png_bytes(), content_type="image/png").status_code == 200
    assert app.extensions["ferkit"].inference.refused == 2 and app.extensions["ferkit"].inference.in_use == 0


def test_slots_hand_back_their_slot_on_errors():
    slots = Slots(2, "things")
    with pytest.raises(ValueError):
        with slots.take():
            raise ValueError
    with slots.take(), slots.take():
        assert slots.in_use == 2
    assert slots.in_use == 0 and slots.refused == 0


# --- jobs: limits and faults ------------------------------------------------------------------------------------------
def post_video(client, path: Path, name="clip.avi"):
    return client.post("/jobs", data={"video": (path.open("rb"), name)})


def test_deleting_a_running_job_stops_it_and_removes_its_files(app, client, gated, tmp_path):
    video = write_video(tmp_path / "long.avi", frames=40, fps=12.0)
    job_id = post_video(client, video).get_json()["id"]
    assert gated["entered"].wait(10)  # processing frame 1 of 40
    jobs = app.extensions["ferkit"].jobs
    job = jobs.get(job_id)
    assert job.state == "running" and any((jobs.root / job_id).iterdir())
    assert client.delete(f"/jobs/{job_id}").get_json() == {"deleted": job_id}
    gated["gate"].set()
    assert wait_until(lambda: job.finished is not None)
    assert job.state == "failed" and job.error == "deleted"
    assert job.done_frames < 40  # it stopped, rather than running to the end
    assert not (jobs.root / job_id).exists()
    assert_json_error(client.get(f"/jobs/{job_id}"), 404)


def test_two_job_workers_run_two_jobs_at_once(make_app, gated, tmp_path):
    gated["gate"] = threading.Barrier(2)  # each job's first frame waits for the other job's
    app = make_app(job_workers=2)
    client = app.test_client()
    ids = [post_video(client, write_video(tmp_path / f"{i}.avi", frames=4, fps=12.0)).get_json()["id"]
           for i in range(2)]
    jobs = [wait_for_job(client, job_id) for job_id in ids]
    assert [job["state"] for job in jobs] == ["done", "done"], jobs
    assert gated["peak"] == 2


def test_a_full_job_queue_answers_429_with_retry_after(make_app, gated, tmp_path):
    app = make_app(job_workers=1, job_queue=1)
    client = app.test_client()
    video = write_video(tmp_path / "v.avi", frames=3, fps=12.0)
    running = post_video(client, video).get_json()["id"]
    assert gated["entered"].wait(10)
    queued = post_video(client, video)
    assert queued.status_code == 202 and queued.get_json()["state"] == "queued"
    refused = post_video(client, video)
    body = assert_json_error(refused, 429)
    assert refused.headers["Retry-After"] == "30" and "2 video jobs are already queued or running" in body["error"]["message"]
    assert len(app.extensions["ferkit"].jobs) == 2 and len(list(app.extensions["ferkit"].jobs.root.iterdir())) == 2
    gated["gate"].set()
    assert [wait_for_job(client, i)["state"] for i in (running, queued.get_json()["id"])] == ["done", "done"]
    assert post_video(client, video).status_code == 202  # room again


def test_a_video_over_the_frame_limit_is_refused_413(make_app, tmp_path):
    app = make_app(job_max_frames=11)
    client = app.test_client()
    body = assert_json_error(post_video(client, write_video(tmp_path / "v.avi", frames=12, fps=12.0)), 413)
    assert "12 frames" in body["error"]["message"] and "at most 11" in body["error"]["message"]
    assert list(app.extensions["ferkit"].jobs.root.iterdir()) == []
    assert post_video(client, write_video(tmp_path / "w.avi", frames=11, fps=12.0)).status_code == 202


def test_a_video_longer_than_its_header_says_fails_at_the_limit(make_app, tmp_path, monkeypatch):
    monkeypatch.setattr(jobs_module, "count_readable_frames", lambda path: 3)  # the header under-counts
    app = make_app(job_max_frames=5)
    client = app.test_client()
    video = write_video(tmp_path / "v.avi", frames=12, fps=12.0)
    job = wait_for_job(client, post_video(client, video).get_json()["id"])
    assert job["state"] == "failed" and "more than 5 frames" in job["error"] and job["done_frames"] == 6
    assert job["files"] == {} and list(app.extensions["ferkit"].jobs.root.iterdir()) == []


def test_the_jobs_folder_disk_cap(make_app, gated, tmp_path, monkeypatch):
    video = write_video(tmp_path / "v.avi", frames=30, fps=12.0)
    app = make_app(jobs_max_mb=1)
    jobs = app.extensions["ferkit"].jobs
    client = app.test_client()
    # An upload that would pass the cap is refused before it is written.
    monkeypatch.setattr(jobs, "max_bytes", video.stat().st_size - 1)
    response = post_video(client, video)
    assert_json_error(response, 503)
    assert response.headers["Retry-After"] == "60" and list(jobs.root.iterdir()) == []
    # A job whose results pass it fails, and its files go.
    monkeypatch.setattr(jobs, "max_bytes", video.stat().st_size + 1)
    monkeypatch.setattr(jobs_module, "DISK_CHECK_EVERY", 1)
    job_id = post_video(client, video).get_json()["id"]
    assert gated["entered"].wait(10)
    monkeypatch.setattr(jobs, "max_bytes", jobs_module.folder_bytes(jobs.root) - 1)
    gated["gate"].set()
    job = wait_for_job(client, job_id)
    assert job["state"] == "failed" and "reached its limit of" in job["error"] and job["done_frames"] == 1
    assert list(jobs.root.iterdir()) == []


def test_a_full_disk_during_a_job_fails_it_cleanly(app, client, tmp_path, monkeypatch):
    from ferkit.video import writers

    original, written = writers.CsvWriter.add, []

    def add(self, *args):
        if len(written) == 5:
            raise OSError(errno.ENOSPC, "No space left on device")
        written.append(args[0])
        return original(self, *args)

    monkeypatch.setattr(writers.CsvWriter, "add", add)
    video = write_video(tmp_path / "v.avi", frames=12, fps=12.0)
    job = wait_for_job(client, post_video(client, video).get_json()["id"])
    assert job["state"] == "failed" and job["error"] == ("the server's disk is full; the job was stopped and its "
                                                         "files removed")
    assert job["files"] == {} and list(app.extensions["ferkit"].jobs.root.iterdir()) == []
    monkeypatch.setattr(writers.CsvWriter, "add", original)  # the disk has room again: the server carries on
    video = write_video(tmp_path / "w.avi", frames=4, fps=12.0)
    assert wait_for_job(client, post_video(client, video).get_json()["id"])["state"] == "done"


def test_a_full_disk_while_saving_the_upload_is_503_and_leaves_nothing(app, client, tmp_path, monkeypatch):
    def full(source, target, length=0):
        target.write(source.read(100))
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(jobs_module.shutil, "copyfileobj", full)
    response = post_video(client, write_video(tmp_path / "v.avi", frames=4, fps=12.0))
    body = assert_json_error(response, 503)
    assert "disk is full" in body["error"]["message"] and response.headers["Retry-After"] == "60"
    assert list(app.extensions["ferkit"].jobs.root.iterdir()) == [] and len(app.extensions["ferkit"].jobs) == 0


def corrupt_middle_frame(path: Path) -> Path:
    """Overwrite the middle of the video's 6th JPEG frame with garbage (its markers stay)."""
    data = bytearray(path.read_bytes())
    starts = [m.start() for m in re.finditer(b"\xff\xd8\xff", bytes(data))]
    begin = starts[5] + 600
    data[begin:begin + 400] = bytes(range(256)) + bytes(144)
    path.write_bytes(bytes(data))
    return path


def test_a_corrupt_frame_in_the_middle_of_a_video(app, client, tmp_path):
    video = corrupt_middle_frame(write_video(tmp_path / "v.avi", frames=12, fps=12.0))
    job = wait_for_job(client, post_video(client, video).get_json()["id"])
    # FFmpeg decodes the damaged frame as best it can: the job completes with every frame.
    assert job["state"] == "done" and job["done_frames"] == 12, job
    assert client.get("/api/health").status_code == 200


@pytest.mark.parametrize("host, status", [
    ("localhost", 200), ("localhost:8000", 200), ("127.0.0.1:8000", 200), ("127.9.9.9", 200), ("[::1]:8000", 200),
    ("evil.example:8000", 403), ("evil.example", 403), ("127.0.0.1.evil.example", 403), ("192.168.1.5:8000", 403),
])
def test_an_open_loopback_server_answers_only_to_loopback_host_names(make_app, host, status):
    # DNS rebinding: a page from evil.example re-points its name at 127.0.0.1; the browser then sends
    # `Host: evil.example` to the open loopback server, which must refuse it.
    client = make_app(host="127.0.0.1").test_client()
    response = client.get("/api/health", headers={"Host": host})
    assert response.status_code == status
    if status == 403:
        error = assert_json_error(response, 403)["error"]
        assert error["message"].startswith("this server answers only to localhost and loopback addresses")
        page = client.get("/", headers={"Host": host})
        assert page.status_code == 403 and page.mimetype == "text/html"


def test_a_server_on_other_addresses_answers_to_any_host_name(make_app):
    open_to_all = make_app(host="0.0.0.0", no_auth=True).test_client()
    assert open_to_all.get("/api/health", headers={"Host": "ferkit.lan:8000"}).status_code == 200
    guarded = make_app(host="0.0.0.0", token=TOKEN).test_client()
    assert guarded.get("/api/health", headers={"Host": "ferkit.lan", "Authorization": f"Bearer {TOKEN}"}).status_code == 200


@pytest.mark.parametrize("ttl, words", [(60, "after 1 minute."), (90, "after 2 minutes."), (7200, "after 120 minutes.")])
def test_the_page_says_how_long_results_are_kept_in_words_that_agree(make_app, ttl, words):
    page = make_app(job_ttl=ttl).test_client().get("/").get_data(as_text=True)
    assert f"its results are deleted {words}" in page


@pytest.mark.parametrize("headers, status", [
    ({}, 200),  # curl, scripts: no browser headers
    ({"Sec-Fetch-Site": "same-origin", "Origin": "http://127.0.0.1:8000"}, 200),  # the page itself
    ({"Sec-Fetch-Site": "none"}, 200),  # typed or bookmarked by the user
    ({"Origin": "http://127.0.0.1:8000"}, 200),  # an older browser, the page itself
    ({"Sec-Fetch-Site": "cross-site", "Origin": "https://evil.example"}, 403),
    ({"Sec-Fetch-Site": "same-site", "Origin": "http://127.0.0.1:9999"}, 403),  # another local server's page
    ({"Origin": "https://evil.example"}, 403),  # an older browser, another site
    ({"Origin": "http://127.0.0.1:9999"}, 403),
    ({"Origin": "null"}, 403),  # a sandboxed frame or a file:// page
])
def test_an_open_server_takes_no_upload_from_another_sites_page(make_app, headers, status):
    # A cross-site multipart POST is a CORS "simple" request: the browser sends it without asking first
    client = make_app(host="127.0.0.1").test_client()
    response = client.post("/api/predict", data={"image": (io.BytesIO(png_bytes()), "p.png")},
                           headers={"Host": "127.0.0.1:8000", **headers})
    assert response.status_code == status, response.get_data(as_text=True)[:200]
    if status == 403:
        assert assert_json_error(response, 403)["error"]["message"] == (
            "this server takes uploads and changes only from its own page (this request came from another site's page)")
    # reading is not refused (an MJPEG stream may be shown in the user's own dashboard on another origin)
    assert client.get("/api/health", headers={"Host": "127.0.0.1:8000", **headers}).status_code == 200


def test_a_token_server_refuses_other_sites_pages_by_sec_fetch_site_only(make_app):
    client = make_app(host="0.0.0.0", token=TOKEN).test_client()
    bearer = {"Authorization": f"Bearer {TOKEN}", "Host": "ferkit.lan"}
    # behind a proxy the Host may differ from the page's origin: Origin alone is not compared there
    assert client.delete("/jobs/" + "0" * 32, headers={**bearer, "Origin": "https://ferkit.example"}).status_code == 404
    refused = client.delete("/jobs/" + "0" * 32, headers={**bearer, "Sec-Fetch-Site": "cross-site"})
    assert refused.status_code == 403
