"""End to end in headless Debian Chromium: the page as a visitor uses it.

The page's camera is Chromium's fake camera playing a real video (converted to Y4M here), so the
whole path runs: getUserMedia -> JPEG frames -> /api/frame -> boxes, labels, chart and fps on the
page. Screenshots go to artifacts/ (gitignored). Only 127.0.0.1 is ever contacted.
"""

from __future__ import annotations

import json
import re
import urllib.request
from pathlib import Path

import cv2
import numpy as np
import pytest
from conftest import serve_on_loopback, wait_until, write_video

from ferkit.config import REPO_ROOT, Config, ServeConfig
from ferkit.labels import CLASS_NAMES
from ferkit.video.writers import CSV_COLUMNS
from ferkit.web import create_app

CHROMIUM = Path("/usr/bin/chromium")
VIDEO = "data/media/videos/WolfgangLanger_Pexels.mp4"
PHOTO = "data/media/photos/multi_face.jpg"
ARTIFACTS = REPO_ROOT / "artifacts"
LABEL = re.compile(rf"^#\d+ ({'|'.join(CLASS_NAMES)}) \d+%$")

# nothing_left_behind (conftest.py): no thread or jobs folder outlives the module.
pytestmark = [pytest.mark.browser, pytest.mark.shared, pytest.mark.usefixtures("nothing_left_behind")]


@pytest.fixture(scope="module")
def sync_playwright():
    if not CHROMIUM.is_file():
        pytest.skip(f"{CHROMIUM} is missing (apt-get install chromium)")
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        pytest.skip("playwright is not installed (pip install playwright; its own browser download is not needed)")
    return sync_playwright


@pytest.fixture(scope="module")
def video_path() -> Path:
    from ferkit.config import default_shared_dir

    path = default_shared_dir() / VIDEO
    if not path.is_file():
        pytest.skip(f"{path} is missing (../shared/data/media)")
    return path


def write_y4m(video: Path, target: Path, seconds: float = 3.0) -> Path:
    """The first seconds of `video` as raw I420 frames in a Y4M file: Chromium's fake camera input."""
    capture = cv2.VideoCapture(str(video))
    fps = capture.get(cv2.CAP_PROP_FPS) or 24.0
    width, height = int(capture.get(cv2.CAP_PROP_FRAME_WIDTH)), int(capture.get(cv2.CAP_PROP_FRAME_HEIGHT))
    with open(target, "wb") as out:
        out.write(f"YUV4MPEG2 W{width} H{height} F{round(fps)}:1 Ip A1:1 C420jpeg\n".encode())
        for _ in range(round(seconds * fps)):
            ok, frame = capture.read()
            if not ok:
                break
            out.write(b"FRAME\n" + cv2.cvtColor(frame, cv2.COLOR_BGR2YUV_I420).tobytes())
    capture.release()
    return target


def write_clip(video: Path, target: Path, frames: int = 24, width: int = 320) -> Path:
    """A short, small AVI cut from `video`, to upload as a video job."""
    capture = cv2.VideoCapture(str(video))
    fps = capture.get(cv2.CAP_PROP_FPS) or 24.0

    def resized():
        for _ in range(frames):
            ok, frame = capture.read()
            if not ok:
                break
            yield cv2.resize(frame, (width, round(frame.shape[0] * width / frame.shape[1])))

    write_video(target, resized(), fps=fps)
    capture.release()
    return target


def start_server(tiny_model_dir: Path, jobs_dir: Path, source: str | None = None, token: str | None = None):
    """(base URL, stop function) of the app on waitress, bound to a free port of 127.0.0.1. With a
    token, the app is configured as if bound to every address, so it asks for the token."""
    config = Config(model=str(tiny_model_dir), serve=ServeConfig(port=0, threads=4, source=source,
                                                                 jobs_dir=str(jobs_dir)))
    app = create_app(config.updated(serve={"host": "0.0.0.0", "token": token}) if token else config)
    (_, port), stop_serving = serve_on_loopback(app, threads=4)

    def stop():
        app.extensions["ferkit"].close()  # ends live streams and jobs first, so waitress's threads can finish
        stop_serving()

    return f"http://127.0.0.1:{port}", stop


@pytest.fixture(scope="module")
def server(tiny_model_dir, tmp_path_factory):
    url, stop = start_server(tiny_model_dir, tmp_path_factory.mktemp("jobs"))
    yield url
    stop()


@pytest.fixture(scope="module")
def browser(sync_playwright, video_path, tmp_path_factory):
    y4m = write_y4m(video_path, tmp_path_factory.mktemp("camera") / "camera.y4m")
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=str(CHROMIUM), headless=True, args=[
            "--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
            "--disable-sync", "--no-first-run", "--use-fake-ui-for-media-stream",
            "--use-fake-device-for-media-stream", f"--use-file-for-fake-video-capture={y4m}"])
        yield browser
        browser.close()


@pytest.fixture
def expected_errors() -> list[str]:
    """Regular expressions of the error answers (and Chromium's console lines about them) a test provokes on
    purpose: the page fixture lets those pass."""
    return []


@pytest.fixture
def page(browser, expected_errors):
    """A fresh page; the test fails on any JavaScript error on it."""
    context = browser.new_context(viewport={"width": 1200, "height": 1000})
    page = context.new_page()
    # Anything the Content-Security-Policy blocks (inline script or style, eval) becomes an error here.
    page.add_init_script("document.addEventListener('securitypolicyviolation', "
                         "(e) => console.error(`CSP violation: ${e.violatedDirective} ${e.blockedURI}`))")
    errors = []
    page.on("pageerror", lambda exc: errors.append(str(exc)))
    page.on("console", lambda msg: errors.append(msg.text) if msg.type == "error" else None)
    page.on("response", lambda response: errors.append(f"{response.status} {response.url}")
            if response.status >= 400 else None)
    yield page
    context.close()
    errors = [error for error in errors if not any(re.search(pattern, error) for pattern in expected_errors)]
    assert errors == [], errors


def screenshot(page, name: str) -> Path:
    ARTIFACTS.mkdir(exist_ok=True)
    path = ARTIFACTS / name
    page.screenshot(path=str(path), full_page=True)
    return path


def test_camera_faces_get_boxes_labels_chart_and_fps(page, server):
    page.goto(server)
    assert "No server-side video source is configured" in page.inner_text("#no-source")
    page.click("#camera-start")
    page.wait_for_selector("#camera-overlay .face-box .face-label", timeout=60_000)
    page.wait_for_function("() => parseFloat(document.getElementById('camera-fps').textContent) > 0", timeout=30_000)
    # One snapshot: the overlay is redrawn for every frame.
    labels, box, video = page.evaluate("""() => {
        const rect = (el) => {
            const r = el.getBoundingClientRect();
            return {x: r.x, width: r.width, height: r.height};
        };
        const boxes = [...document.querySelectorAll('#camera-overlay .face-box')];
        return [boxes.map(b => b.querySelector('.face-label').textContent), rect(boxes[0]),
                rect(document.getElementById('camera-video'))];
    }""")
    assert labels and all(LABEL.match(text) for text in labels), labels
    assert box["width"] > 20 and box["height"] > 20
    assert video["x"] <= box["x"] and box["x"] + box["width"] <= video["x"] + video["width"] + 1  # on the video
    widths = page.eval_on_selector_all("#score-chart .chart-fill", "bars => bars.map(b => parseFloat(b.style.width))")
    assert len(widths) == len(CLASS_NAMES) and 95 <= sum(widths) <= 105  # percent bars of scores summing to 1
    assert "face" in page.inner_text("#camera-status")
    shot = screenshot(page, "web-camera.png")
    assert shot.stat().st_size > 10_000
    page.click("#camera-stop")
    assert page.locator("#camera-overlay .face-box").count() == 0


def test_camera_csv_is_every_answered_frame_in_ferkit_video_s_columns(page, server):
    answers = []
    page.on("response", lambda r: answers.append(r) if "/api/frame" in r.url and r.status == 200 else None)
    page.goto(server)
    assert page.is_disabled("#camera-csv")
    page.click("#camera-start")
    page.wait_for_selector("#camera-overlay .face-box", timeout=60_000)
    page.wait_for_function("() => camera.frames >= 6", timeout=30_000)
    page.click("#camera-stop")
    with page.expect_download() as download:
        page.click("#camera-csv")
    assert download.value.suggested_filename == "camera.csv"
    data = Path(download.value.path()).read_bytes().decode()
    lines = data.split("\r\n")
    assert lines[0] == ",".join(CSV_COLUMNS) and lines[-1] == ""  # Python csv's line ends, as `ferkit video`
    rows = [line.split(",") for line in lines[1:-1]]
    frames = sorted({int(row[0]) for row in rows})
    assert frames == list(range(len(frames))) and len(frames) >= 6
    expected = []
    for index, answer in enumerate(answers[: len(frames)]):  # one frame in flight: answers come in frame order
        faces = answer.json()["faces"]
        expected += [[str(index), "", "", "", "", "", "", "", *[""] * len(CLASS_NAMES)]] if not faces else [
            [str(index), str(f["face_id"]), *map(str, f["box"]), "" if f["det_score"] is None else f"{f['det_score']:.4f}",
             f["emotion"], *(f"{f['scores'][name]:.4f}" for name in CLASS_NAMES)] for f in faces]
    assert [[row[0], *row[2:]] for row in rows] == expected
    seconds = [float(row[1]) for row in rows]
    assert seconds[0] == 0 and seconds == sorted(seconds) and seconds[-1] > 0
    assert any(row[2] for row in rows)  # faces were found, not only empty frames
    page.click("#camera-start")  # a new run starts a new CSV: its own frames from 0, none of the first run's
    page.wait_for_function("() => camera.running && camera.frames >= 2", timeout=30_000)  # after its reset
    page.click("#camera-stop")
    with page.expect_download() as download:
        page.click("#camera-csv")
    again = [line.split(",") for line in Path(download.value.path()).read_text().splitlines()[1:]]
    count = page.evaluate("camera.frames")
    assert sorted({int(row[0]) for row in again}) == list(range(count)) and float(again[0][1]) == 0


def test_a_full_camera_csv_says_which_frames_it_holds(page, server):
    """The page keeps at most CSV_MAX_ROWS rows; the button says when that is reached instead of dropping silently."""
    page.goto(server)
    page.click("#camera-start")
    page.wait_for_function("() => camera.frames >= 2", timeout=60_000)
    full_at = page.evaluate("""() => {  // rows up to the cap, as if the run had gone on for hours
        while (camera.rows.length < CSV_MAX_ROWS) camera.rows.push(camera.rows[camera.rows.length - 1]);
        return camera.frames;
    }""")
    page.wait_for_function(f"() => camera.frames >= {full_at + 2}", timeout=30_000)
    page.click("#camera-stop")
    assert page.inner_text("#camera-csv") == f"Download CSV (full: frames 0-{full_at - 1})"
    with page.expect_download() as download:
        page.click("#camera-csv")
    lines = Path(download.value.path()).read_text().splitlines()
    assert len(lines) == 1 + page.evaluate("CSV_MAX_ROWS") and int(lines[-1].split(",")[0]) == full_at - 1
    page.click("#camera-start")  # a new run: an empty CSV again
    page.wait_for_function("() => camera.running && camera.frames >= 1", timeout=30_000)
    assert page.inner_text("#camera-csv") == "Download CSV"


def frame_sessions(urls: list[str]) -> list[str]:
    return [re.search(r"[?&]session=([^&]+)", url).group(1) for url in urls if "/api/frame" in url]


def test_each_start_camera_is_a_fresh_video_with_its_own_session(page, server):
    """Stop then Start camera: a new session id, so the server's tracker starts anew (no face in the first 3
    frames, as in a first run) instead of carrying on with the previous run's faces."""
    sent = []
    page.on("request", lambda request: sent.append(request.url))
    page.goto(server)
    page.click("#camera-start")
    page.wait_for_function("() => camera.frames >= 6 && camera.rows.at(-1)[2] !== ''", timeout=60_000)  # a face
    page.click("#camera-stop")
    first = frame_sessions(sent)
    sent.clear()
    page.click("#camera-start")
    page.wait_for_function("() => camera.running && camera.frames >= 4", timeout=30_000)
    page.click("#camera-stop")
    second = frame_sessions(sent)
    assert len(set(first)) == 1 and len(set(second)) == 1 and first[0] != second[0]
    with page.expect_download() as download:
        page.click("#camera-csv")
    rows = [line.split(",") for line in Path(download.value.path()).read_text().splitlines()[1:]]
    assert [row[:3] for row in rows[:3]] == [["0", "0.000", ""], ["1", rows[1][1], ""], ["2", rows[2][1], ""]]


@pytest.mark.parametrize("refusal, status", [
    ("logged out", "Logged out (the server may have restarted): reload the page and log in again."),
    ("bad session", "The camera stopped: ?session= must be 8-64 letters, digits, '-' or '_' (one random id per "
                    "browser tab)"),
])
def test_the_camera_stops_when_the_server_refuses_its_frames(page, tiny_model_dir, tmp_path, expected_errors,
                                                             refusal, status):
    """A 401 or another 4xx (not 429) would refuse every next frame too: the camera stops and the page says why,
    instead of posting a frame a second forever under "The server did not answer"."""
    token = "browser-test-token-0123456789"
    url, stop = start_server(tiny_model_dir, tmp_path / "jobs", token=token)
    expected_errors += [r"\b401\b"] if refusal == "logged out" else [r"\b400\b"]
    frames = []
    page.on("request", lambda request: frames.append(request.url) if "/api/frame" in request.url else None)
    try:
        page.goto(f"{url}/?token={token}")
        page.click("#camera-start")
        page.wait_for_function("() => camera.frames >= 2", timeout=60_000)
        if refusal == "logged out":  # as after a restart of the server, whose login cookies then mean nothing
            page.context.clear_cookies()
        else:
            page.route("**/api/frame?*", lambda route: route.continue_(
                url=route.request.url.replace("session=", "session=%21")))
        page.wait_for_function("() => !camera.running", timeout=30_000)
        sent = len(frames)
        page.wait_for_timeout(2500)  # the old loop retried every second
        assert len(frames) == sent and page.inner_text("#camera-status") == status
        assert "error" in page.get_attribute("#camera-status", "class")
        assert page.is_enabled("#camera-start") and page.locator("#camera-stage").is_hidden()
    finally:
        page.goto("about:blank")
        stop()


@pytest.mark.parametrize("failure", ["429", "415", "network"])
def test_the_camera_retries_after_a_busy_server_or_a_lost_connection(page, server, expected_errors, failure):
    # 415: one frame the server could not decode says nothing of the next one
    expected_errors += {"429": [r"\b429\b"], "415": [r"\b415\b"], "network": ["ERR_FAILED"]}[failure]
    failed = []

    def fail_three(route):
        if len(failed) == 3:
            return route.continue_()
        failed.append(route.request.url)
        if failure == "429":
            route.fulfill(status=429, headers={"Retry-After": "0"}, json={"error": {"message": "busy"}})
        elif failure == "415":
            route.fulfill(status=415, json={"error": {"message": "image: not an image OpenCV can read"}})
        else:
            route.abort("failed")

    page.route("**/api/frame?*", fail_three)
    page.goto(server)
    page.click("#camera-start")
    page.wait_for_function("() => camera.frames >= 2", timeout=60_000)  # answered frames after the failures
    assert len(failed) == 3 and page.evaluate("camera.running")
    page.click("#camera-stop")


def test_a_server_error_on_a_camera_frame_is_said_as_such_and_retried(page, server, expected_errors):
    # the server answered: "did not answer" (kept for lost connections) would send the user to the network
    expected_errors += [r"\b500\b"]
    page.route("**/api/frame?*", lambda route: route.fulfill(
        status=500, json={"error": {"status": 500, "name": "Internal Server Error", "message": "processing failed"}}))
    page.goto(server)
    page.click("#camera-start")
    page.wait_for_function("() => document.querySelector('#camera-status').textContent.includes('analyse')",
                           timeout=30_000)
    assert page.inner_text("#camera-status") == "The server could not analyse a frame (processing failed); retrying…"
    assert page.evaluate("camera.running")
    page.unroute("**/api/frame?*")
    page.wait_for_function("() => camera.frames >= 2", timeout=60_000)  # and it goes on once the server does
    page.click("#camera-stop")


def test_score_bars_are_as_long_as_their_numbers(page, server):
    """Each frame's bars are drawn at their scores at once: no width transition leaves a bar behind its number."""
    page.goto(server)
    scores = [0.07, 0.01, 0.12, 0.55, 0.05, 0.13, 0.07]
    for frame in (scores, scores[::-1]):
        shown = page.evaluate("""(scores) => {
            showScores({scores});
            return [...document.querySelectorAll('#score-chart .chart-row')].map((row) => [
                row.querySelector('.chart-value').textContent,
                100 * row.querySelector('.chart-fill').getBoundingClientRect().width
                    / row.querySelector('.chart-track').getBoundingClientRect().width]);
        }""", dict(zip(CLASS_NAMES, frame)))
        assert [text for text, _ in shown] == [f"{round(100 * score)}%" for score in frame]
        assert [width for _, width in shown] == pytest.approx([100 * score for score in frame], abs=0.5)
        page.wait_for_timeout(300)


@pytest.mark.parametrize("script, message", [
    ("navigator.mediaDevices.getUserMedia = () => Promise.reject(new DOMException('no', 'NotAllowedError'))",
     "denied"),
    ("navigator.mediaDevices.getUserMedia = () => Promise.reject(new DOMException('no', 'NotFoundError'))",
     "No camera was found"),
    ("Object.defineProperty(navigator, 'mediaDevices', {value: undefined})", "offers no camera"),
])
def test_camera_denied_or_missing_degrades_gracefully(page, server, script, message):
    page.add_init_script(script)
    page.goto(server)
    page.click("#camera-start")
    page.wait_for_function(f"() => document.getElementById('camera-status').textContent.includes({message!r})",
                           timeout=10_000)
    assert "error" in page.get_attribute("#camera-status", "class")
    assert page.is_enabled("#camera-start") and page.locator("#camera-stage").is_hidden()


def test_photo_upload_shows_annotated_image_and_table(page, server, video_path):
    photo = video_path.parents[1] / "photos" / Path(PHOTO).name
    page.goto(server)
    page.set_input_files("#photo-file", str(photo))
    page.click("#photo-form button[type=submit]")
    page.wait_for_selector("#photo-faces tbody tr", timeout=30_000)
    assert page.evaluate("document.getElementById('photo-annotated').naturalWidth") == 1000
    rows = page.locator("#photo-faces tbody tr")
    assert rows.count() >= 3
    cells = rows.first.locator("td").all_inner_texts()
    assert cells[2] in CLASS_NAMES and len(cells) == 3 + len(CLASS_NAMES)
    screenshot(page, "web-photo.png")


def test_a_failed_photo_analysis_hides_the_previous_result(page, server, video_path, tmp_path, expected_errors):
    expected_errors += [r"\b415\b"]
    page.goto(server)
    page.set_input_files("#photo-file", str(video_path.parents[1] / "photos" / Path(PHOTO).name))
    page.click("#photo-form button[type=submit]")
    page.wait_for_selector("#photo-faces tbody tr", timeout=30_000)
    notes = tmp_path / "notes.txt"
    notes.write_text("not a photo\n")
    page.set_input_files("#photo-file", str(notes))
    page.click("#photo-form button[type=submit]")
    page.wait_for_selector("#photo-status.error", timeout=30_000)
    assert page.inner_text("#photo-status") == ("image: not an image OpenCV can read (corrupt, unsupported, or too "
                                                "many pixels)")
    assert page.locator("#photo-result").is_hidden()  # not the first photo's boxes and table under this error


def table_scores(page) -> list[list[float]]:
    """The photo table's scores, a row per face (columns: #, box, expression, then the classes)."""
    rows = page.locator("#photo-faces tbody tr")
    return [[float(v) for v in rows.nth(i).locator("td").all_inner_texts()[3:]] for i in range(rows.count())]


def test_the_uniform_prior_box_reaches_photos_camera_frames_and_videos(page, server, video_path, tmp_path):
    from ferkit.inference.classifier import apply_uniform_prior
    from ferkit.labels import TRAINING_COUNTS

    sent = []
    page.on("request", lambda request: sent.append(request.url) if request.method == "POST" else None)
    photo = video_path.parents[1] / "photos" / Path(PHOTO).name
    page.goto(server)
    assert not page.is_checked("#uniform-prior") and page.is_enabled("#uniform-prior")  # the server's setting: off
    page.set_input_files("#photo-file", str(photo))
    page.click("#photo-form button[type=submit]")
    page.wait_for_selector("#photo-faces tbody tr", timeout=30_000)
    plain = table_scores(page)
    page.check("#uniform-prior")
    page.evaluate("document.getElementById('photo-faces').tBodies[0].replaceChildren()")
    page.click("#photo-form button[type=submit]")
    page.wait_for_selector("#photo-faces tbody tr", timeout=30_000)
    uniform = table_scores(page)
    assert [url.split(server)[1] for url in sent] == ["/api/annotate?uniform_prior=0", "/api/annotate?uniform_prior=1"]
    shares = np.asarray(TRAINING_COUNTS["fer2013"], np.float64) / sum(TRAINING_COUNTS["fer2013"])
    np.testing.assert_allclose(uniform, apply_uniform_prior(np.asarray(plain), shares), atol=3e-3)  # 3 decimals shown
    page.click("#camera-start")
    page.wait_for_function("() => parseFloat(document.getElementById('camera-fps').textContent) > 0", timeout=60_000)
    page.click("#camera-stop")
    frames = [url for url in sent if "/api/frame" in url]
    assert frames and all(url.endswith("&uniform_prior=1") for url in frames)
    page.uncheck("#uniform-prior")
    page.set_input_files("#video-file", str(write_clip(video_path, tmp_path / "clip.avi", frames=6)))
    page.click("#video-form button[type=submit]")
    page.wait_for_selector("#video-result:not([hidden])", timeout=120_000)
    assert [url.split(server)[1] for url in sent if "/jobs" in url] == ["/jobs?uniform_prior=0"]


def test_video_upload_progress_then_playable_results(page, server, video_path, tmp_path):
    clip = write_clip(video_path, tmp_path / "clip.avi")
    page.goto(server)
    page.set_input_files("#video-file", str(clip))
    page.click("#video-form button[type=submit]")
    page.wait_for_selector("#video-result:not([hidden])", timeout=120_000)
    assert page.evaluate("document.getElementById('video-progress').value") == 1
    # The annotated video plays in this browser: it loads its metadata with the clip's duration.
    page.wait_for_function("() => document.getElementById('video-player').readyState >= 2", timeout=30_000)
    assert page.evaluate("document.getElementById('video-player').duration") == pytest.approx(1.0, abs=0.2)
    assert page.evaluate("document.getElementById('video-player').videoWidth") == 320
    assert page.evaluate("document.getElementById('video-timeline').naturalWidth") > 0
    links = page.locator("#video-links a").all_inner_texts()
    assert {"frames.csv", "timeline.png", "summary.json"} <= set(links)
    screenshot(page, "web-video.png")
    page.click("#video-delete")
    page.wait_for_function("() => document.getElementById('video-status').textContent === 'Deleted.'")


def upload_video(page) -> str:
    """Click Upload and analyse; the id of the job the server made."""
    with page.expect_response(lambda r: "/jobs?" in r.url and r.request.method == "POST", timeout=60_000) as posted:
        page.click("#video-form button[type=submit]")
    return posted.value.json()["id"]


def test_a_new_video_upload_replaces_the_previous_job(page, server, video_path, tmp_path, expected_errors):
    """One job at a time on the page: a second upload stops following the first and deletes it on the server, so
    the status and progress are the second's alone and no job is left without a delete button."""
    clips = {name: write_clip(video_path, tmp_path / f"{name}.avi", frames=frames)
             for name, frames in [("other", 240), ("first", 36), ("second", 12)]}
    page.goto(server)
    other = page.request.post(f"{server}/jobs", multipart={"video": {  # another user's job holds the queue
        "name": "other.avi", "mimeType": "video/x-msvideo", "buffer": clips["other"].read_bytes()}}).json()["id"]
    page.evaluate("""() => {
        window.statuses = [];
        new MutationObserver(() => statuses.push(document.getElementById('video-status').textContent))
            .observe(document.getElementById('video-status'), {childList: true});
    }""")
    page.set_input_files("#video-file", str(clips["first"]))
    first = upload_video(page)
    # Its progress loop may have asked for it just as the second upload deleted it: that answer is ignored.
    expected_errors += [rf"^404 {server}/jobs/{first}$", r"status of 404 \(NOT FOUND\)$"]
    page.wait_for_function("() => statuses.includes('Waiting in the queue…')", timeout=30_000)
    shown = page.evaluate("statuses.length")
    page.set_input_files("#video-file", str(clips["second"]))
    second = upload_video(page)
    page.wait_for_selector("#video-result:not([hidden])", timeout=120_000)
    page.wait_for_timeout(1000)  # the first job's loop, if any still ran, would have shown its state by now
    after = page.evaluate("statuses")[shown:]
    assert page.request.get(f"{server}/jobs/{first}").status == 404  # deleted when the second was uploaded
    assert not [text for text in after if "of 36" in text or "36 frames" in text], after
    assert after[-1] == "Done: 12 frames." and page.inner_text("#video-status") == "Done: 12 frames."
    assert f"/jobs/{second}/" in page.get_attribute("#video-player", "src")
    page.click("#video-delete")
    page.wait_for_function("() => document.getElementById('video-status').textContent === 'Deleted.'")
    assert page.request.get(f"{server}/jobs/{second}").status == 404
    assert page.request.delete(f"{server}/jobs/{other}").ok


def stream_status(url: str) -> dict:
    with urllib.request.urlopen(f"{url}/api/stream", timeout=10) as response:
        return json.load(response)


def test_live_feed_of_a_server_side_video(page, video_path, tiny_model_dir, tmp_path):
    url, stop = start_server(tiny_model_dir, tmp_path / "jobs", source=str(video_path))
    try:
        page.goto(url)
        page.wait_for_function("() => document.getElementById('live-feed').naturalWidth > 0", timeout=30_000)
        page.wait_for_function("() => document.getElementById('live-status').textContent.startsWith('Live')",
                               timeout=10_000)  # the stream's state under the picture
        assert page.evaluate("document.getElementById('live-feed').naturalWidth") == 640
        screenshot(page, "web-live-feed.png")
        assert stream_status(url)["viewers"] == 1 and stream_status(url)["running"]
        page.goto("about:blank")  # the viewer leaves; the server notices at its next frame
        assert wait_until(lambda: stream_status(url)["viewers"] == 0, timeout=10, interval=0.1)
    finally:
        stop()


def test_a_full_live_stream_says_so_until_it_plays(page, video_path, tiny_model_dir, tmp_path, expected_errors):
    """/video_feed refuses a third viewer (threads=4: 2 at most) with a 503 the <img> cannot show: the page says
    the stream is full, the status poll leaves that standing, and the picture comes once a viewer leaves."""
    expected_errors += [r"\b503\b"]
    url, stop = start_server(tiny_model_dir, tmp_path / "jobs", source=str(video_path))
    watchers = [urllib.request.urlopen(f"{url}/video_feed", timeout=10) for _ in range(2)]
    full = "The live stream is full (2 viewers); retrying…"
    try:
        page.goto(url)
        page.wait_for_function(f"() => document.getElementById('live-status').textContent === {full!r}",
                               timeout=15_000)
        page.wait_for_timeout(4500)  # two status polls and a refused retry later: still said
        assert page.inner_text("#live-status") == full and "error" in page.get_attribute("#live-status", "class")
        assert page.evaluate("document.getElementById('live-feed').naturalWidth") == 0
        watchers.pop().close()  # a viewer leaves: the page's next retry gets in
        page.wait_for_function("() => document.getElementById('live-feed').naturalWidth === 640", timeout=30_000)
        page.wait_for_function("() => document.getElementById('live-status').textContent.startsWith('Live')",
                               timeout=10_000)
        assert "error" not in page.get_attribute("#live-status", "class")
        assert wait_until(lambda: stream_status(url)["viewers"] == 2, timeout=10)  # the HEAD probes hold none
        page.goto("about:blank")
    finally:
        for watcher in watchers:
            watcher.close()
        stop()



def test_token_login_form_then_the_page_works_with_its_cookie(browser, tiny_model_dir, tmp_path, video_path):
    token = "browser-test-token-0123456789"
    url, stop = start_server(tiny_model_dir, tmp_path / "jobs", token=token)
    context = browser.new_context()
    page = context.new_page()
    problems = []
    page.on("pageerror", lambda exc: problems.append(str(exc)))
    page.on("response", lambda r: problems.append(f"{r.status} {r.url}") if r.status >= 400 else None)
    try:
        page.goto(url)  # no token: the login form (401)
        assert page.is_visible("#login-form") and problems == [f"401 {url}/"]
        problems.clear()
        page.fill("#login-token", token)
        page.click("#login-form button[type=submit]")
        page.wait_for_selector("#camera-start")
        assert page.url == f"{url}/"  # the token left the address bar
        assert page.evaluate("document.cookie") == ""  # HttpOnly: scripts cannot read it
        photo = video_path.parents[1] / "photos" / Path(PHOTO).name
        page.set_input_files("#photo-file", str(photo))
        page.click("#photo-form button[type=submit]")
        page.wait_for_selector("#photo-faces tbody tr", timeout=30_000)  # the API took the cookie
        assert problems == []
    finally:
        context.close()
        stop()


def test_the_page_shows_when_the_live_source_is_unavailable(page, tiny_model_dir, tmp_path):
    url, stop = start_server(tiny_model_dir, tmp_path / "jobs", source=str(tmp_path / "unplugged.mp4"))
    try:
        page.goto(url)
        page.wait_for_function("() => document.getElementById('live-status').textContent.includes('unavailable')",
                               timeout=15_000)
        assert "error" in page.get_attribute("#live-status", "class")
        # The picture is the server's placeholder frame, not a broken image.
        page.wait_for_function("() => document.getElementById('live-feed').naturalWidth === 640", timeout=15_000)
        assert stream_status(url)["error"].startswith("video source unavailable")
        page.goto("about:blank")  # leave before the server stops, which would cut the stream
    finally:
        stop()
