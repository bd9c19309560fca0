"""The web app through the real server, as `ferkit serve` runs it: waitress on a free port of
127.0.0.1, real sockets, real threads; and `ferkit serve` itself as a subprocess for signals."""

from __future__ import annotations

import http.client
import json
import os
import re
import signal
import socket
import subprocess
import sys
from types import SimpleNamespace

import cv2
import numpy as np
import pytest
from conftest import (FakeCapture, ferkit_threads, png_bytes, serve_on_loopback, temporary_jobs_folders, wait_until,
                      write_photo, write_video)

from ferkit.cli import main as cli_main
from ferkit.web import server as server_module
from ferkit.web.engines import broadcast
from ferkit.web.server import announce

LIMIT_MB = 1
TOKEN = "0123456789abcdef-token"

# From conftest.py: pipeline (one per module), make_app, gated; and no thread or jobs folder outlives the module.
pytestmark = pytest.mark.usefixtures("nothing_left_behind")


@pytest.fixture
def serve_app():
    """serve_app(app) -> (host, port) of `app` on waitress, bound to a free port of 127.0.0.1; stopped after."""
    stops = []

    def start(app, threads=4):
        address, stop = serve_on_loopback(app, threads=threads, max_upload_mb=LIMIT_MB)
        stops.append(stop)
        return address

    yield start
    for stop in stops:
        stop()


def request(address, method, path, body=None, headers=None, timeout=30):
    """(status, headers, body) of one request on a new connection."""
    connection = http.client.HTTPConnection(*address, timeout=timeout)
    try:
        connection.request(method, path, body=body, headers=headers or {})
        response = connection.getresponse()
        return response.status, response.headers, response.read()
    finally:
        connection.close()


def json_error(status_headers_body, status: int) -> dict:
    code, headers, body = status_headers_body
    assert code == status, body[:300]
    assert headers["Content-Type"].startswith("application/json"), headers["Content-Type"]
    error = json.loads(body)["error"]
    assert error["status"] == status and error["message"] and b"Traceback" not in body
    return error


def multipart(field: str, filename: str, data: bytes) -> tuple[bytes, dict]:
    boundary = "ferkit-test-boundary"
    body = (f"--{boundary}\r\nContent-Disposition: form-data; name=\"{field}\"; filename=\"{filename}\"\r\n"
            "Content-Type: application/octet-stream\r\n\r\n").encode() + data + f"\r\n--{boundary}--\r\n".encode()
    return body, {"Content-Type": f"multipart/form-data; boundary={boundary}"}


# --- bodies over the limit -------------------------------------------------------------------------------------------
def post_and_read(address, path, headers: dict, body: bytes) -> tuple[int, dict, bytes]:
    """Send the headers, then `body` (which may be shorter than the Content-Length announced), then read
    the answer as curl does. The server may answer 413 and close while the body is still going out: the
    sender sees a broken pipe (it did in CI once), and the answer is still there to read."""
    connection = http.client.HTTPConnection(*address, timeout=30)
    connection.putrequest("POST", path)
    for name, value in headers.items():
        connection.putheader(name, value)
    connection.endheaders()
    try:
        connection.send(body)
    except OSError:
        pass
    response = connection.getresponse()
    result = response.status, response.headers, response.read()
    connection.close()
    return result


def send_headers_and_some_body(address, path, announced: int, sent: int) -> tuple[int, dict, bytes]:
    """Announce `announced` bytes of body and send only `sent` of them."""
    headers = {"Content-Type": "image/jpeg", "Content-Length": str(announced)}
    return post_and_read(address, path, headers, b"\xff" * sent)


def send_whole_body(address, path, body: bytes, headers: dict) -> tuple[int, dict, bytes]:
    return post_and_read(address, path, {**headers, "Content-Length": str(len(body))}, body)


@pytest.mark.parametrize("path", ["/api/predict", "/api/frame?session=abcdefgh", "/jobs"])
def test_a_body_ten_times_the_limit_gets_the_json_413(make_app, serve_app, path):
    address = serve_app(make_app(max_upload_mb=LIMIT_MB))
    status, headers, body = answer = send_headers_and_some_body(address, path, 10 * LIMIT_MB * 2**20, 65536)
    error = json_error(answer, 413)
    assert error["message"] == f"upload larger than the limit of {LIMIT_MB} MB"
    assert error["name"] == "Request Entity Too Large"
    # waitress answers this one itself: byte for byte as Flask's jsonify would, and never cached either
    assert body == (b'{"error":{"message":"upload larger than the limit of %d MB","name":"Request Entity Too Large",'
                    b'"status":413}}\n' % LIMIT_MB)
    assert headers["Cache-Control"] == "no-store"


def test_a_body_just_over_the_limit_sent_whole_gets_the_same_413(make_app, serve_app):
    address = serve_app(make_app(max_upload_mb=LIMIT_MB))
    body, headers = multipart("image", "big.jpg", b"\xff" * (LIMIT_MB * 2**20))
    error = json_error(send_whole_body(address, "/api/predict", body, headers), 413)
    assert error["message"] == f"upload larger than the limit of {LIMIT_MB} MB"
    # ... and one at the limit is read and judged on its content.
    small = png_bytes()
    assert request(address, "POST", "/api/predict", small, {"Content-Type": "image/png"})[0] == 200


def test_a_chunked_body_over_the_limit_gets_the_json_413(make_app, serve_app):
    address = serve_app(make_app(max_upload_mb=LIMIT_MB))
    connection = http.client.HTTPConnection(*address, timeout=30)
    chunks = (b"\xff" * 65536 for _ in range(10 * 16 * LIMIT_MB))  # 10 MB, no Content-Length
    try:
        connection.request("POST", "/api/predict", body=chunks, headers={"Content-Type": "image/jpeg"},
                           encode_chunked=True)
    except OSError:
        pass
    response = connection.getresponse()
    error = json_error((response.status, response.headers, response.read()), 413)
    assert error["message"] == f"upload larger than the limit of {LIMIT_MB} MB"
    connection.close()


def test_waitress_own_errors_are_json_too(make_app, serve_app):
    address = serve_app(make_app())
    with socket.create_connection(address, timeout=10) as sock:
        sock.sendall(b"POST /api/predict HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Length: nope\r\n\r\n")
        answer = b""
        while chunk := sock.recv(65536):
            answer += chunk
    head, body = answer.split(b"\r\n\r\n", 1)
    assert head.startswith(b"HTTP/1.1 400") and b"application/json" in head and b"nosniff" in head
    assert json.loads(body)["error"]["status"] == 400


# --- access ------------------------------------------------------------------------------------------------------------
def test_token_through_the_real_server(make_app, serve_app):
    # The app is configured for every address (so it needs the token); the test binds loopback only.
    address = serve_app(make_app(host="0.0.0.0", token=TOKEN))
    status, headers, body = request(address, "GET", "/")
    assert status == 401 and b'id="login-form"' in body and headers["Cache-Control"] == "no-store"
    json_error(request(address, "GET", "/api/health"), 401)
    json_error(request(address, "GET", "/video_feed"), 401)
    json_error(request(address, "POST", "/jobs", b"x", {"Content-Type": "video/mp4"}), 401)
    assert request(address, "GET", "/static/app.js")[0] == 200
    bearer = {"Authorization": f"Bearer {TOKEN}"}
    assert json.loads(request(address, "GET", "/api/health", headers=bearer)[2])["status"] == "ok"
    assert request(address, "POST", "/api/predict", png_bytes(), {**bearer, "Content-Type": "image/png"})[0] == 200
    # The page: ?token= becomes a cookie, and the cookie opens every route.
    status, headers, _ = request(address, "GET", f"/?token={TOKEN}")
    assert status == 303 and headers["Location"] == "/"
    cookie = headers["Set-Cookie"].split(";")[0]
    assert "HttpOnly" in headers["Set-Cookie"] and "SameSite=Strict" in headers["Set-Cookie"]
    assert request(address, "GET", "/", headers={"Cookie": cookie})[0] == 200
    assert request(address, "GET", "/api/stream", headers={"Cookie": cookie})[0] == 200
    assert request(address, "GET", "/video_feed", headers={"Cookie": cookie})[0] == 503  # no source: not 401


def test_a_body_without_the_token_is_refused_before_it_is_read(make_app, serve_app):
    """The server answers 401 from the headers alone: the client has sent 64 KB of a 1 MB body and
    gets its answer without sending the rest (were the body read first, this would time out)."""
    address = serve_app(make_app(host="0.0.0.0", token=TOKEN))
    for headers in ({}, {"Authorization": f"Bearer {TOKEN[:-1]}X"}, {"Cookie": "ferkit_auth=0123456789abcdef"}):
        connection = http.client.HTTPConnection(*address, timeout=10)
        connection.putrequest("POST", "/api/predict")
        for name, value in {"Content-Type": "image/jpeg", "Content-Length": str(2**20), **headers}.items():
            connection.putheader(name, value)
        connection.endheaders()
        connection.send(b"\xff" * 65536)
        response = connection.getresponse()
        error = json_error((response.status, response.headers, response.read()), 401)
        assert "Authorization: Bearer TOKEN" in error["message"] and response.headers["WWW-Authenticate"]
        connection.close()
    # With the token (header or the page's cookie) the same body goes through to the app.
    bearer = {"Authorization": f"Bearer {TOKEN}", "Content-Type": "image/png"}
    assert request(address, "POST", "/api/predict", png_bytes(), bearer)[0] == 200
    cookie = request(address, "GET", f"/?token={TOKEN}")[1]["Set-Cookie"].split(";")[0]
    assert request(address, "POST", "/api/predict", png_bytes(), {"Cookie": cookie, "Content-Type": "image/png"})[0] == 200


def test_the_token_is_printed_with_the_url_and_no_auth_warns(make_app, capsys):
    server = SimpleNamespace(effective_host="0.0.0.0", effective_port=5123)
    generated = make_app(host="0.0.0.0")
    announce(generated.extensions["ferkit"].config, generated, server)
    out = capsys.readouterr().out
    token = generated.extensions["ferkit"].auth.token
    # bound to every address: this machine's loopback address to open (a secure context: the camera works), and
    # the host name for other machines
    assert f"ferkit: open http://127.0.0.1:5123/?token={token}\n" in out and "generated for this run" in out
    assert f"ferkit: from other machines: http://{socket.gethostname()}:5123/?token={token} (or" in out
    assert "0.0.0.0:5123" not in out
    open_app = make_app(host="0.0.0.0", no_auth=True)
    announce(open_app.extensions["ferkit"].config, open_app, server)
    out = capsys.readouterr().out
    assert "WARNING: --no-auth" in out and "?token=" not in out
    assert f"ferkit: open http://127.0.0.1:5123/\nferkit: from other machines: http://{socket.gethostname()}:5123/" in out
    local = make_app()
    announce(local.extensions["ferkit"].config, local, SimpleNamespace(effective_host="127.0.0.1", effective_port=1))
    out = capsys.readouterr().out
    assert "http://127.0.0.1:1/\n" in out and "WARNING" not in out and "token" not in out and "other machines" not in out
    v6 = make_app(host="::1")
    announce(v6.extensions["ferkit"].config, v6, SimpleNamespace(effective_host="::1", effective_port=2))
    assert "ferkit: open http://[::1]:2/\n" in capsys.readouterr().out


# --- backpressure ------------------------------------------------------------------------------------------------------
def test_a_full_job_queue_is_429_through_the_server(make_app, serve_app, gated, tmp_path):
    app = make_app(job_workers=1, job_queue=1)
    address = serve_app(app)
    body, headers = multipart("video", "v.avi", write_video(tmp_path / "v.avi", frames=3, fps=12.0).read_bytes())
    first = request(address, "POST", "/jobs", body, headers)
    assert first[0] == 202 and gated["entered"].wait(10)
    assert request(address, "POST", "/jobs", body, headers)[0] == 202
    refused = request(address, "POST", "/jobs", body, headers)
    json_error(refused, 429)
    assert refused[1]["Retry-After"] == "30"
    gated["gate"].set()
    job_id = json.loads(first[2])["id"]
    assert wait_until(lambda: json.loads(request(address, "GET", f"/jobs/{job_id}")[2])["state"] == "done", 60)


# --- faults ---------------------------------------------------------------------------------------------------------------
def test_a_client_that_disconnects_mid_upload_leaves_nothing(make_app, serve_app, tmp_path):
    app = make_app()
    address = serve_app(app)
    body, headers = multipart("video", "v.avi", write_video(tmp_path / "v.avi", frames=30, fps=12.0).read_bytes())
    for path in ("/jobs", "/api/predict"):
        with socket.create_connection(address, timeout=10) as sock:
            sock.sendall(f"POST {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: {headers['Content-Type']}\r\n"
                         f"Content-Length: {len(body)}\r\n\r\n".encode() + body[: len(body) // 2])
        # gone, half-way through
    assert request(address, "GET", "/api/health")[0] == 200
    assert list(app.extensions["ferkit"].jobs.root.iterdir()) == [] and len(app.extensions["ferkit"].jobs) == 0
    assert app.extensions["ferkit"].inference.in_use == 0
    assert request(address, "POST", "/jobs", body, headers)[0] == 202  # the next client is served


def read_mjpeg_frame(stream) -> np.ndarray:
    length = None
    while (line := stream.readline()) != b"\r\n" or length is None:
        assert line, "the stream ended"
        if line.lower().startswith(b"content-length:"):
            length = int(line.split(b":")[1])
    jpeg = stream.read(length)
    stream.readline()
    return cv2.imdecode(np.frombuffer(jpeg, np.uint8), cv2.IMREAD_COLOR)


def test_a_camera_that_dies_mid_stream_is_reopened_and_the_others_are_served(make_app, serve_app, monkeypatch):
    monkeypatch.setattr(broadcast, "FIRST_RETRY_S", 0.05)
    monkeypatch.setattr(broadcast, "LAST_RETRY_S", 0.2)
    app = make_app(source="0", stream_max_fps=100, stream_idle_s=0.2)
    opens = []
    outcomes = [FakeCapture(5), None, None, None, FakeCapture(10_000)]  # 5 frames, unplugged, back

    def open_source(source):
        opens.append(source)
        return outcomes[min(len(opens), len(outcomes)) - 1]

    feeder = app.extensions["ferkit"].broadcaster
    feeder.open_source = open_source
    address = serve_app(app)
    connection = http.client.HTTPConnection(*address, timeout=30)
    connection.request("GET", "/video_feed")
    response = connection.getresponse()
    assert response.status == 200 and response.headers["Content-Type"].startswith("multipart/x-mixed-replace")
    shapes, errors = [], []
    for _ in range(400):
        shapes.append(read_mjpeg_frame(response.fp).shape)
        errors.append(json.loads(request(address, "GET", "/api/stream")[2])["error"])
        if len(opens) >= 5 and shapes[-1] == (90, 120, 3) and shapes.count((360, 640, 3)):
            break
    camera, placeholder = (90, 120, 3), (360, 640, 3)
    assert shapes[0] == camera and placeholder in shapes and shapes[-1] == camera  # camera, outage, camera
    assert any(error and "unavailable" in error for error in errors)  # what the page shows meanwhile
    assert feeder.opens == 2 and feeder.error is None
    assert request(address, "GET", "/api/health")[0] == 200
    # The viewer goes away mid-stream: the server notices and counts it out.
    assert feeder.status()["viewers"] == 1
    response.close()
    connection.close()
    assert wait_until(lambda: feeder.status()["viewers"] == 0, timeout=10)
    assert wait_until(lambda: not feeder.running, timeout=10)  # and stops the capture once idle


def test_live_stream_viewers_are_capped(make_app, serve_app, tmp_path):
    app = make_app(source=str(write_video(tmp_path / "clip.avi", frames=6, fps=12.0)), stream_idle_s=0.2, threads=2)
    address = serve_app(app, threads=4)
    assert app.extensions["ferkit"].broadcaster.max_viewers == 1
    connection = http.client.HTTPConnection(*address, timeout=30)
    connection.request("GET", "/video_feed")
    response = connection.getresponse()
    assert read_mjpeg_frame(response.fp).shape == (120, 160, 3)
    refused = request(address, "GET", "/video_feed")
    json_error(refused, 503)
    assert refused[1]["Retry-After"] == "5"
    connection.close()


# --- the command ----------------------------------------------------------------------------------------------------
def test_a_server_whose_wake_up_pipe_is_closed_still_stops(make_app):
    """stop_server wakes waitress's loop (in another thread) through a pipe; with that pipe's write end
    gone (EBADF, seen once in a full run), the server still stops: loop ended, port freed, no error."""
    import threading

    from ferkit.config import Config, ServeConfig
    from ferkit.web.server import make_server, stop_server

    server = make_server(Config(serve=ServeConfig(host="127.0.0.1", port=0, threads=2)), make_app())
    thread = threading.Thread(target=server.run, name="test-waitress-loop", daemon=True)
    thread.start()
    address = (server.effective_host, server.effective_port)
    assert request(address, "GET", "/api/health")[0] == 200
    real_fd = server.trigger.trigger
    server.trigger.trigger = 2**20  # no such descriptor: os.write raises EBADF, as it did
    try:
        stop_server(server, thread)
        assert not thread.is_alive()
        with pytest.raises(ConnectionRefusedError):
            socket.create_connection(address, timeout=5)
    finally:
        server.trigger.trigger = real_fd
        server.trigger.close()


def test_a_busy_port_is_a_one_line_error_and_leaves_nothing(tiny_model_dir, capsys):
    threads, folders = ferkit_threads(), temporary_jobs_folders()
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        assert cli_main(["serve", "--model", str(tiny_model_dir), "--port", str(port)]) == 2
    err = capsys.readouterr().err
    assert err.strip() == f"ferkit serve: error: cannot listen on 127.0.0.1:{port}: Address already in use"
    assert ferkit_threads() == threads and temporary_jobs_folders() == folders


def test_a_jobs_dir_whose_name_is_not_utf8_is_refused(tmp_path):
    """Uploads there are probed by name with OpenCV, which segfaults on such names. Called directly: with the
    check gone, `ferkit serve` would start and never return."""
    from ferkit.errors import FerkitError

    bad = tmp_path / os.fsdecode(b"jobs\xfe")
    with pytest.raises(FerkitError) as error:
        server_module.check_jobs_dir(bad)
    assert str(error.value) == f"--jobs-dir {tmp_path}/jobs\\xfe: its name is not valid UTF-8; choose another folder"
    assert not bad.exists()


@pytest.mark.parametrize("make_bad", [lambda tmp: tmp / "a-file", lambda tmp: tmp / "a-file" / "below"])
def test_an_unwritable_jobs_dir_is_a_one_line_error(tiny_model_dir, tmp_path, capsys, make_bad):
    (tmp_path / "a-file").write_text("not a folder")
    bad = make_bad(tmp_path)
    assert cli_main(["serve", "--model", str(tiny_model_dir), "--port", "0", "--jobs-dir", str(bad)]) == 2
    err = capsys.readouterr().err
    assert err.startswith(f"ferkit serve: error: --jobs-dir {bad}: not a writable folder (") and err.count("\n") == 1


@pytest.mark.parametrize("host", ["nonexistent.invalid", "256.1.1.1"])
def test_a_host_that_does_not_resolve_is_a_one_line_error(tiny_model_dir, capsys, host):
    """waitress said only "ValueError: Invalid host/port specified." in a traceback; the resolver's reason
    (what getaddrinfo says here: it differs between resolvers) now comes in one line, before the model loads."""
    with pytest.raises(socket.gaierror) as failed:
        socket.getaddrinfo(host, 0, socket.AF_UNSPEC, socket.SOCK_STREAM, socket.IPPROTO_TCP, socket.AI_PASSIVE)
    assert cli_main(["serve", "--model", str(tiny_model_dir), "--host", host, "--port", "0"]) == 2
    assert capsys.readouterr().err == f"ferkit serve: error: cannot listen on {host}:0: {failed.value.strerror}\n"


@pytest.fixture
def serve_once(monkeypatch):
    """`ferkit serve ARGS` in this process, its server returning at once as on Ctrl+C: (exit code, stderr,
    whether the app was made, i.e. the model loaded)."""
    from waitress.server import BaseWSGIServer

    made = []
    monkeypatch.setattr(BaseWSGIServer, "run", lambda server: None)
    create_app = server_module.create_app
    monkeypatch.setattr(server_module, "create_app", lambda config: made.append(1) or create_app(config))

    def run(capsys, *args):
        code = cli_main(["serve", "--port", "0", *map(str, args)])
        return code, capsys.readouterr().err, bool(made)

    return run


def text_as_mp4(tmp_path):
    (tmp_path / "notes.mp4").write_text("not a video\n")
    return tmp_path / "notes.mp4"


def photo_as_mp4(tmp_path):
    return write_photo(tmp_path / "photo.png").rename(tmp_path / "photo.mp4")


@pytest.mark.parametrize("make_source, reason", [
    (lambda tmp: tmp / "missing.mp4", "no such file"),
    (lambda tmp: tmp, "not a file"),  # a folder
    (lambda tmp: (tmp / "empty.mp4").touch() or tmp / "empty.mp4", "the file is empty"),
    (text_as_mp4, "not a video OpenCV can read (corrupt, or an unsupported format)"),
    (lambda tmp: write_photo(tmp / "photo.jpg"), "is an image, not a video (use `ferkit predict` for images)"),
    (photo_as_mp4, "is an image, not a video (use `ferkit predict` for images)"),
    (lambda tmp: "-1", "a camera index is 0 or more"),
])
def test_a_source_that_cannot_work_is_a_one_line_error_at_start(serve_once, capsys, tiny_model_dir, tmp_path,
                                                               make_source, reason):
    """Such a source used to start the server, whose stream then said "video source unavailable; retrying"
    forever: now it is refused before the model loads."""
    source = make_source(tmp_path)
    code, err, loaded = serve_once(capsys, "--model", tiny_model_dir, f"--source={source}")
    assert (code, err, loaded) == (2, f"ferkit serve: error: --source {source}: {reason}\n", False)


def test_a_camera_that_opens_without_a_frame_is_a_one_line_error_at_start(serve_once, capsys, tiny_model_dir,
                                                                         monkeypatch):
    monkeypatch.setattr(broadcast, "open_capture", lambda source: FakeCapture(0))
    code, err, loaded = serve_once(capsys, "--model", tiny_model_dir, "--source", "0")
    assert (code, err, loaded) == (2, "ferkit serve: error: --source 0: the camera opens but gives no frame\n", False)


@pytest.mark.parametrize("source, reason", [("99", "the camera cannot be opened"),
                                            ("rtsp://127.0.0.1:9/none", "the stream cannot be opened")])
def test_a_camera_or_stream_that_cannot_be_opened_is_one_line_at_start(tiny_model_dir, source, reason):
    """Through a real process: nothing else (no OpenCV or FFmpeg warning) on stderr."""
    result = subprocess.run([sys.executable, "-m", "ferkit.cli", "serve", "--model", str(tiny_model_dir), "--port",
                             "0", "--source", source], capture_output=True, text=True, timeout=60)
    assert (result.returncode, result.stderr, result.stdout) == (2, f"ferkit serve: error: --source {source}: "
                                                                    f"{reason}\n", "")


@pytest.mark.parametrize("kind", ["camera", "file"])
def test_a_source_that_works_starts_the_server(serve_once, capsys, tiny_model_dir, tmp_path, monkeypatch, kind):
    monkeypatch.setattr(broadcast, "open_capture", lambda source: FakeCapture(3))
    source = "0" if kind == "camera" else write_video(tmp_path / "clip.avi", frames=3)
    assert serve_once(capsys, "--model", tiny_model_dir, "--source", source) == (0, "", True)


def test_a_source_with_one_thread_is_refused_at_start(serve_once, capsys, tiny_model_dir, tmp_path, monkeypatch):
    """One viewer would hold the only thread: the page, /api/stream and the API waited until it left (an audit)."""
    monkeypatch.setattr(broadcast, "open_capture", lambda source: FakeCapture(3))
    code, err, loaded = serve_once(capsys, "--model", tiny_model_dir, "--source", "0", "--threads", "1")
    assert (code, err, loaded) == (2, "ferkit serve: error: --source needs --threads 2 or more: each /video_feed "
                                      "viewer holds a worker thread\n", False)
    assert serve_once(capsys, "--model", tiny_model_dir, "--source", "0", "--threads", "2") == (0, "", True)
    assert serve_once(capsys, "--model", tiny_model_dir, "--threads", "1") == (0, "", True)  # no stream: no viewer


def start_serve(args: list[str]) -> tuple[subprocess.Popen, tuple[str, int]]:
    process = subprocess.Popen([sys.executable, "-m", "ferkit.cli", "serve", "--port", "0", *args],
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                               env={**os.environ, "PYTHONUNBUFFERED": "1"})
    lines = []
    for _ in range(50):  # its first lines say where it listens
        line = process.stdout.readline()
        lines.append(line)
        if match := re.search(r"open http://127\.0\.0\.1:(\d+)/", line):
            return process, ("127.0.0.1", int(match.group(1)))
        if not line:
            break
    process.kill()
    raise AssertionError("".join(lines) + process.stderr.read())


def test_sigterm_stops_running_jobs_and_removes_their_files(tiny_model_dir, tmp_path):
    jobs_dir = tmp_path / "jobs"
    process, address = start_serve(["--model", str(tiny_model_dir), "--jobs-dir", str(jobs_dir)])
    try:
        # A long, small video that compresses well.
        video = write_video(tmp_path / "long.avi", 3000, fps=25.0, size=(320, 240), pattern="gradient")
        body, headers = multipart("video", "long.avi", video.read_bytes())
        status, _, answer = request(address, "POST", "/jobs", body, headers, timeout=60)
        assert status == 202, answer
        job_id = json.loads(answer)["id"]
        assert wait_until(lambda: json.loads(request(address, "GET", f"/jobs/{job_id}")[2])["done_frames"] > 0, 60)
        assert any((jobs_dir / job_id).iterdir())  # it is writing its results
        process.send_signal(signal.SIGTERM)
        assert process.wait(timeout=60) == 0
    finally:
        if process.poll() is None:
            process.kill()
    assert "Traceback" not in process.stderr.read()
    assert list(jobs_dir.iterdir()) == []  # the running job stopped and its files went
