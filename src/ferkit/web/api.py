"""The JSON API: /api/predict (the CLI's `predict --json` shape), /api/health, and the page's helpers
/api/annotate (photo upload), /api/frame (browser-camera frames) and /api/stream (live feed status).

Images arrive as the multipart field `image` or as the raw request body; they are decoded in
memory and never written to disk. At most `max_inflight` images are analysed at once; a request
beyond that waits a moment for a slot, then gets 429 (camera frames are dropped at once).
"""

from __future__ import annotations

import base64
import time

from flask import Blueprint, abort, request

from .. import __version__
from ..inference.images import faces_report, predict_image, read_image
from ..vision.draw import draw_faces, encode_jpeg
from .engines.sessions import SESSION_ID
from .params import UNIFORM_PRIOR, accepts, request_pipeline
from .services import services

IMAGE_FIELD = "image"
# werkzeug drops a part whose file name is not UTF-8 without a word: the 400 names that cause too
UPLOAD_PART = "a file, its name in UTF-8"
PREDICT_WAIT_S = 2.0  # how long /api/predict and /api/annotate wait for a free slot before 429
bp = Blueprint("api", __name__, url_prefix="/api")


def uploaded_image() -> tuple[str | None, bytes]:
    """(file name or None, bytes) of the image in this request: the form field, or else the raw body."""
    if request.mimetype == "multipart/form-data":
        upload = request.files.get(IMAGE_FIELD)
        if upload is None:
            abort(400, f"send the image as the multipart form field {IMAGE_FIELD!r} ({UPLOAD_PART}) "
                       "or as the raw body")
        name, data = upload.filename or None, upload.read()
    elif request.mimetype.startswith(("text/", "application/json")):
        abort(415, f"expected an image, got {request.mimetype}")
    else:  # any other type, even curl --data-binary's default form-urlencoded: the body is the file
        name, data = None, request.get_data(cache=False)
    if not data:
        abort(400, "the upload is empty")
    return name, data


@bp.get("/health")
def health():
    pipeline = services().pipeline
    return {"status": "ok", "model": pipeline.classifier.name, "version": __version__,
            "backend": pipeline.classifier.backend, "detector": pipeline.detector.name}


@bp.post("/predict")
@accepts(UNIFORM_PRIOR)
def predict():
    pipeline = request_pipeline()  # a bad parameter is answered before the upload is read
    name, data = uploaded_image()
    with services().inference.take(PREDICT_WAIT_S):
        return {"images": [{"path": name, **predict_image(pipeline, read_image(data))}]}


@bp.post("/annotate")
@accepts(UNIFORM_PRIOR)
def annotate():
    """/api/predict's answer plus the annotated image as a JPEG data URL (for the page's photo upload)."""
    pipeline = request_pipeline()
    name, data = uploaded_image()
    with services().inference.take(PREDICT_WAIT_S):
        image = read_image(data)
        faces = pipeline.analyse(image)
        jpeg = encode_jpeg(draw_faces(image, faces), services().config.serve.jpeg_quality)
    return {"images": [{"path": name, **faces_report(faces)}],
            "annotated": "data:image/jpeg;base64," + base64.b64encode(jpeg).decode()}


@bp.post("/frame")
@accepts("session", UNIFORM_PRIOR)
def frame():
    """One browser-camera frame (JPEG body) of the tab `?session=ID` -> its faces, with stable ids."""
    session_id = request.args.get("session", "")
    if not SESSION_ID.fullmatch(session_id):
        abort(400, "?session= must be 8-64 letters, digits, '-' or '_' (one random id per browser tab)")
    pipeline = request_pipeline()
    _, data = uploaded_image()
    with services().inference.take():  # a camera sends its next frame soon: drop this one if busy
        image = read_image(data)
        started = time.perf_counter()
        faces = services().cameras.process(session_id, image, pipeline)
    return {**faces_report(faces), "width": image.shape[1], "height": image.shape[0],
            "server_ms": round(1000 * (time.perf_counter() - started), 1)}


@bp.get("/stream")
def stream_status():
    return services().broadcaster.status()
