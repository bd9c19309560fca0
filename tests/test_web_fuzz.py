"""Fuzzing what reaches the web app's decoders and parsers (Hypothesis): random and mutated images,
videos and multipart bodies, job ids and query strings. Every answer must be a 2xx or a 4xx with the
JSON error shape (or the login/error page), never a 5xx, a traceback, or a job that fails for an
unexpected reason. The number of cases each test tried is printed (pytest -s) and kept in docs/web.md.
"""

from __future__ import annotations

import logging
import os
from urllib.parse import quote

import cv2
import numpy as np
import pytest
from conftest import png_bytes, wait_for_job, write_video
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

EXAMPLES = int(os.environ.get("FERKIT_FUZZ_EXAMPLES", "200"))  # per test; videos get a third (each is a job)
FUZZ = settings(max_examples=EXAMPLES, deadline=None, derandomize=True, database=None,
                suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
ALLOWED = {200, 202, 303, 308, 400, 401, 404, 405, 413, 415, 429}  # 308: werkzeug merging "//"
CASES: dict[str, int] = {}

# From conftest.py: pipeline (one per module), make_app; and no thread or jobs folder outlives the module.
pytestmark = pytest.mark.usefixtures("nothing_left_behind")


@pytest.fixture(scope="module")
def cases():
    yield CASES
    print("\nfuzz cases tried:", ", ".join(f"{name} {count}" for name, count in CASES.items()),
          f"(total {sum(CASES.values())})")


@pytest.fixture
def client(make_app, caplog):
    caplog.set_level(logging.WARNING)
    yield make_app().test_client()
    unexpected = [r for r in caplog.records if r.levelno >= logging.ERROR or r.exc_info]
    assert unexpected == [], [r.getMessage() for r in unexpected]  # nothing logged a traceback


def check(response) -> None:
    assert response.status_code in ALLOWED, (response.status_code, response.data[:300])
    assert b"Traceback" not in response.data
    if response.status_code >= 400 and response.mimetype == "application/json":
        assert response.get_json()["error"]["status"] == response.status_code


def mutate(data: bytes, flips: list[tuple[int, int]], cut: int | None) -> bytes:
    out = bytearray(data)
    for position, value in flips:
        out[position % len(out)] = value
    return bytes(out[:cut] if cut else out)


SEED_IMAGES = [png_bytes(64, 48, seed=1), cv2.imencode(".jpg", np.random.default_rng(2).integers(
    0, 256, (40, 56, 3), dtype=np.uint8))[1].tobytes(), cv2.imencode(".bmp", np.zeros((8, 8, 3), np.uint8))[1].tobytes()]
flips = st.lists(st.tuples(st.integers(0, 10**6), st.integers(0, 255)), max_size=24)
images = st.one_of(st.binary(max_size=4096),
                   st.builds(mutate, st.sampled_from(SEED_IMAGES), flips, st.none() | st.integers(1, 20_000)))


@FUZZ
@given(data=images, route=st.sampled_from(["/api/predict", "/api/annotate", "/api/frame?session=fuzz-tab-1"]),
       as_form=st.booleans(), content_type=st.sampled_from(["image/png", "image/jpeg", "application/octet-stream"]))
def test_fuzz_images(client, cases, data, route, as_form, content_type):
    cases["images"] = cases.get("images", 0) + 1
    if as_form:
        check(client.post(route, data={"image": (__import__("io").BytesIO(data), "x.png")}))
    else:
        check(client.post(route, data=data, content_type=content_type))


boundaries = st.text(st.characters(codec="ascii", exclude_characters="\r\n"), min_size=0, max_size=40)
parts = st.lists(st.tuples(st.sampled_from(["image", "video", "file", "", "image\"; x=\"y"]),
                           st.none() | st.text(max_size=30), st.binary(max_size=300)), max_size=4)


def multipart_body(boundary: str, fields, tail: bytes) -> bytes:
    body = b""
    for name, filename, data in fields:
        disposition = f'form-data; name="{name}"' + ("" if filename is None else f'; filename="{filename}"')
        body += f"--{boundary}\r\nContent-Disposition: {disposition}\r\n\r\n".encode("utf-8", "replace") + data + b"\r\n"
    return body + f"--{boundary}--\r\n".encode("utf-8", "replace") + tail


@FUZZ
@given(boundary=boundaries, header_boundary=st.none() | boundaries, fields=parts, tail=st.binary(max_size=40),
       route=st.sampled_from(["/api/predict", "/jobs", "/api/annotate"]), noise=flips)
def test_fuzz_multipart_bodies(client, cases, boundary, header_boundary, fields, tail, route, noise):
    cases["multipart bodies"] = cases.get("multipart bodies", 0) + 1
    body = multipart_body(boundary, fields, tail)
    if body and noise:
        body = mutate(body, noise, None)
    content_type = "multipart/form-data" + ("" if header_boundary is None else f"; boundary={header_boundary}")
    check(client.post(route, data=body, content_type=content_type))


@pytest.fixture(scope="module")
def seed_video(tmp_path_factory) -> bytes:
    return write_video(tmp_path_factory.mktemp("fuzz") / "seed.avi", frames=4, size=(64, 48), fps=12.0).read_bytes()


@settings(FUZZ, max_examples=max(1, EXAMPLES // 3))
@given(flips=flips, cut=st.none() | st.integers(1, 60_000), name=st.sampled_from(["v.avi", "v.mp4", "v", "v.webm"]))
def test_fuzz_videos(client, cases, seed_video, flips, cut, name):
    cases["videos"] = cases.get("videos", 0) + 1
    import io

    response = client.post("/jobs", data={"video": (io.BytesIO(mutate(seed_video, flips, cut)), name)})
    check(response)
    if response.status_code == 202:
        job_id = response.get_json()["id"]
        job = wait_for_job(client, job_id, timeout=60, interval=0.02)
        assert job["state"] == "done" or job["error"] != "processing failed", job  # failures are explained
        check(client.delete(f"/jobs/{job_id}"))


@FUZZ
@given(job_id=st.text(max_size=70), name=st.none() | st.text(max_size=30),
       method=st.sampled_from(["GET", "DELETE", "POST", "PUT"]))
def test_fuzz_job_ids(client, cases, job_id, name, method):
    cases["job ids"] = cases.get("job ids", 0) + 1
    path = "/jobs/" + quote(job_id, safe="") + ("" if name is None else "/" + quote(name, safe=""))
    response = client.open(path, method=method)
    check(response)
    assert response.status_code in (400, 404, 405, 308) or response.status_code == 200 and path == "/jobs/"


@FUZZ
@given(query=st.text(max_size=120), raw=st.binary(max_size=60),
       route=st.sampled_from(["/api/frame", "/api/predict", "/", "/api/stream", "/api/health"]))
def test_fuzz_query_strings(make_app, cases, query, raw, route):
    cases["query strings"] = cases.get("query strings", 0) + 1
    guarded = make_app(host="0.0.0.0", token="fuzz-token-0123456789").test_client()
    for client in (make_app().test_client(), guarded):
        for qs in (quote(query, safe="=&"), raw.decode("latin-1"), "session=" + quote(query), "token=" + quote(query),
                   "session=fuzz-tab-1&uniform_prior=" + quote(query)):
            method = "POST" if route in ("/api/frame", "/api/predict") else "GET"
            check(client.open(route + "?" + qs, method=method, data=png_bytes(16, 16), content_type="image/png"))
