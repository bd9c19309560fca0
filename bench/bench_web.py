"""Load on the web app: /api/predict throughput and latency, browser-camera frame rate, /video_feed viewers.

    python bench/bench_web.py [--model runs/smoke-model] [--clients 4] [--seconds 10] [--viewers 3]
    python bench/bench_web.py --url http://127.0.0.1:5000 ...      # a server that is already running

Without --url it starts `ferkit serve` on a free port of 127.0.0.1 (with --source, a real video,
for the live feed) and stops it afterwards. Phases, each bounded in time and request count:

1. transport: GET /api/health one at a time (what HTTP costs per request, without any inference)
2. camera: one client sending a real video's frames to /api/frame, as the page does (one in flight)
3. predict: N clients posting real face photos to /api/predict at once; throughput, p50/p95/p99
   latency, and every response checked (status 200, the `predict --json` shape, scores summing to 1)
4. viewers: M clients reading /video_feed at once; each viewer's frame rate
"""

from __future__ import annotations

import argparse
import http.client
import json
import os
import socket
import subprocess
import sys
import threading
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlsplit

import cv2
import numpy as np

from ferkit.config import default_shared_dir
from ferkit.labels import CLASS_NAMES

MAX_REQUESTS = 100_000  # per phase, whatever the duration
PHOTOS = ("data/media/photos/multi_face.jpg", "data/media/photos/dlib_faces")
VIDEO = "data/media/videos/WolfgangLanger_Pexels.mp4"


@dataclass
class Tally:
    latencies_ms: list[float] = field(default_factory=list)
    invalid: list[str] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def add(self, latency_ms: float, problem: str | None) -> None:
        with self.lock:
            self.latencies_ms.append(latency_ms)
            if problem:
                self.invalid.append(problem)


def percentiles(values_ms: list[float]) -> str:
    p50, p95, p99 = np.percentile(values_ms, [50, 95, 99]) if values_ms else (float("nan"),) * 3
    return f"p50 {p50:.1f} ms, p95 {p95:.1f} ms, p99 {p99:.1f} ms"


# --- inputs -----------------------------------------------------------------------------------------------
def face_photos(shared: Path) -> list[tuple[str, bytes]]:
    files = []
    for entry in PHOTOS:
        path = shared / entry
        files += sorted(path.glob("*.jpg")) if path.is_dir() else [path]
    return [(path.name, path.read_bytes()) for path in files if path.is_file()]


def video_frames_as_jpeg(video: Path, count: int = 96) -> list[bytes]:
    capture = cv2.VideoCapture(str(video))
    frames = []
    while len(frames) < count:
        ok, frame = capture.read()
        if not ok:
            break
        frames.append(cv2.imencode(".jpg", frame, [cv2.IMWRITE_JPEG_QUALITY, 80])[1].tobytes())
    capture.release()
    return frames


def multipart(field_name: str, filename: str, data: bytes) -> tuple[bytes, str]:
    boundary = uuid.uuid4().hex
    body = (f"--{boundary}\r\nContent-Disposition: form-data; name=\"{field_name}\"; filename=\"{filename}\"\r\n"
            f"Content-Type: image/jpeg\r\n\r\n").encode() + data + f"\r\n--{boundary}--\r\n".encode()
    return body, f"multipart/form-data; boundary={boundary}"


# --- checks -------------------------------------------------------------------------------------------------
def predict_problem(status: int, body: bytes, filename: str) -> str | None:
    """Why a /api/predict response is not valid, or None."""
    if status != 200:
        return f"status {status}"
    try:
        images = json.loads(body)["images"]
        assert len(images) == 1 and images[0]["path"] == filename
        for face in images[0]["faces"]:
            assert len(face["box"]) == 4 and face["emotion"] in CLASS_NAMES
            assert list(face["scores"]) == list(CLASS_NAMES)
            assert abs(sum(face["scores"].values()) - 1) < 1e-2
    except (ValueError, KeyError, TypeError, AssertionError) as exc:
        return f"bad JSON shape ({exc!r})"
    return None


# --- phases -------------------------------------------------------------------------------------------------
def connect(url: str) -> http.client.HTTPConnection:
    parts = urlsplit(url)
    return http.client.HTTPConnection(parts.hostname, parts.port or 80, timeout=60)


def transport_phase(url: str, seconds: float) -> list[float]:
    connection, latencies = connect(url), []
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline and len(latencies) < MAX_REQUESTS:
        started = time.perf_counter()
        connection.request("GET", "/api/health")
        connection.getresponse().read()
        latencies.append(1000 * (time.perf_counter() - started))
    connection.close()
    return latencies


def camera_phase(url: str, frames: list[bytes], seconds: float) -> tuple[int, list[float], list[float]]:
    """(frames answered, round-trip ms, server ms) for one tab sending frames one at a time."""
    connection, session = connect(url), uuid.uuid4().hex
    round_trips, server_ms = [], []
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline and len(round_trips) < MAX_REQUESTS:
        started = time.perf_counter()
        connection.request("POST", f"/api/frame?session={session}", body=frames[len(round_trips) % len(frames)],
                           headers={"Content-Type": "image/jpeg"})
        response = connection.getresponse()
        body = json.loads(response.read())
        round_trips.append(1000 * (time.perf_counter() - started))
        server_ms.append(body["server_ms"])
    connection.close()
    return len(round_trips), round_trips, server_ms


def predict_client(url: str, photos: list[tuple[str, bytes]], offset: int, deadline: float, tally: Tally) -> None:
    connection = connect(url)
    bodies = [(name, *multipart("image", name, data)) for name, data in photos]
    sent = 0
    while time.monotonic() < deadline and sent < MAX_REQUESTS:
        name, body, content_type = bodies[(offset + sent) % len(bodies)]
        started = time.perf_counter()
        try:
            connection.request("POST", "/api/predict", body=body, headers={"Content-Type": content_type})
            response = connection.getresponse()
            problem = predict_problem(response.status, response.read(), name)
        except (OSError, http.client.HTTPException) as exc:
            problem = f"connection error ({exc!r})"
            connection.close()
            connection = connect(url)
        tally.add(1000 * (time.perf_counter() - started), problem)
        sent += 1
    connection.close()


def read_mjpeg_part(stream) -> bytes | None:
    """The next JPEG of a multipart/x-mixed-replace stream (None at its end)."""
    length = None
    while True:
        line = stream.readline()
        if not line:
            return None
        if line == b"\r\n" and length is not None:
            break
        if line.lower().startswith(b"content-length:"):
            length = int(line.split(b":")[1])
    jpeg = stream.read(length)
    stream.readline()
    return jpeg


def viewer(url: str, seconds: float, results: list, index: int) -> None:
    """Read /video_feed for `seconds`; results[index] = (frames, seconds, first and last frame decoded)."""
    connection = connect(url)
    connection.request("GET", "/video_feed")
    response = connection.getresponse()
    if response.status != 200:
        results[index] = (0, seconds, False)
        return
    frames, jpegs, started = 0, [], time.monotonic()
    while time.monotonic() - started < seconds and frames < MAX_REQUESTS:
        jpeg = read_mjpeg_part(response.fp)
        if jpeg is None:
            break  # the server ended the stream
        frames += 1
        jpegs = [jpegs[0] if jpegs else jpeg, jpeg]
    elapsed = time.monotonic() - started
    decoded = all(cv2.imdecode(np.frombuffer(j, np.uint8), cv2.IMREAD_COLOR) is not None for j in jpegs)
    connection.close()
    results[index] = (frames, elapsed, decoded and bool(jpegs))


# --- the server ---------------------------------------------------------------------------------------------
def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def wait_for_health(url: str, process: subprocess.Popen, timeout: float = 120.0) -> dict:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process is not None and process.poll() is not None:
            raise SystemExit(f"the server exited with code {process.returncode}")
        try:
            connection = connect(url)
            connection.request("GET", "/api/health")
            return json.loads(connection.getresponse().read())
        except OSError:
            time.sleep(0.5)
    raise SystemExit(f"no answer from {url}/api/health within {timeout:.0f} s")


def start_server(args, video: Path) -> tuple[str, subprocess.Popen]:
    port = free_port()
    command = [sys.executable, "-m", "ferkit.cli", "serve", "--host", "127.0.0.1", "--port", str(port),
               "--model", args.model, "--source", str(args.source or video),
               "--threads", str(max(args.threads, args.clients + args.viewers + 2))]
    process = subprocess.Popen(command, stdout=subprocess.DEVNULL, env={**os.environ, "PYTHONUNBUFFERED": "1"})
    return f"http://127.0.0.1:{port}", process


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--url", help="a running server (default: start one on 127.0.0.1)")
    parser.add_argument("--model", default="default", help="for the server this starts")
    parser.add_argument("--source", help="live-feed video for the server this starts (default: a shared video)")
    parser.add_argument("--threads", type=int, default=8, help="server threads (raised to clients + viewers + 2)")
    parser.add_argument("--clients", type=int, default=4, help="concurrent /api/predict clients")
    parser.add_argument("--seconds", type=float, default=10.0, help="length of the predict phase")
    parser.add_argument("--camera-seconds", type=float, default=5.0, help="length of the camera phase")
    parser.add_argument("--viewers", type=int, default=3, help="concurrent /video_feed viewers")
    parser.add_argument("--viewer-seconds", type=float, default=10.0)
    parser.add_argument("--shared", type=Path, default=default_shared_dir(), help="the shared data folder")
    args = parser.parse_args(argv)

    photos, video = face_photos(args.shared), args.shared / VIDEO
    if not photos or not video.is_file():
        raise SystemExit(f"no face photos or video under {args.shared} (pass --shared)")
    url, process = (args.url.rstrip("/"), None) if args.url else start_server(args, video)
    try:
        health = wait_for_health(url, process)
        print(f"server {url}: model {health['model']}, ferkit {health['version']}; {os.cpu_count()} CPU cores")

        latencies = transport_phase(url, 2.0)
        print(f"transport  GET /api/health, one at a time: {percentiles(latencies)}")

        count, round_trips, server_ms = camera_phase(url, video_frames_as_jpeg(video), args.camera_seconds)
        print(f"camera     1 tab, 640x360 JPEG frames to /api/frame: {count / args.camera_seconds:.1f} fps; "
              f"round trip {percentiles(round_trips)}; of which inference p50 {np.median(server_ms):.1f} ms")

        tally, deadline = Tally(), time.monotonic() + args.seconds
        clients = [threading.Thread(target=predict_client, args=(url, photos, i, deadline, tally))
                   for i in range(args.clients)]
        started = time.monotonic()
        for thread in clients:
            thread.start()
        for thread in clients:
            thread.join()
        elapsed = time.monotonic() - started
        done = len(tally.latencies_ms)
        print(f"predict    {args.clients} clients x {args.seconds:.0f} s, {len(photos)} real photos: {done} requests, "
              f"{done / elapsed:.1f} requests/s; {percentiles(tally.latencies_ms)}; "
              f"{done - len(tally.invalid)} of {done} valid")
        for problem in sorted(set(tally.invalid))[:5]:
            print(f"           invalid: {problem}")

        results = [None] * args.viewers
        viewers = [threading.Thread(target=viewer, args=(url, args.viewer_seconds, results, i))
                   for i in range(args.viewers)]
        for thread in viewers:
            thread.start()
        for thread in viewers:
            thread.join(timeout=args.viewer_seconds + 60)
        rates = [f"{frames / seconds:.1f}" + ("" if ok else " (bad frames)") for frames, seconds, ok in results]
        print(f"viewers    {args.viewers} on /video_feed for {args.viewer_seconds:.0f} s: fps per viewer "
              f"{', '.join(rates)}")
        return 0 if not tally.invalid and all(ok for _, _, ok in results) else 1
    finally:
        if process is not None:
            process.terminate()
            try:
                process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                process.kill()


if __name__ == "__main__":
    sys.exit(main())
