"""Query parameters: each view names those it reads, and any other gets a 400 that says so.

A misspelt or unsupported parameter (`?model=accurate`, `?sesion=`) would otherwise be ignored and
the request answered as if it had not been sent.
"""

from __future__ import annotations

from collections.abc import Callable

from flask import Flask, abort, current_app, request

ATTRIBUTE = "query_params"


def accepts(*names: str) -> Callable:
    """Decorator: the query parameters this view reads (a view without it reads none)."""
    def mark(view: Callable) -> Callable:
        setattr(view, ATTRIBUTE, frozenset(names))
        return view
    return mark


def unknown_message(name: str, allowed: frozenset[str], model: str) -> str:
    if name == "model":  # the likeliest one: say where the model is chosen
        return (f"unknown query parameter 'model': this server runs the model {model!r}, chosen at start "
                f"(ferkit serve --model NAME)")
    takes = f"it takes {', '.join(sorted(allowed))}" if allowed else "it takes none"
    return f"unknown query parameter {name[:40]!r} for {request.path[:80]}: {takes}"


def register(app: Flask, model: str) -> None:
    @app.before_request
    def check_query():
        view = current_app.view_functions.get(request.endpoint or "")
        if view is None or request.endpoint == "static" or not request.args:
            return  # unrouted paths 404 as before; static files ignore cache-busting parameters
        allowed = getattr(view, ATTRIBUTE, frozenset())
        for name in request.args:
            if name not in allowed:
                abort(400, unknown_message(name, allowed, model))
