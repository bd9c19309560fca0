"""The `ray` engine (`pip install "ferkit[ray]"`): one Ray task per video and a Ray Data
`map_batches` stage of actors for photos, each actor holding one loaded Pipeline. The same call
runs on a laptop (a private local Ray) or a cluster (`address="auto"` or "ray://host:10001").

Pitfalls on small machines, each handled here: OpenCV threads per core in every worker
(cv2.setNumThreads(1) in tasks.worker_setup); Ray Data's read stage starving when actors hold
every CPU (photos are decoded inside the actors, there is no separate read stage); ray.init()
silently joining a stray local cluster (address="local" starts a private one); Unix socket paths
over 107 bytes (Ray's temp folder is kept short); and /dev/shm too small for the default object
store in containers (a small object store: workers only send rows and a video's small files).
"""

from __future__ import annotations

import logging
import os
import socket
import tempfile
from pathlib import Path

import pyarrow as pa

from ..errors import FerkitError

try:
    import ray
    import ray.data
except ImportError:  # pragma: no cover - depends on the install
    raise FerkitError('the ray engine needs Ray: pip install "ferkit[ray]"') from None

from .tasks import PHOTO_RESULT_SCHEMA, analyse_photos, analyse_video, pipeline_for

PHOTOS_PER_BATCH = 16
OBJECT_STORE_BYTES = 256 * 1024 ** 2  # a private cluster's object store: rows and small files only


def short_temp_dir() -> str:
    """Ray's socket paths live under its temp folder and must stay under 107 bytes."""
    return f"/tmp/ferkit-ray-{os.getuid()}"


def connect(address: str | None, workers: int | None) -> bool:
    """Connect to Ray; True when this call started it (and so must shut it down).

    An already connected caller (a notebook, a test) keeps its own connection. None or "local"
    starts a private local cluster; anything else ("auto", "HOST:PORT", "ray://HOST:10001") joins one.
    """
    if ray.is_initialized():
        return False
    check_reachable(address)
    os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
    # Ray 2.5x warns on every start of a local cluster that it turned token authentication on (its default): not news
    logging.getLogger("ray._private.authentication.authentication_token_setup").setLevel(logging.ERROR)
    settings = {"logging_level": logging.WARNING, "log_to_driver": False, "configure_logging": True}
    try:
        if address in (None, "local"):
            ray.init(address="local", num_cpus=workers, _temp_dir=short_temp_dir(),
                     object_store_memory=OBJECT_STORE_BYTES, include_dashboard=False, **settings)
        else:
            ray.init(address=address, **settings)
    except Exception as exc:  # ConnectionError, AuthenticationError, ValueError for a bad address...
        # Ray 2.5x turns token authentication on by default: a driver must then send the token too
        hint = "" if address in (None, "local") else (" (is it running? with token authentication, set "
                                                       "RAY_AUTH_MODE=token and RAY_AUTH_TOKEN or ~/.ray/auth_token)")
        raise FerkitError(f"cannot connect to Ray at {address or 'a new local cluster'}: "
                          f"{' '.join(str(exc).split())[:300]}{hint}") from None
    return True


def check_reachable(address: str | None) -> None:
    """A HOST:PORT nobody answers at fails now: ray.init would retry for minutes."""
    if not address or address in ("local", "auto") or "://" in address or ":" not in address:
        return
    host, _, port = address.rpartition(":")
    try:
        socket.create_connection((host, int(port)), timeout=10).close()
    except (OSError, ValueError) as exc:
        raise FerkitError(f"cannot connect to Ray at {address}: nothing answers there "
                          f"({getattr(exc, 'strerror', None) or exc})") from None


@ray.remote(num_cpus=1)
def video_task(config, item, annotate: bool, keep_partial: bool = False) -> dict:
    """One video on whichever node Ray picks; the files come back as bytes, since the output
    folder is on the driver's machine."""
    staging = Path(tempfile.gettempdir()) / "ferkit-batch"
    result = analyse_video(config, item, staging, annotate, as_bytes=True, keep_partial=keep_partial)
    result["node"] = ray.get_runtime_context().get_node_id()
    return result


class PhotoActor:
    """A Ray Data actor: loads the Pipeline once, then analyses batches of photo paths."""

    def __init__(self, config):
        self.config = config
        pipeline_for(config)

    def __call__(self, batch):
        table = analyse_photos(self.config, batch.column("source").to_pylist())
        node = ray.get_runtime_context().get_node_id()
        column = pa.array([node] * len(table), pa.string())
        return table.set_column(table.schema.get_field_index("node"), "node", column)


def run(job, report, workers: int | None = None, address: str | None = None) -> None:
    """Video tasks are submitted first; the photo stage streams while they run; every result is
    handed to `report` in this process as it arrives. Nothing to do (all done before): no cluster is started."""
    if not job.videos and not job.photos:
        return
    started_here = connect(address, workers)
    try:
        pending = [video_task.remote(job.config, item, job.annotate, job.keep_partial) for item in job.videos]
        pending = collect(pending, report, timeout=0)
        if job.photos:
            for batch in photo_stage(job, workers).iter_batches(batch_format="pyarrow", batch_size=None):
                report.photos(batch.cast(PHOTO_RESULT_SCHEMA))
                pending = collect(pending, report, timeout=0)
        while pending:
            pending = collect(pending, report, timeout=0.5)
    finally:
        if started_here:
            ray.shutdown()


def collect(pending: list, report, timeout: float) -> list:
    """Report the video tasks that are done; return those still running."""
    if not pending:
        return pending
    done, pending = ray.wait(pending, num_returns=len(pending), timeout=timeout)
    for result in ray.get(done):
        report.video(result)
    return pending


def photo_stage(job, workers: int | None):
    logging.getLogger("ray.data").setLevel(logging.ERROR)  # per-stage INFO lines under ferkit's bar
    context = ray.data.DataContext.get_current()
    context.enable_progress_bars = False  # ferkit draws its own
    context.print_on_execution_start = False
    cpus = int(ray.cluster_resources().get("CPU", 1))
    actors = max(1, min(workers or cpus, cpus, -(-len(job.photos) // PHOTOS_PER_BATCH)))
    items = ray.data.from_items([{"source": item.source} for item in job.photos],
                                override_num_blocks=-(-len(job.photos) // PHOTOS_PER_BATCH))
    return items.map_batches(PhotoActor, fn_constructor_args=(job.config,), batch_size=PHOTOS_PER_BATCH,
                             batch_format="pyarrow", compute=ray.data.ActorPoolStrategy(min_size=1, max_size=actors),
                             num_cpus=1)
