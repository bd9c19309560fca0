"""The web app: live video, browser camera, photo and video uploads, and a JSON API (Flask)."""

from .app import create_app

__all__ = ["create_app"]
