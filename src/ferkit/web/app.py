"""The Flask app factory: one shared Pipeline, one blueprint per concern, errors as JSON or a page.

    app = create_app(config)            # loads the model and detector once, for every request
    app.extensions["ferkit"].pipeline   # the shared Pipeline; .broadcaster, .jobs, .cameras beside it
"""

from __future__ import annotations

import logging
from io import BytesIO

from flask import Flask, jsonify, render_template, request
from flask.wrappers import Request
from werkzeug.exceptions import HTTPException, InternalServerError, UnsupportedMediaType

from ..config import Config
from ..errors import MediaError
from ..inference.pipeline import Pipeline
from . import api, jobs, pages, stream
from .jobs import JobManager
from .services import EXTENSION, Services
from .sessions import CameraSessions
from .stream import FrameBroadcaster

JSON_PREFIXES = ("/api/", "/jobs", "/video_feed")  # machine-facing routes: errors come back as JSON
log = logging.getLogger(__name__)


class InMemoryRequest(Request):
    """Uploaded files stay in memory (werkzeug spools big ones to a temporary file), so an uploaded
    image never touches the disk; MAX_CONTENT_LENGTH bounds the memory."""

    def _get_file_stream(self, total_content_length, content_type, filename=None, content_length=None):
        return BytesIO()


def create_app(config: Config | None = None, pipeline: Pipeline | None = None) -> Flask:
    """The web app for `config`; pass `pipeline` to share one already loaded (tests, embedding)."""
    config = config or Config()
    pipeline = pipeline or Pipeline.from_config(config)
    app = Flask(__name__)
    app.request_class = InMemoryRequest
    app.config["MAX_CONTENT_LENGTH"] = config.serve.max_upload_mb * 1024 * 1024
    app.json.sort_keys = False  # keep the CLI's key order (box, emotion, scores)
    app.extensions[EXTENSION] = Services(
        config, pipeline, FrameBroadcaster(pipeline, config.serve), JobManager(pipeline, config.serve),
        CameraSessions(pipeline, config.serve.camera_sessions, config.serve.camera_session_ttl_s))
    for blueprint in (pages.bp, api.bp, stream.bp, jobs.bp):
        app.register_blueprint(blueprint)
    register_error_handlers(app)
    return app


def wants_json() -> bool:
    return request.path.startswith(JSON_PREFIXES)


def error_response(exc: HTTPException):
    if wants_json():
        return jsonify(error={"status": exc.code, "name": exc.name, "message": exc.description}), exc.code
    return render_template("error.html", error=exc), exc.code


def register_error_handlers(app: Flask) -> None:
    @app.errorhandler(HTTPException)
    def http_error(exc: HTTPException):
        if exc.code == 413:
            exc.description = f"upload larger than the limit of {app.config['MAX_CONTENT_LENGTH'] // 2**20} MB"
        return error_response(exc)

    @app.errorhandler(MediaError)
    def media_error(exc: MediaError):
        return error_response(UnsupportedMediaType(str(exc)))

    @app.errorhandler(Exception)
    def unexpected_error(exc: Exception):
        # Logged here in full; the client gets a plain 500 without the traceback.
        log.exception("unhandled error on %s %s", request.method, request.path)
        return error_response(InternalServerError("internal error; the server log has the details"))
