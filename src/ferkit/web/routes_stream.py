"""/video_feed: the server-side source as an MJPEG stream of annotated frames (engines.broadcast)."""

from __future__ import annotations

from flask import Blueprint, Response, abort

from .engines.broadcast import BOUNDARY
from .params import accepts
from .services import services

bp = Blueprint("stream", __name__)


@bp.get("/video_feed")
@accepts("reconnect")  # the page adds it so a reconnect is not served from cache
def video_feed():
    broadcaster = services().broadcaster
    if not broadcaster.configured:
        abort(503, "no server-side video source configured: start the server with "
                   "`ferkit serve --source 0|FILE|URL`, or use your browser camera")
    return Response(broadcaster.viewer(), mimetype=f"multipart/x-mixed-replace; boundary={BOUNDARY}")
