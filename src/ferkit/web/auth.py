"""Token access, as Jupyter does it: open on a loopback address; anywhere else every route but the
static files needs the token. An open loopback server answers only requests addressed to a loopback
name (the Host header), so a web page whose domain is re-pointed at 127.0.0.1 (DNS rebinding)
cannot use it, and no server takes a POST or DELETE that another site's page sent. The page trades
`?token=` for an HttpOnly, SameSite=Strict cookie (and drops it from the address bar); API clients
send `Authorization: Bearer TOKEN`. Tokens and cookies are compared in constant time. A wrong or
missing token gets a 401: JSON on the API, the login form on pages.
"""

from __future__ import annotations

import hashlib
import hmac
import ipaddress
import secrets
from urllib.parse import urlencode, urlparse

from flask import Flask, make_response, redirect, render_template, request
from werkzeug.exceptions import Forbidden, Unauthorized

from ..config import ServeConfig
from .responses import error_response, wants_json

COOKIE = "ferkit_auth"


def is_loopback(host: str) -> bool:
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return host == "localhost"


def host_name(host: str) -> str:
    """The name in a Host header: '127.0.0.1:8000' -> '127.0.0.1', '[::1]:8000' -> '::1'."""
    if host.startswith("["):
        return host[1:].partition("]")[0]
    return host.rpartition(":")[0] if host.count(":") == 1 else host


class TokenAuth:
    """Flask-free: whether a token is needed, the token, and the cookie that stands for it."""

    def __init__(self, cfg: ServeConfig):
        self.required = not cfg.no_auth and not is_loopback(cfg.host)
        self.loopback_only = is_loopback(cfg.host)  # then requests must name a loopback host
        self.generated = self.required and not cfg.token
        self.token = cfg.token or (secrets.token_hex(16) if self.required else None)  # 128 random bits
        # The cookie is an HMAC of the token under a key that lives only in this process: unguessable,
        # useless after a restart, and never the token itself.
        self._cookie = hmac.new(secrets.token_bytes(32), (self.token or "").encode(), hashlib.sha256).hexdigest()

    def check_token(self, given: str | None) -> bool:
        return bool(self.token) and given is not None and hmac.compare_digest(given.encode(), self.token.encode())

    def check_cookie(self, given: str | None) -> bool:
        return given is not None and hmac.compare_digest(given.encode(), self._cookie.encode())

    @property
    def cookie(self) -> str:
        return self._cookie


def bearer_token() -> str | None:
    scheme, _, value = request.headers.get("Authorization", "").partition(" ")
    return value.strip() if scheme.lower() == "bearer" else None


SAFE_METHODS = ("GET", "HEAD", "OPTIONS")


def is_cross_site(loopback_only: bool) -> bool:
    """Whether a request that changes something (an upload, a job, a delete) comes from another site's page: a
    cross-site "simple" POST needs no CORS preflight, so without this any page the user visits could send
    uploads to an open server. Browsers say so in Sec-Fetch-Site; older ones only in Origin, compared with the
    Host on a loopback server (elsewhere a proxy may rewrite the Host, and the token guards that server).
    Clients that are no browser (curl, scripts) send neither header and are let through."""
    if request.method in SAFE_METHODS:
        return False
    if request.headers.get("Sec-Fetch-Site", "").lower() in ("cross-site", "same-site"):
        return True
    origin = request.headers.get("Origin")
    return loopback_only and origin is not None and urlparse(origin.lower()).netloc != request.host.lower()


def register(app: Flask, auth: TokenAuth) -> None:
    @app.before_request
    def refuse_cross_site_requests():
        if is_cross_site(auth.loopback_only):
            return error_response(Forbidden("this server takes uploads and changes only from its own page "
                                            "(this request came from another site's page)"))
        return None

    if auth.loopback_only:
        @app.before_request
        def require_loopback_host():
            if not is_loopback(host_name(request.host.lower())):
                return error_response(Forbidden("this server answers only to localhost and loopback addresses "
                                                "(serve with --host to reach it by another name)"))
            return None
    if not auth.required:
        return

    @app.before_request
    def require_token():
        if request.endpoint == "static":
            return None
        if auth.check_cookie(request.cookies.get(COOKIE)) or auth.check_token(bearer_token()):
            return None
        query_token = request.args.get("token")
        if query_token is not None and not wants_json() and auth.check_token(query_token):
            # Swap the token in the address for a cookie, so it stays out of history and logs.
            others = [(k, v) for k, v in request.args.items(multi=True) if k != "token"]
            response = redirect(request.path + ("?" + urlencode(others) if others else ""), code=303)
            response.set_cookie(COOKIE, auth.cookie, httponly=True, samesite="Strict",
                                secure=request.scheme == "https", path="/")
            return response
        headers = {"WWW-Authenticate": 'Bearer realm="ferkit"'}
        if wants_json():
            return error_response(Unauthorized("this server needs its token: send the header "
                                               "'Authorization: Bearer TOKEN'"), headers)
        wrong = query_token is not None
        response = make_response(render_template("login.html", wrong=wrong), 401)
        response.headers.update(headers)
        return response
