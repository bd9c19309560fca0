"""Query parameters: each view names those it reads, and any other gets a 400 that says so.

A misspelt or unsupported parameter (`?model=accurate`, `?sesion=`) would otherwise be ignored and
the request answered as if it had not been sent.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

from flask import Flask, abort, current_app, request

from ..errors import ModelError
from .services import services

if TYPE_CHECKING:
    from ..inference.pipeline import Pipeline

ATTRIBUTE = "query_params"
UNIFORM_PRIOR = "uniform_prior"  # the name `--uniform-prior` and PipelineConfig.uniform_prior have
SWITCH = {"1": True, "true": True, "on": True, "0": False, "false": False, "off": False}


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
            if len(request.args.getlist(name)) > 1:  # which one would count is a guess: refused, not guessed
                abort(400, f"query parameter {name[:40]!r} given more than once")


def switch(name: str) -> bool | None:
    """A yes/no query parameter (1, true, on / 0, false, off; any case): None when absent, else a 400 for
    another value."""
    value = request.args.get(name)
    if value is None:
        return None
    if value.lower() not in SWITCH:
        abort(400, f"?{name}= takes 1 or 0 (true or false), got {value[:20]!r}")
    return SWITCH[value.lower()]


def request_pipeline() -> Pipeline:
    """The shared pipeline, with this request's `?uniform_prior=1|0` over the server's own setting (one tab
    may want every expression equally likely while another keeps the training prior)."""
    pipeline = services().pipeline
    value = switch(UNIFORM_PRIOR)
    if value is None:
        return pipeline
    try:
        return pipeline.with_uniform_prior(value)
    except ModelError as exc:  # a model whose class shares are unknown
        abort(400, str(exc))
