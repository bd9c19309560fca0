"""The Flask app factory: one shared Pipeline, one blueprint per concern, errors as JSON or a page.

    app = create_app(config)            # loads the model and detector once, for every request
    app.extensions["ferkit"].pipeline   # the shared Pipeline; .broadcaster, .jobs, .cameras beside it

create_app starts no thread and writes no file: the engines start theirs on first use, and
`app.extensions["ferkit"].close()` (which `ferkit serve` calls on exit) stops them again.
"""

from __future__ import annotations

import logging
from io import BytesIO

from flask import Flask, request
from flask.wrappers import Request
from werkzeug.exceptions import (HTTPException, InternalServerError, RequestEntityTooLarge, ServiceUnavailable,
                                 TooManyRequests, UnsupportedMediaType)

from ..config import Config
from ..errors import MediaError
from ..inference.pipeline import Pipeline
from . import api, auth, pages, params, routes_jobs, routes_stream
from .auth import TokenAuth
from .engines.broadcast import FrameBroadcaster
from .engines.jobs import JobManager, JobTooLarge
from .engines.limits import Busy, Slots
from .engines.sessions import CameraSessions
from .responses import error_response, upload_limit_message
from .services import EXTENSION, Services

# The page runs app.js and style.css from this server only: no inline script or style anywhere.
# Images may be data: URLs (the annotated photo); nothing may frame the page.
CONTENT_SECURITY_POLICY = ("default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data: blob:; "
                           "media-src 'self' blob:; connect-src 'self'; object-src 'none'; base-uri 'none'; "
                           "form-action 'self'; frame-ancestors 'none'")
SECURITY_HEADERS = {
    "Content-Security-Policy": CONTENT_SECURITY_POLICY,
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "X-Frame-Options": "DENY",
    "Cross-Origin-Opener-Policy": "same-origin",
}
log = logging.getLogger(__name__)


class InMemoryRequest(Request):
    """Uploaded files stay in memory (werkzeug spools big ones to a temporary file), so an uploaded
    image never touches the disk; MAX_CONTENT_LENGTH bounds the memory."""

    def _get_file_stream(self, total_content_length, content_type, filename=None, content_length=None):
        return BytesIO()


def create_app(config: Config | None = None, pipeline: Pipeline | None = None) -> Flask:
    """The web app for `config`; pass `pipeline` to share one already loaded (tests, embedding)."""
    config = config or Config()
    serve = config.serve
    pipeline = pipeline or Pipeline.from_config(config)
    app = Flask(__name__)
    app.request_class = InMemoryRequest
    app.config["MAX_CONTENT_LENGTH"] = serve.max_upload_mb * 2**20
    app.json.sort_keys = False  # keep the CLI's key order (box, emotion, scores)
    app.extensions[EXTENSION] = services = Services(
        config, pipeline, FrameBroadcaster(pipeline, serve), JobManager(pipeline, serve),
        CameraSessions(pipeline, serve.camera_sessions, serve.camera_session_ttl_s),
        Slots(serve.max_inflight, "image"), TokenAuth(serve))
    auth.register(app, services.auth)
    params.register(app, pipeline.classifier.name)  # after auth: a stranger learns nothing from a 400
    for blueprint in (pages.bp, api.bp, routes_stream.bp, routes_jobs.bp):
        app.register_blueprint(blueprint)
    app.after_request(security_headers)
    register_error_handlers(app)
    return app


def security_headers(response):
    for name, value in SECURITY_HEADERS.items():
        response.headers.setdefault(name, value)
    if request.endpoint != "static":  # results and pages are never cached, by the browser or a proxy
        response.headers["Cache-Control"] = "no-store"
    return response


def register_error_handlers(app: Flask) -> None:
    @app.errorhandler(HTTPException)
    def http_error(exc: HTTPException):
        if exc.code == 413:
            exc.description = upload_limit_message(app.config["MAX_CONTENT_LENGTH"])
        return error_response(exc)

    @app.errorhandler(MediaError)
    def media_error(exc: MediaError):
        return error_response(UnsupportedMediaType(str(exc)))

    @app.errorhandler(JobTooLarge)
    def job_too_large(exc: JobTooLarge):
        return error_response(RequestEntityTooLarge(str(exc)))

    @app.errorhandler(Busy)
    def busy(exc: Busy):
        error = (TooManyRequests if exc.status == 429 else ServiceUnavailable)(str(exc))
        return error_response(error, {"Retry-After": str(exc.retry_after)})

    @app.errorhandler(Exception)
    def unexpected_error(exc: Exception):
        # Logged here in full; the client gets a plain 500 without the traceback.
        log.exception("unhandled error on %s %s", request.method, request.path)
        return error_response(InternalServerError("internal error; the server log has the details"))
