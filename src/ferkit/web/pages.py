"""The page: live stream of the server's source, browser camera, photo and video uploads."""

from __future__ import annotations

from flask import Blueprint, render_template

from ..errors import ModelError
from ..labels import CLASS_NAMES
from ..video.writers import CSV_COLUMNS
from ..vision.draw import EMOTION_COLOURS
from .engines.jobs import ARTIFACTS
from .routes_jobs import VIDEO_FIELD
from .params import accepts
from .services import services

bp = Blueprint("pages", __name__)


def css_colour(bgr: tuple[int, int, int]) -> str:
    blue, green, red = bgr
    return f"#{red:02x}{green:02x}{blue:02x}"


def has_class_shares() -> bool:
    """Whether the model's class shares are known, so a tab may ask for the uniform prior."""
    try:
        services().pipeline.classifier.class_shares()
    except ModelError:
        return False
    return True


@bp.get("/")
@accepts("token")  # auth trades it for a cookie; it may stay when a cookie already let the request in
def index():
    shared = services()
    return render_template(
        "index.html", uniform_prior=shared.pipeline.cfg.uniform_prior, uniform_prior_available=has_class_shares(),
        live_source=shared.broadcaster.configured, model=shared.pipeline.classifier.name,
        class_names=list(CLASS_NAMES), colours={name: css_colour(c) for name, c in EMOTION_COLOURS.items()},
        max_upload_mb=shared.config.serve.max_upload_mb, job_ttl=shared.config.serve.job_ttl,
        video_field=VIDEO_FIELD, artifacts=list(ARTIFACTS), camera_max_side=shared.config.detector.max_side,
        csv_columns=list(CSV_COLUMNS))
