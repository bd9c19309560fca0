"""The web app: live video, browser camera, photo and video uploads, and a JSON API (Flask).

`create_app` is imported on first use, so that the Flask-free engines (`ferkit.web.engines`)
can be imported without Flask."""

__all__ = ["create_app"]


def __getattr__(name: str):
    if name == "create_app":
        from .app import create_app

        return create_app
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
