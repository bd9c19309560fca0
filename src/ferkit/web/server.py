"""`ferkit serve`: the web app on waitress, a production WSGI server (never Flask's debug server)."""

from __future__ import annotations

import json
import signal
import socket
import tempfile
import threading
from pathlib import Path

from waitress import create_server, wasyncore
from waitress import utilities as waitress_errors
from waitress.channel import HTTPChannel
from waitress.parser import HTTPRequestParser
from waitress.server import BaseWSGIServer
from waitress.task import ErrorTask, ThreadedTaskDispatcher
from werkzeug.http import parse_cookie

from ..config import Config
from ..errors import FerkitError
from ..files import is_utf8_name, printable
from .app import SECURITY_HEADERS, create_app
from .auth import COOKIE, TokenAuth, is_loopback
from .engines.broadcast import check_source
from .responses import error_json, upload_limit_message
from .services import EXTENSION


class JsonErrorTask(ErrorTask):
    """waitress answers some requests itself, before the app sees them: a body over the limit (refused
    from its Content-Length, unread, or as soon as a chunked one passes it) and malformed requests.
    This gives those answers the app's JSON error shape instead of waitress's plain text."""

    def execute(self):
        error = self.request.error
        message = (upload_limit_message(self.channel.adj.max_request_body_size - 1) if error.code == 413
                   else str(error.body))
        # as Flask's jsonify writes it: compact, with a final newline, so both refusals read alike byte for byte
        text = json.dumps(error_json(error.code, error.reason, message), separators=(",", ":"), sort_keys=True)
        body = (text + "\n").encode()
        self.status = f"{error.code} {error.reason}"
        self.response_headers.extend([("Content-Type", "application/json"), *SECURITY_HEADERS.items(),
                                      ("Cache-Control", "no-store")])  # as the app's own answers
        if error.code == 401:
            self.response_headers.append(("WWW-Authenticate", 'Bearer realm="ferkit"'))
        self.set_close_on_finish()
        self.content_length = len(body)
        self.write(body)


class MissingToken(waitress_errors.Error):
    code, reason = 401, "Unauthorized"


class TokenGate(HTTPRequestParser):
    """Refuses a request that carries a body but no valid token as soon as its headers are in, so
    that a client without the token cannot make the server read (and hold) up to the upload limit.
    Requests without a body go on to the app, which checks them (and serves the login page)."""

    auth: TokenAuth | None = None  # set per server

    def received(self, data):
        headers_were_in = self.headers_finished
        consumed = super().received(data)
        if (not headers_were_in and self.headers_finished and self.error is None and self.body_rcv is not None
                and self.auth is not None and self.auth.required and not self._has_token()):
            self.error = MissingToken("this server needs its token: send the header 'Authorization: Bearer TOKEN'")
            self.completed = True
        return consumed

    def _has_token(self) -> bool:
        scheme, _, value = self.headers.get("AUTHORIZATION", "").partition(" ")
        if scheme.lower() == "bearer" and self.auth.check_token(value.strip()):
            return True
        return self.auth.check_cookie(parse_cookie(self.headers.get("COOKIE", "")).get(COOKIE))


def channel_class(app) -> type[HTTPChannel]:
    """waitress's connection handler for `app`: its errors as JSON, and the token gate."""
    extension = getattr(app, "extensions", {}).get(EXTENSION)
    gate = type("AppTokenGate", (TokenGate,), {"auth": extension.auth if extension else None})
    return type("FerkitChannel", (HTTPChannel,), {"error_task_class": JsonErrorTask, "parser_class": gate})


def make_server(config: Config, app=None) -> BaseWSGIServer:
    """A waitress server for the app (built from `config` unless given), bound but not yet running.
    OSError when the address cannot be bound."""
    app = app or create_app(config)
    body_limit = config.serve.max_upload_mb * 2**20
    # Our own dispatcher, so that its threads can be stopped when the address cannot be bound.
    dispatcher = ThreadedTaskDispatcher()
    dispatcher.set_thread_count(config.serve.threads)
    try:
        server = create_server(
            app, host=config.serve.host, port=config.serve.port, threads=config.serve.threads, ident="ferkit",
            _dispatcher=dispatcher,
            # waitress refuses a body over the limit from its Content-Length, without reading it (with
            # JsonErrorTask's JSON 413); the app's own MAX_CONTENT_LENGTH check covers the test client.
            max_request_body_size=body_limit + 1,
            # Keep request and response bodies in memory (waitress spools big ones to temporary files):
            # uploaded images must never be written to disk.
            inbuf_overflow=body_limit + 1, outbuf_overflow=body_limit + 1,
            # A slow /video_feed viewer gets at most ~1 MB of frames queued; then it gets newer frames only.
            outbuf_high_watermark=2**20)
    except BaseException:
        dispatcher.shutdown(timeout=1)
        raise
    server.channel_class = channel_class(app)
    return server


def stop_server(server: BaseWSGIServer, thread: threading.Thread | None = None) -> None:
    """End a server and waitress's threads (run() ends them only on signals): after run() returned,
    or from another thread while `thread` runs it (its loop then closes its own sockets and returns)."""
    if thread is not None and thread.is_alive():
        try:
            server.trigger.pull_trigger(lambda: wasyncore.close_all(server._map))
        except OSError:
            # The loop's wake-up pipe is already closed (seen once in a full test run): empty its map,
            # so it returns within one poll timeout, then close the sockets from here, all but that pipe
            # (its descriptor number may belong to someone else by now).
            dispatchers = [d for d in server._map.values() if d is not server.trigger]
            server._map.clear()
            thread.join(timeout=10)
            for dispatcher in dispatchers:
                dispatcher.close()
        else:
            thread.join(timeout=10)
    else:
        server.close()
    server.task_dispatcher.shutdown()


def announce(config: Config, app, server: BaseWSGIServer) -> None:
    """The address to open, with the token when one is needed, and what is open to whom."""
    services = app.extensions[EXTENSION]
    host, port = server.effective_host, server.effective_port
    # bound to every address: 0.0.0.0 is no address to open, and not a secure context (no browser camera there)
    here = {"0.0.0.0": "127.0.0.1", "::": "[::1]"}.get(host)
    url = f"http://{here or (f'[{host}]' if ':' in host else host)}:{port}/"
    threads = config.serve.threads
    print(f"ferkit: serving model {services.pipeline.classifier.name} with {threads} thread{'s' * (threads != 1)} "
          f"(Ctrl+C to stop)", flush=True)
    if services.auth.required:
        print(f"ferkit: open {url}?token={services.auth.token}", flush=True)
        if here:
            print(f"ferkit: from other machines: http://{socket.gethostname()}:{port}/?token={services.auth.token} "
                  "(or this machine's address)", flush=True)
        source = "generated for this run" if services.auth.generated else "as given"
        print(f"ferkit: bound to {config.serve.host}, reachable from other machines: every route needs the "
              f"token ({source}); API clients send 'Authorization: Bearer TOKEN'", flush=True)
    else:
        print(f"ferkit: open {url}", flush=True)
        if here:
            print(f"ferkit: from other machines: http://{socket.gethostname()}:{port}/ (or this machine's address)",
                  flush=True)
        if not is_loopback(config.serve.host):
            print(f"ferkit: WARNING: --no-auth: bound to {config.serve.host} WITHOUT a token; anyone who can "
                  "reach this address can watch the server's camera, use the API and upload videos",
                  flush=True)


def check_jobs_dir(folder: Path) -> None:
    """--jobs-dir must be a folder this process can write to (made if missing): said at start, not
    at the first upload."""
    if not is_utf8_name(folder.resolve()):  # uploads are probed by name with OpenCV, which crashes on such names
        raise FerkitError(f"--jobs-dir {printable(folder)}: its name is not valid UTF-8; choose another folder")
    try:
        folder.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryFile(dir=folder):
            pass
    except OSError as exc:
        raise FerkitError(f"--jobs-dir {folder}: not a writable folder ({exc.strerror or exc})") from None


def check_host(host: str, port: int) -> None:
    """--host must resolve to an address to bind (waitress would say only "Invalid host/port
    specified.", as a traceback); resolved as waitress does, before the model loads."""
    try:
        socket.getaddrinfo(host, port, socket.AF_UNSPEC, socket.SOCK_STREAM, socket.IPPROTO_TCP, socket.AI_PASSIVE)
    except (OSError, UnicodeError) as exc:  # UnicodeError: a name IDNA cannot encode (a label over 63 chars)
        reason = (exc.strerror or str(exc)) if isinstance(exc, OSError) else "not a valid address or host name"
        raise FerkitError(f"cannot listen on {host}:{port}: {reason}") from None


def serve(config: Config) -> int:
    """Serve until Ctrl+C or SIGTERM; the exit code. Running jobs are stopped and every job's
    files removed on the way out."""
    check_host(config.serve.host, config.serve.port)
    if config.serve.jobs_dir:
        check_jobs_dir(Path(config.serve.jobs_dir))
    if config.serve.source is not None and config.serve.threads < 2:  # checked first: it needs no camera
        # a /video_feed viewer holds its thread for as long as it watches: with one, the page and the API would wait
        raise FerkitError("--source needs --threads 2 or more: each /video_feed viewer holds a worker thread")
    check_source(config.serve.source)
    app = create_app(config)
    services = app.extensions[EXTENSION]
    try:
        server = make_server(config, app)
    except (OSError, ValueError) as exc:  # ValueError: waitress's word for an address it cannot resolve
        services.close()
        reason = (exc.strerror or str(exc)) if isinstance(exc, OSError) else "not a valid address or host name"
        raise FerkitError(f"cannot listen on {config.serve.host}:{config.serve.port}: {reason}") from None
    announce(config, app, server)

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
        stop_server(server)
        services.close()
    return 0
