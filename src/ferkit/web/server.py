"""`ferkit serve`: the web app on waitress, a production WSGI server (never Flask's debug server)."""

from __future__ import annotations

import ipaddress
import signal
import threading

from waitress import create_server
from waitress.server import BaseWSGIServer

from ..config import Config
from .app import create_app
from .services import EXTENSION

# Request bodies a little over the upload limit still reach Flask, which answers 413 in JSON;
# bigger ones waitress refuses itself before reading them.
BODY_SLACK = 2**20


def make_server(config: Config, app=None) -> BaseWSGIServer:
    """A waitress server for the app (built from `config` unless given), bound but not yet running."""
    app = app or create_app(config)
    body_limit = config.serve.max_upload_mb * 2**20 + BODY_SLACK
    return create_server(
        app, host=config.serve.host, port=config.serve.port, threads=config.serve.threads, ident="ferkit",
        max_request_body_size=body_limit,
        # Keep request and response bodies in memory (waitress spools big ones to temporary files):
        # uploaded images must never be written to disk.
        inbuf_overflow=body_limit, outbuf_overflow=body_limit,
        # A slow /video_feed viewer gets at most ~1 MB of frames queued; then it gets newer frames only.
        outbuf_high_watermark=2**20)


def is_loopback(host: str) -> bool:
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return host == "localhost"


def serve(config: Config) -> int:
    """Serve until Ctrl+C or SIGTERM; the exit code."""
    app = create_app(config)
    server = make_server(config, app)
    url = f"http://{server.effective_host}:{server.effective_port}/"
    print(f"ferkit: serving model {app.extensions[EXTENSION].pipeline.classifier.name} on {url} "
          f"with {config.serve.threads} threads (Ctrl+C to stop)", flush=True)
    if not is_loopback(config.serve.host):
        print(f"ferkit: warning: bound to {config.serve.host}, so other machines can reach this server",
              flush=True)
    services = app.extensions[EXTENSION]

    def stop(signum, frame):
        services.broadcaster.close()  # ends the /video_feed responses, so waitress's threads can finish
        raise SystemExit(0)  # waitress's loop then stops its threads and returns

    in_main_thread = threading.current_thread() is threading.main_thread()
    previous = {sig: signal.signal(sig, stop) for sig in (signal.SIGINT, signal.SIGTERM)} if in_main_thread else {}
    try:
        server.run()
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
        server.close()
        services.close()
    return 0
