"""What every test shares: synthetic FER2013 CSVs, the shared data folder, a tiny exported model,
synthetic videos, stand-in detectors, the CLI runners, and the CI switch that fails skipped tests.

Helpers that are not fixtures are imported by test modules: `from conftest import write_video`.
"""

from __future__ import annotations

import gzip
import os
import subprocess
import sys
from pathlib import Path

import ferkit  # noqa: F401, I001  (before cv2: ferkit caps OpenCV's decoded pixels, read when cv2 loads)
import cv2
import numpy as np
import pytest

from ferkit.config import DetectorConfig, default_shared_dir
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


# --- synthetic media, stand-in detectors, the CLI -------------------------------------------------

def write_video(path: Path, frames, fps: float = 20.0) -> Path:
    """A video file of the given BGR frames (codec by extension, as ferkit writes them)."""
    height, width = frames[0].shape[:2]
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*VIDEO_FOURCCS[path.suffix]), fps, (width, height))
    assert writer.isOpened(), path
    for frame in frames:
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


class BrightBoxDetector(FaceDetector):
    """Finds bright boxes (the faces of synthetic frames), through the real detector's scaling."""

    def _detect(self, small, min_size):
        _, mask = cv2.threshold(to_gray(small), 200, 255, cv2.THRESH_BINARY)
        _, _, stats, _ = cv2.connectedComponentsWithStats(mask)
        boxes = stats[1:, :4]
        return boxes[np.minimum(boxes[:, 2], boxes[:, 3]) >= min_size]


def bright_box_detector(min_face: int = 16) -> BrightBoxDetector:
    return BrightBoxDetector(DetectorConfig(min_face=min_face))


def corrupt_middle(video: Path, target: Path) -> Path:
    """A copy of `video` with an eighth of its bytes, in the middle, replaced by noise."""
    data = bytearray(video.read_bytes())
    middle = len(data) // 2
    data[middle:middle + len(data) // 8] = np.random.default_rng(0).bytes(len(data) // 8)
    target.write_bytes(bytes(data))
    return target


def run_ferkit(*args) -> subprocess.CompletedProcess:
    """`ferkit ARGS` in a fresh interpreter: stderr and stdout hold everything any library printed."""
    return subprocess.run([sys.executable, "-m", "ferkit.cli", *map(str, args)], capture_output=True, text=True,
                          timeout=300)


@pytest.fixture
def ferkit(capsys):
    """`ferkit ARGS` in this process: ferkit("video", path, "--json") -> (exit code, stdout, stderr)."""
    from ferkit.cli import main

    def run(*args):
        code = main([str(a) for a in args])
        out, err = capsys.readouterr()
        return code, out, err

    return run
