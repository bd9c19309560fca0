"""A regular (non-editable) install runs anywhere: the wheel built from this checkout, installed
into a fresh virtual environment outside the repo, run from a folder that is not the checkout.

To stay fast and offline the venv sees the system's site-packages (numpy, OpenCV, onnxruntime,
Flask are not downloaded again) and the wheel is installed with --no-deps. The system may also
hold an editable install of this checkout, so the first test proves that the venv imports ferkit,
its models and its detector from the installed wheel, never from the checkout's src/.
"""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import sys
import time
import urllib.request
import zipfile
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def installed(tmp_path_factory):
    """(venv python, ferkit console script, work folder, environment) of a fresh install."""
    root = tmp_path_factory.mktemp("install")
    source, dist = root / "source", root / "dist"  # a copy, so the build leaves nothing in the checkout
    shutil.copytree(REPO / "src", source / "src", ignore=shutil.ignore_patterns("__pycache__", "*.egg-info"))
    for name in ("pyproject.toml", "README.md"):
        shutil.copy(REPO / name, source / name)
    build = subprocess.run([sys.executable, "-m", "pip", "wheel", str(source), "--no-deps", "--no-build-isolation",
                            "--wheel-dir", str(dist), "-q"], capture_output=True, text=True, cwd=root)
    assert build.returncode == 0, build.stderr
    wheel = next(dist.glob("ferkit-*.whl"))
    venv = root / "venv"
    subprocess.run([sys.executable, "-m", "venv", "--system-site-packages", "--without-pip", str(venv)], check=True)
    python = venv / "bin" / "python"
    install = subprocess.run([str(python), "-m", "pip", "install", "--no-deps", "--no-index", "-q", str(wheel)],
                             capture_output=True, text=True, cwd=root)
    assert install.returncode == 0, install.stderr
    work = root / "elsewhere"
    work.mkdir()
    env = {k: v for k, v in os.environ.items() if not k.startswith("FERKIT_") and k != "PYTHONPATH"}
    return {"python": python, "ferkit": venv / "bin" / "ferkit", "venv": venv, "work": work, "env": env,
            "wheel": wheel}


def run(installed, *args, **kwargs) -> subprocess.CompletedProcess:
    return subprocess.run([str(a) for a in args], capture_output=True, text=True, cwd=installed["work"],
                          env={**installed["env"], **kwargs.pop("env", {})}, timeout=300, **kwargs)


def test_the_wheel_carries_models_detector_and_licence(installed):
    names = zipfile.ZipFile(installed["wheel"]).namelist()
    for name in ("ferkit/assets/models/DEFAULT", "ferkit/assets/models/fast/model.onnx",
                 "ferkit/assets/models/fast/metrics.json", "ferkit/assets/detectors/face_detection_yunet.onnx",
                 "ferkit/assets/detectors/LICENSE", "ferkit/assets/detectors/PROVENANCE.md",
                 "ferkit/web/templates/index.html"):
        assert name in names, name
    assert not any(n.startswith(("tests/", "runs/", "bench/")) for n in names)


def test_the_venv_imports_ferkit_from_the_installed_wheel_not_the_checkout(installed):
    probe = ("import json, ferkit, importlib.metadata as m; from ferkit.config import default_models_dir; "
             "from ferkit.vision.detectors import bundled_yunet_path; "
             "print(json.dumps([ferkit.__file__, str(default_models_dir()), str(bundled_yunet_path()), "
             "str(m.distribution('ferkit').locate_file('ferkit'))]))")
    result = run(installed, installed["python"], "-c", probe)
    assert result.returncode == 0, result.stderr
    venv = str(installed["venv"].resolve())
    for path in json.loads(result.stdout):
        assert str(Path(path).resolve()).startswith(venv), path
        assert not str(Path(path).resolve()).startswith(str(REPO / "src")), path


def test_installed_ferkit_models_lists_the_bundled_models(installed):
    result = run(installed, installed["ferkit"], "models")
    assert result.returncode == 0, result.stderr
    assert "fast" in result.stdout and "(default)" in result.stdout
    empty = installed["work"] / "no-models"
    empty.mkdir(exist_ok=True)
    result = run(installed, installed["ferkit"], "models", env={"FERKIT_MODELS_DIR": str(empty)})
    assert result.returncode == 2 and "no models found" in result.stderr and result.stdout == ""


@pytest.mark.shared
def test_installed_ferkit_predicts_a_real_photo_with_the_bundled_detector(installed, shared_dir):
    photo = shared_dir / "data" / "media" / "photos" / "multi_face.jpg"
    result = run(installed, installed["ferkit"], "predict", photo, "--json")
    assert result.returncode == 0, result.stderr
    faces = json.loads(result.stdout)["images"][0]["faces"]
    assert len(faces) == 5
    assert all(0.5 < face["det_score"] <= 1 for face in faces), "YuNet's confidence: the bundled detector ran"


def test_installed_ferkit_serve_answers_health(installed):
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    server = subprocess.Popen([str(installed["ferkit"]), "serve", "--port", str(port)], cwd=installed["work"],
                              env=installed["env"], stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        deadline, health = time.monotonic() + 120, None
        while time.monotonic() < deadline and server.poll() is None:
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/api/health", timeout=5) as response:
                    health = json.loads(response.read())
                break
            except OSError:
                time.sleep(0.5)
        assert health is not None, f"no answer from ferkit serve (exit {server.poll()})"
        assert health["status"] == "ok" and health["detector"] == "yunet" and health["model"] == "fast"
    finally:
        server.terminate()
        server.wait(timeout=30)
