"""What more than one test file uses: synthetic FER2013 CSVs, the shared data folder, a tiny exported
model (and its config, pipeline and classifier), synthetic videos and photos, stand-in detectors,
polling, the CLI runners, batch-result helpers, the web app's fixtures and a live waitress server,
and the CI switch that fails skipped tests.

Helpers that are not fixtures are imported by test modules: `from conftest import write_video`.
A test file never imports from another test file: what two of them need lives here.
"""

from __future__ import annotations

import gzip
import importlib.util
import itertools
import os
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterable, Iterator
from pathlib import Path

import ferkit  # noqa: F401, I001  (before cv2: ferkit caps OpenCV's decoded pixels, read when cv2 loads)
import cv2
import numpy as np
import pytest

from ferkit.config import Config, DetectorConfig, ServeConfig, default_shared_dir
from ferkit.labels import IMAGE_SIZE, NUM_CLASSES
from ferkit.video.writers import VIDEO_FOURCCS
from ferkit.vision.crops import to_gray
from ferkit.vision.detectors import FaceDetector

# Keras reads its backend, and torch its OpenMP policy, when first imported: set them before
# any test module imports either (an autouse fixture alone would run too late for that).
KERAS_ENV = {"KERAS_BACKEND": "torch", "OMP_WAIT_POLICY": "ACTIVE"}
os.environ.update(KERAS_ENV)


# In CI these are set (scripts/test.sh when CI=true, and .ci/run): a test that needs ../shared or
# Chromium and skips for want of it fails instead, so a missing path can never turn CI green.
REQUIRED_BY_ENV = {"shared": "FERKIT_REQUIRE_SHARED", "browser": "FERKIT_REQUIRE_BROWSER"}


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    """Turn the skip of a `shared` or `browser` test (or one using shared_dir) into a failure when
    its FERKIT_REQUIRE_* variable is 1."""
    report = (yield).get_result()
    if not report.skipped or hasattr(report, "wasxfail"):
        return
    kinds = {mark.name for mark in item.iter_markers()} | ({"shared"} if "shared_dir" in item.fixturenames else set())
    required = [REQUIRED_BY_ENV[k] for k in sorted(kinds & set(REQUIRED_BY_ENV))
                if os.environ.get(REQUIRED_BY_ENV[k]) == "1"]
    if required:
        reason = report.longrepr[2] if isinstance(report.longrepr, tuple) else str(report.longrepr)
        reason = reason.removeprefix("Skipped: ")
        report.outcome = "failed"
        report.longrepr = f"skipped, but {required[0]}=1 says this test must run here: {reason}"


def load_script(relative: str):
    """A script of scripts/ or bench/ (not in the package) imported as the module named after its file, and
    registered in sys.modules (dataclasses look their module up there)."""
    path = Path(__file__).resolve().parents[1] / relative
    spec = importlib.util.spec_from_file_location(path.stem, path)
    module = importlib.util.module_from_spec(spec)
    sys.modules[path.stem] = module
    spec.loader.exec_module(module)
    return module


@pytest.fixture(autouse=True)
def keras_env(monkeypatch):
    """Every test, and every subprocess it starts, sees the Keras environment, even if a test changed it."""
    for key, value in KERAS_ENV.items():
        monkeypatch.setenv(key, value)


def fer2013_rows(rows_per_split: dict[str, int], seed: int):
    """(emotion, pixels, Usage) rows; labels cycle through 0..6 so every class appears in each split."""
    rng = np.random.default_rng(seed)
    for split, rows in rows_per_split.items():
        for i in range(rows):
            pixels = rng.integers(0, 256, IMAGE_SIZE * IMAGE_SIZE)
            yield i % NUM_CLASSES, " ".join(map(str, pixels)), split


@pytest.fixture(scope="session")
def tiny_csv(tmp_path_factory):
    """Factory for synthetic FER2013 CSVs (random faces, header emotion,pixels,Usage), each in a new
    temporary folder. Session-scoped so module-scoped fixtures can use it too.

    tiny_csv()                                        14 Training + 14 PublicTest rows, tiny.csv
    tiny_csv(3, splits=("Training", "PrivateTest"))   3 rows in each of these splits
    tiny_csv({"Training": 300, "PublicTest": 100})    rows per split
    tiny_csv(gz=True)                                 tiny.csv.gz (gzip); same rows for the same seed
    """

    def make(rows_per_split: int | dict[str, int] = 14, splits=("Training", "PublicTest"), gz: bool = False,
             name: str | None = None, seed: int = 0) -> Path:
        if isinstance(rows_per_split, int):
            rows_per_split = dict.fromkeys(splits, rows_per_split)
        path = tmp_path_factory.mktemp("fer2013") / (name or ("tiny.csv.gz" if gz else "tiny.csv"))
        lines = ["emotion,pixels,Usage"]
        lines += [f"{label},{pixels},{split}" for label, pixels, split in fer2013_rows(rows_per_split, seed)]
        text = "\n".join(lines) + "\n"
        if gz:
            with gzip.open(path, "wt", newline="") as handle:
                handle.write(text)
        else:
            path.write_text(text)
        return path

    return make


@pytest.fixture
def shared_dir() -> Path:
    """The shared data folder (../shared beside the repo, or $FERKIT_SHARED_DIR); skips when absent."""
    path = default_shared_dir().resolve()
    if not path.is_dir():
        pytest.skip(f"../shared is absent: no folder {path} (set FERKIT_SHARED_DIR to its location)")
    return path


@pytest.fixture(scope="session")
def tiny_model_dir(tmp_path_factory) -> Path:
    """The `compact` model with random weights, exported like a run folder (model.json,
    model.weights.h5, model.onnx), so inference tests never need a trained model.
    $FERKIT_TINY_MODEL_DIR names one made beforehand (scripts/mutation.sh: one for thousands of runs)."""
    if os.environ.get("FERKIT_TINY_MODEL_DIR"):
        return Path(os.environ["FERKIT_TINY_MODEL_DIR"])
    from ferkit.training.backend import setup_keras

    keras = setup_keras("float32")
    from ferkit.models import create_model
    from ferkit.training.export import export_model

    keras.utils.set_random_seed(0)
    folder = tmp_path_factory.mktemp("tiny_model")
    export_model(create_model("compact"), folder)
    return folder


# --- the tiny model, loaded once per module -------------------------------------------------------
# Imported inside the fixtures: the Keras environment above must be set before anything loads Keras.

@pytest.fixture(scope="module")
def config(tiny_model_dir) -> Config:
    """A Config naming the tiny model, with every other setting at its default."""
    return Config(model=str(tiny_model_dir))


@pytest.fixture(scope="module")
def pipeline(config):
    """One loaded Pipeline of the tiny model for the whole module (as the server shares one for
    every request)."""
    from ferkit.inference.pipeline import Pipeline

    return Pipeline.from_config(config)


@pytest.fixture(scope="module")
def classifier(tiny_model_dir):
    """The tiny model's FacialExpressionModel, without a detector around it."""
    from ferkit.inference.classifier import FacialExpressionModel

    return FacialExpressionModel(tiny_model_dir)


# --- synthetic media ------------------------------------------------------------------------------

def video_frames(count: int, size=(160, 120), pattern: str = "noise", seed: int | None = None) -> Iterator[np.ndarray]:
    """`count` generated BGR frames of `size` (width, height), made one at a time:
    noise     random pixels, every frame new (seed 1 unless given)
    square    a white 40x40 square sliding right across a grey frame; the seed (0 unless given)
              sets the grey and where the square starts, so each seed gives its own video
    gradient  a horizontal gradient sliding sideways: long videos that compress well
    """
    width, height = size
    if pattern == "noise":
        rng = np.random.default_rng(1 if seed is None else seed)
        for _ in range(count):
            yield rng.integers(0, 256, (height, width, 3), dtype=np.uint8)
    elif pattern == "square":
        seed = seed or 0
        for i in range(count):
            frame = np.full((height, width, 3), 40 + 10 * seed, np.uint8)
            x = (5 + 2 * i + 7 * seed) % (width - 40)
            cv2.rectangle(frame, (x, 30), (x + 39, 69), (255, 255, 255), -1)
            yield frame
    elif pattern == "gradient":
        ramp = np.tile(np.arange(width, dtype=np.uint8), (height, 1))
        for i in range(count):
            yield cv2.cvtColor(np.roll(ramp, i, axis=1), cv2.COLOR_GRAY2BGR)
    else:
        raise ValueError(f"unknown pattern {pattern!r}")


def write_video(path: Path, frames: int | Iterable[np.ndarray], *, fps: float = 20.0, size=(160, 120),
                pattern: str = "noise", seed: int | None = None) -> Path:
    """A video file, with the codec ferkit writes for its extension (.mp4: mp4v, .avi: MJPG, ...).

    write_video(path, frames)                          the given BGR frames (a list or any iterable)
    write_video(path, 12)                              12 frames of noise, 160x120
    write_video(path, 30, pattern="square", seed=1)    generated frames: see video_frames()
    """
    if isinstance(frames, int):
        frames = video_frames(frames, size, pattern, seed)
    frames = iter(frames)
    first = next(frames)
    height, width = first.shape[:2]
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*VIDEO_FOURCCS[path.suffix]), fps, (width, height))
    assert writer.isOpened(), path
    for frame in itertools.chain([first], frames):
        writer.write(frame)
    writer.release()
    return path


def box_frames(boxes_per_frame, size=(160, 120), background: int = 30) -> list[np.ndarray]:
    """One dark frame per entry, with a white filled box at each (x, y, w, h) of the entry."""
    frames = []
    for boxes in boxes_per_frame:
        frame = np.full((size[1], size[0], 3), background, np.uint8)
        for x, y, w, h in boxes:
            cv2.rectangle(frame, (x, y), (x + w - 1, y + h - 1), (255, 255, 255), -1)
        frames.append(frame)
    return frames


def write_photo(path: Path, seed: int = 0) -> Path:
    """A 200x150 photo without faces (a gradient, darker for a higher seed), format by extension."""
    gradient = np.linspace(0, 255, 200, dtype=np.uint8)
    image = np.dstack([np.tile(gradient, (150, 1))] * 3) // (1 + seed)
    assert cv2.imwrite(str(path), image)
    return path


def png_bytes(width=320, height=240, seed=0) -> bytes:
    """A real image without faces (noise), as PNG bytes."""
    image = np.random.default_rng(seed).integers(0, 256, (height, width, 3), dtype=np.uint8)
    return cv2.imencode(".png", image)[1].tobytes()


def corrupt_middle(video: Path, target: Path) -> Path:
    """A copy of `video` with an eighth of its bytes, in the middle, replaced by noise."""
    data = bytearray(video.read_bytes())
    middle = len(data) // 2
    data[middle:middle + len(data) // 8] = np.random.default_rng(0).bytes(len(data) // 8)
    target.write_bytes(bytes(data))
    return target


def mixed_folder(root: Path) -> Path:
    """a.mp4 (30 frames), b_bad.mp4 (damaged), c.jpg, d_bad.jpg (not an image), sub/e.mp4 (45
    frames), sub/f.png, an empty folder and a file that is no media."""
    root.mkdir()
    write_video(root / "a.mp4", 30, pattern="square", seed=1)
    corrupt_middle(write_video(root / "long.mp4", 60, pattern="square", seed=2), root / "b_bad.mp4")
    (root / "long.mp4").unlink()
    write_photo(root / "c.jpg")
    (root / "d_bad.jpg").write_bytes(b"not a jpeg" * 50)
    (root / "sub").mkdir()
    write_video(root / "sub" / "e.mp4", 45, pattern="square", seed=3)
    write_photo(root / "sub" / "f.png", seed=1)
    (root / "empty").mkdir()
    (root / "notes.md").write_text("not media\n")
    return root


# --- stand-in detectors ---------------------------------------------------------------------------

class BrightBoxDetector(FaceDetector):
    """Finds bright boxes (the faces of synthetic frames), through the real detector's scaling."""

    def _detect(self, small, min_size):
        _, mask = cv2.threshold(to_gray(small), 200, 255, cv2.THRESH_BINARY)
        _, _, stats, _ = cv2.connectedComponentsWithStats(mask)
        boxes = stats[1:, :4]
        return boxes[np.minimum(boxes[:, 2], boxes[:, 3]) >= min_size]


def bright_box_detector(min_face: int = 16) -> BrightBoxDetector:
    return BrightBoxDetector(DetectorConfig(min_face=min_face))


# --- waiting ---------------------------------------------------------------------------------------

def wait_until(condition, timeout: float = 10.0, interval: float = 0.02) -> bool:
    """Call `condition` every `interval` seconds until it is true or `timeout` seconds passed; its
    last value, so `assert wait_until(...)` fails on a timeout."""
    deadline = time.monotonic() + timeout
    while not condition() and time.monotonic() < deadline:
        time.sleep(interval)
    return condition()


# --- the CLI ---------------------------------------------------------------------------------------

def run_ferkit(*args) -> subprocess.CompletedProcess:
    """`ferkit ARGS` in a fresh interpreter: stderr and stdout hold everything any library printed."""
    return subprocess.run([sys.executable, "-m", "ferkit.cli", *map(str, args)], capture_output=True, text=True,
                          timeout=300)


@pytest.fixture
def ferkit(capsys):
    """`ferkit ARGS` in this process: ferkit("video", path, "--json") -> (exit code, stdout, stderr).
    argparse's own errors (it exits) give their exit code too."""
    from ferkit.cli import main

    def run(*args):
        try:
            code = main([str(a) for a in args])
        except SystemExit as exit:
            code = exit.code
        out, err = capsys.readouterr()
        return code, out, err

    return run


# --- batch results ---------------------------------------------------------------------------------

def expected_csv(pipeline, video: Path, tmp_path: Path) -> bytes:
    """What `ferkit video --csv` writes for this video."""
    from ferkit.video.process import process_video

    target = tmp_path / f"expected-{video.stem}.csv"
    process_video(pipeline, video, csv_path=target)
    return target.read_bytes()


def rows(table, *columns) -> list[tuple]:
    """The given columns of a pyarrow table, as one tuple per row."""
    data = table.select(list(columns)).to_pylist()
    return [tuple(row[c] for c in columns) for row in data]


# --- the web app -----------------------------------------------------------------------------------

def ferkit_threads() -> list[str]:
    """Threads the web app or waitress started and that still run."""
    return sorted(t.name for t in threading.enumerate() if t.name.startswith(("ferkit-", "waitress-")))


def overlap_threads() -> list[str]:
    """A video's frame reader and writer threads (ferkit.video.overlap) that still run."""
    return [name for name in ferkit_threads() if name.startswith(("ferkit-read", "ferkit-write"))]


def temporary_jobs_folders() -> set[str]:
    return {p.name for p in Path(tempfile.gettempdir()).glob("ferkit-jobs-*")}


@pytest.fixture(scope="module")
def nothing_left_behind():
    """After a module's tests: no thread of the app or of waitress runs, no temporary jobs folder is left.
    Not autouse: a module opts in with `pytestmark = pytest.mark.usefixtures("nothing_left_behind")`."""
    folders = temporary_jobs_folders()
    yield
    assert wait_until(lambda: not ferkit_threads(), timeout=30), ferkit_threads()  # a loaded machine is slow
    assert temporary_jobs_folders() - folders == set()


@pytest.fixture
def make_app(pipeline, tiny_model_dir, tmp_path):
    """Factory: make_app(**serve_settings) -> a testing app sharing `pipeline`; closed after the test."""
    from ferkit.web import create_app

    apps = []

    def make(**serve):
        serve.setdefault("jobs_dir", str(tmp_path / "jobs"))
        config = Config(model=str(tiny_model_dir), serve=ServeConfig(**serve))
        app = create_app(config, pipeline)
        app.config["TESTING"] = True
        apps.append(app)
        return app

    yield make
    for app in apps:
        app.extensions["ferkit"].close()


class GatedStream:
    """Wraps a FaceStream: the first frame of each stream waits at `gate` (a Barrier or an Event), and
    `active`/`peak` count frames being processed at once (over all streams)."""

    lock = threading.Lock()

    def __init__(self, inner, state):
        self.inner, self.state, self.first = inner, state, True

    def process(self, frame):
        with self.lock:
            self.state["active"] += 1
            self.state["peak"] = max(self.state["peak"], self.state["active"])
            self.state["calls"] += 1
        try:
            if self.first:
                self.first = False
                self.state["entered"].set()
                gate = self.state["gate"]
                gate.wait(timeout=10) if isinstance(gate, threading.Barrier) else gate.wait(10)
            return self.inner.process(frame)
        finally:
            with self.lock:
                self.state["active"] -= 1


@pytest.fixture
def gated(pipeline, monkeypatch):
    """pipeline.stream() hands out GatedStreams; returns their shared state (gate: an Event by default)."""
    state = {"active": 0, "peak": 0, "calls": 0, "entered": threading.Event(), "gate": threading.Event()}
    original = pipeline.stream
    monkeypatch.setattr(pipeline, "stream", lambda: GatedStream(original(), state))
    yield state
    state["gate"].set() if isinstance(state["gate"], threading.Event) else state["gate"].abort()


class FakeCapture:
    """A camera that delivers `frames` frames (90x120, grey) and then drops out."""

    def __init__(self, frames: int):
        self.frames = frames

    def read(self):
        if self.frames == 0:
            return False, None
        self.frames -= 1
        return True, np.full((90, 120, 3), 128, np.uint8)

    def get(self, prop):
        return 0.0

    def release(self):
        pass


class ClipCamera:
    """A video file opened as if it were a camera (for `video.source.open_capture`): its frames, then a drop.
    `released` counts release() calls; `fps` is what the camera says it delivers."""

    def __init__(self, path: Path, fps: float = 25.0):
        self.capture, self.fps, self.released = cv2.VideoCapture(str(path)), fps, 0

    def read(self):
        return self.capture.read()

    def get(self, prop):
        return self.fps if prop == cv2.CAP_PROP_FPS else 0.0

    def release(self):
        self.released += 1
        self.capture.release()


def wait_for_job(client, job_id: str, timeout: float = 60.0, interval: float = 0.1) -> dict:
    """The job's JSON (through a Flask test client) once it is done or failed; fails after `timeout` s."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        job = client.get(f"/jobs/{job_id}").get_json()
        if job["state"] in ("done", "failed"):
            return job
        time.sleep(interval)
    raise AssertionError(f"job {job_id} did not finish: {job}")


def serve_on_loopback(app, threads: int = 4, max_upload_mb: int = ServeConfig.max_upload_mb):
    """Run `app` on waitress, as `ferkit serve` does, on a free port of 127.0.0.1, in a thread.
    Returns ((host, port), stop); stop() ends the app's live streams (so waitress's threads can
    finish) and the server. The app itself stays open: whoever made it closes it."""
    from ferkit.web.server import make_server, stop_server

    config = Config(serve=ServeConfig(host="127.0.0.1", port=0, threads=threads, max_upload_mb=max_upload_mb))
    server = make_server(config, app)
    thread = threading.Thread(target=server.run, name="test-waitress-loop", daemon=True)
    thread.start()

    def stop():
        app.extensions["ferkit"].broadcaster.close()
        stop_server(server, thread)

    return (server.effective_host, server.effective_port), stop
