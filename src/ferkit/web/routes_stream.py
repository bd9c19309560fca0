"""/video_feed: the server-side source as an MJPEG stream of annotated frames (engines.broadcast)."""

from __future__ import annotations

from flask import Blueprint, Response, abort

from .engines.broadcast import BOUNDARY
from .services import services

bp = Blueprint("stream", __name__)


@bp.get("/video_feed")
def video_feed():
    broadcaster = services().broadcaster
    if not broadcaster.configured:
        abort(503, "no server-side video source configured: start the server with "
                   "`ferkit serve --source 0|FILE|URL`, or use your browser camera")
    return Response(broadcaster.viewer(), mimetype=f"multipart/x-mixed-replace; boundary={BOUNDARY}")
