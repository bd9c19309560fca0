"""How errors reach clients: JSON on the machine-facing routes, a page elsewhere; never a traceback."""

from __future__ import annotations

from flask import jsonify, render_template, request
from werkzeug.exceptions import HTTPException

JSON_PREFIXES = ("/api/", "/jobs", "/video_feed")  # machine-facing routes: errors come back as JSON


def wants_json() -> bool:
    return request.path.startswith(JSON_PREFIXES)


def error_json(status: int, name: str, message: str) -> dict:
    return {"error": {"status": status, "name": name, "message": message}}


def upload_limit_message(limit_bytes: int) -> str:
    """The one wording of the 413, from Flask and from waitress alike."""
    return f"upload larger than the limit of {limit_bytes // 2**20} MB"


def error_response(exc: HTTPException, headers: dict | None = None):
    if wants_json():
        response = jsonify(error_json(exc.code, exc.name, exc.description))
    else:
        response = render_template("error.html", error=exc)
    # the exception's own headers, such as a 405's Allow (HTTP requires it), but not its HTML Content-Type
    own = {name: value for name, value in exc.get_headers() if name.lower() != "content-type"}
    return response, exc.code, {**own, **(headers or {})}
