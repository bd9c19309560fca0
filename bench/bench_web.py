"""Load on the web app: /api/predict throughput and latency, browser-camera frame rate, /video_feed
viewers, and a soak that checks nothing leaks.

    python bench/bench_web.py [--model default] [--clients 16] [--seconds 60] [--viewers 3]
    python bench/bench_web.py --url http://127.0.0.1:5000 --token T ...   # a server that is already running

Without --url it starts `ferkit serve` on a free port of 127.0.0.1 (with --source, a real video,
for the live feed) and stops it afterwards. Phases, each bounded in time and request count:

1. transport: GET /api/health one at a time (what HTTP costs per request, without any inference)
2. camera: one client sending a real video's frames to /api/frame, as the page does (one in flight)
3. predict: N clients posting real face photos to /api/predict at once; throughput, p50/p95/p99
   latency, and every response checked: 200 with the `predict --json` shape and scores summing to 1,
   or 429 (the server's bound on images in flight) as JSON with Retry-After, which the client honours
4. viewers: M clients reading /video_feed at once; each viewer's frame rate
5. soak (only for a server this starts): 200 viewers join and leave /video_feed, 200 video jobs are
   created and deleted; the server process's threads, open files and memory before and after
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


HEADERS: dict[str, str] = {}  # Authorization, when the server needs a token


@dataclass
class Tally:
    latencies_ms: list[float] = field(default_factory=list)  # of the answered (200) requests
    invalid: list[str] = field(default_factory=list)
    refused: int = 0  # valid 429s
    lock: threading.Lock = field(default_factory=threading.Lock)

    def add(self, latency_ms: float, problem: str | None, refused: bool = False) -> None:
        with self.lock:
            if refused:
                self.refused += 1
            else:
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
def refusal_problem(body: bytes, retry_after: str | None) -> str | None:
    """Why a 429 is not the server's well-formed refusal, or None."""
    try:
        error = json.loads(body)["error"]
        assert error["status"] == 429 and error["message"] and retry_after and int(retry_after) > 0
    except (ValueError, KeyError, TypeError, AssertionError) as exc:
        return f"bad 429 ({exc!r})"
    return None


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
        connection.request("GET", "/api/health", headers=HEADERS)
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
                           headers={"Content-Type": "image/jpeg", **HEADERS})
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
        retry_after = None
        try:
            connection.request("POST", "/api/predict", body=body, headers={"Content-Type": content_type, **HEADERS})
            response = connection.getresponse()
            answer = response.read()
            if response.status == 429:
                retry_after = response.headers.get("Retry-After")
                problem = refusal_problem(answer, retry_after)
            else:
                problem = predict_problem(response.status, answer, name)
        except (OSError, http.client.HTTPException) as exc:
            problem = f"connection error ({exc!r})"
            connection.close()
            connection = connect(url)
        tally.add(1000 * (time.perf_counter() - started), problem, refused=retry_after is not None)
        sent += 1
        if retry_after is not None:  # as a well-behaved client does
            time.sleep(min(float(retry_after or 1), max(0.0, deadline - time.monotonic())))
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
    connection.request("GET", "/video_feed", headers=HEADERS)
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


# --- soak: viewers and jobs come and go; nothing may stay behind ----------------------------------------------
def process_figures(pid: int) -> dict:
    """Threads, open files and resident memory of a process (Linux /proc)."""
    status = dict(line.split(":", 1) for line in Path(f"/proc/{pid}/status").read_text().splitlines() if ":" in line)
    return {"threads": int(status["Threads"]), "open files": len(os.listdir(f"/proc/{pid}/fd")),
            "memory MB": round(int(status["VmRSS"].split()[0]) / 1024, 1)}


def request_json(url: str, method: str, path: str, body: bytes | None = None, headers=None) -> tuple[int, dict]:
    connection = connect(url)
    try:
        connection.request(method, path, body=body, headers={**HEADERS, **(headers or {})})
        response = connection.getresponse()
        return response.status, json.loads(response.read() or b"{}")
    finally:
        connection.close()


def wait_stream_idle(url: str, timeout: float = 60.0) -> None:
    """Until the live feed's capture thread has stopped (it does so stream_idle_s after the last viewer)."""
    deadline = time.monotonic() + timeout
    while request_json(url, "GET", "/api/stream")[1].get("running") and time.monotonic() < deadline:
        time.sleep(0.5)


def small_video(frames: int = 24) -> bytes:
    path = Path(os.environ.get("TMPDIR", "/tmp")) / f"ferkit-bench-{uuid.uuid4().hex}.avi"
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"MJPG"), 24.0, (160, 120))
    ramp = np.tile(np.arange(160, dtype=np.uint8), (120, 1))
    for i in range(frames):
        writer.write(cv2.cvtColor(np.roll(ramp, i, axis=1), cv2.COLOR_GRAY2BGR))
    writer.release()
    data = path.read_bytes()
    path.unlink()
    return data


def soak(url: str, viewers: int, jobs: int, batch: int) -> list[str]:
    """`viewers` viewers join /video_feed (up to `batch` at once), read 2 frames each and leave;
    `jobs` video jobs are created and deleted, every 4th after it finished, the others while queued
    or running. Problems found (an empty list when all went well)."""
    problems = []
    for start in range(0, viewers, batch):
        results = [None] * min(batch, viewers - start)
        threads = [threading.Thread(target=viewer_frames, args=(url, 2, results, i)) for i in range(len(results))]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(timeout=60)
        problems += [f"viewer: {r}" for r in results if r is not True]
        # The server counts a viewer out when its next frame finds the connection closed: wait for
        # that, or the next batch would find the viewer cap still taken (503).
        deadline = time.monotonic() + 10
        while request_json(url, "GET", "/api/stream")[1].get("viewers") and time.monotonic() < deadline:
            time.sleep(0.05)
    body, content_type = multipart("video", "soak.avi", small_video())
    for index in range(jobs):
        status, job = request_json(url, "POST", "/jobs", body, {"Content-Type": content_type})
        while status == 429:  # the queue is full: as a client should, wait and retry
            time.sleep(0.2)
            status, job = request_json(url, "POST", "/jobs", body, {"Content-Type": content_type})
        if status != 202:
            problems.append(f"job {index}: status {status} {job}")
            continue
        deadline = time.monotonic() + 60
        while index % 4 == 0 and job.get("state") in ("queued", "running") and time.monotonic() < deadline:
            time.sleep(0.05)
            job = request_json(url, "GET", f"/jobs/{job['id']}")[1]
        if index % 4 == 0 and job.get("state") != "done":
            problems.append(f"job {index}: {job.get('state')} {job.get('error')}")
        status, _ = request_json(url, "DELETE", f"/jobs/{job['id']}")
        if status != 200:
            problems.append(f"job {index}: delete status {status}")
    return problems


def viewer_frames(url: str, frames: int, results: list, index: int) -> None:
    """Read `frames` frames of /video_feed, then hang up; results[index] = True or what went wrong."""
    try:
        connection = connect(url)
        connection.request("GET", "/video_feed", headers=HEADERS)
        response = connection.getresponse()
        if response.status != 200:
            results[index] = f"status {response.status}"
            return
        for _ in range(frames):
            jpeg = read_mjpeg_part(response.fp)
            if jpeg is None or cv2.imdecode(np.frombuffer(jpeg, np.uint8), cv2.IMREAD_COLOR) is None:
                results[index] = "bad or missing frame"
                return
        response.close()
        connection.close()
        results[index] = True
    except (OSError, http.client.HTTPException) as exc:
        results[index] = repr(exc)


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
            connection.request("GET", "/api/health", headers=HEADERS)
            return json.loads(connection.getresponse().read())
        except OSError:
            time.sleep(0.5)
    raise SystemExit(f"no answer from {url}/api/health within {timeout:.0f} s")


def server_threads(args) -> int:
    return max(args.threads, args.clients + args.viewers + 2)


def start_server(args, video: Path) -> tuple[str, subprocess.Popen]:
    port = free_port()
    command = [sys.executable, "-m", "ferkit.cli", "serve", "--host", "127.0.0.1", "--port", str(port),
               "--model", args.model, "--source", str(args.source or video),
               "--threads", str(server_threads(args))]
    process = subprocess.Popen(command, stdout=subprocess.DEVNULL, env={**os.environ, "PYTHONUNBUFFERED": "1"})
    return f"http://127.0.0.1:{port}", process


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--url", help="a running server (default: start one on 127.0.0.1)")
    parser.add_argument("--model", default="default", help="for the server this starts")
    parser.add_argument("--source", help="live-feed video for the server this starts (default: a shared video)")
    parser.add_argument("--threads", type=int, default=8, help="server threads (raised to clients + viewers + 2)")
    parser.add_argument("--token", default=os.environ.get("FERKIT_TOKEN"), help="for a --url server that needs one")
    parser.add_argument("--clients", type=int, default=16, help="concurrent /api/predict clients")
    parser.add_argument("--seconds", type=float, default=60.0, help="length of the predict phase")
    parser.add_argument("--camera-seconds", type=float, default=5.0, help="length of the camera phase")
    parser.add_argument("--viewers", type=int, default=3, help="concurrent /video_feed viewers")
    parser.add_argument("--viewer-seconds", type=float, default=10.0)
    parser.add_argument("--shared", type=Path, default=default_shared_dir(), help="the shared data folder")
    parser.add_argument("--soak-viewers", type=int, default=200, help="viewers joining and leaving (0: no soak)")
    parser.add_argument("--soak-jobs", type=int, default=200, help="video jobs created and deleted")
    parser.add_argument("--soak-rounds", type=int, default=2, help="soak rounds (figures after each)")
    args = parser.parse_args(argv)
    if args.token:
        HEADERS["Authorization"] = f"Bearer {args.token}"

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
        print(f"predict    {args.clients} clients x {args.seconds:.0f} s, {len(photos)} real photos: {done} answered, "
              f"{done / elapsed:.1f} requests/s; {percentiles(tally.latencies_ms)}; {tally.refused} refused "
              f"(429, retried after Retry-After); {done + tally.refused - len(tally.invalid)} of "
              f"{done + tally.refused} responses valid")
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
        ok = not tally.invalid and all(ok for _, _, ok in results)
        if process is not None and args.soak_viewers + args.soak_jobs > 0:
            ok = run_soak(url, process, args) and ok
        return 0 if ok else 1
    finally:
        if process is not None:
            process.terminate()
            try:
                process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                process.kill()


def run_soak(url: str, process: subprocess.Popen, args) -> bool:
    """The soak with the server's figures before and after; True when nothing went wrong or stayed behind."""
    # Warm-up: the first job starts the job threads, which then stay for the server's life.
    soak(url, 0, 1, 1)
    wait_stream_idle(url)
    figures = [process_figures(process.pid)]
    print("soak       server before: " + ", ".join(f"{k} {v}" for k, v in figures[0].items()))
    problems = []
    for round_ in range(1, args.soak_rounds + 1):  # a second round tells a leak from a warm-up
        started = time.monotonic()
        problems += soak(url, args.soak_viewers, args.soak_jobs, batch=max(1, min(8, server_threads(args) // 2 - 1)))
        elapsed = time.monotonic() - started
        wait_stream_idle(url)
        time.sleep(1.0)  # the last hung-up connections are closed by waitress's loop
        figures.append(process_figures(process.pid))
        print(f"           round {round_}: {args.soak_viewers} viewers joined and left /video_feed, {args.soak_jobs} "
              f"jobs created and deleted in {elapsed:.0f} s; server after: "
              + ", ".join(f"{k} {v}" for k, v in figures[-1].items()))
    print(f"           {len(problems)} problems")
    for problem in problems[:5]:
        print(f"           problem: {problem}")
    leaked = any(f["threads"] > figures[0]["threads"] or f["open files"] > figures[0]["open files"]
                 for f in figures[1:])
    return not problems and not leaked


if __name__ == "__main__":
    sys.exit(main())
