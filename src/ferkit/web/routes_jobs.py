"""/jobs: video uploads as background jobs (engines.jobs): create, follow, download, delete."""

from __future__ import annotations

from flask import Blueprint, abort, request, send_file, url_for

from .engines.jobs import ARTIFACTS, Job, JobManager
from .api import UPLOAD_PART
from .params import UNIFORM_PRIOR, accepts, request_pipeline, switch
from .services import services

VIDEO_FIELD = "video"
bp = Blueprint("jobs", __name__, url_prefix="/jobs")


def manager() -> JobManager:
    return services().jobs


def job_or_404(job_id: str) -> Job:
    job = manager().get(job_id)
    if job is None:
        abort(404, "no such job (unknown, deleted or expired)")
    return job


def job_json(job: Job) -> dict:
    return {**job.to_dict(manager().ttl_s),
            "files": {name: url_for("jobs.artifact", job_id=job.id, name=name) for name in job.artifacts()}}


@bp.post("")
@accepts(UNIFORM_PRIOR)
def create():
    pipeline = request_pipeline()
    upload = request.files.get(VIDEO_FIELD)
    if upload is None:
        abort(400, f"send the video as the multipart form field {VIDEO_FIELD!r} ({UPLOAD_PART})")
    job = manager().submit(upload.stream, upload.filename, upload.mimetype, pipeline)
    return job_json(job), 202, {"Location": url_for("jobs.status", job_id=job.id)}


@bp.get("/<job_id>")
def status(job_id: str):
    return job_json(job_or_404(job_id))


@bp.delete("/<job_id>")
def delete(job_id: str):
    if not manager().delete(job_id):
        abort(404, "no such job (unknown, deleted or expired)")
    return {"deleted": job_id}


@bp.get("/<job_id>/<name>")
@accepts("download")
def artifact(job_id: str, name: str):
    job = job_or_404(job_id)
    if name not in ARTIFACTS or name not in job.artifacts():
        abort(404, f"no file {name!r} for this job (files: {', '.join(job.artifacts()) or 'none yet'})")
    return send_file(job.folder / name, mimetype=ARTIFACTS[name], as_attachment=bool(switch("download")),
                     download_name=f"{job.id[:8]}-{name}", max_age=0)
