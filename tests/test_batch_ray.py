"""ferkit batch on Ray: a real private local cluster started by the tests, and a two-node cluster
(`ray start --head` plus one worker, on free ports of this machine). The results must equal the
local engine's, byte for byte in the per-video CSVs.

Never `ray stop` here: it ends every Ray process on the machine, other people's too. The
two-node cluster is stopped by killing exactly the processes started for it (found by their
private temp folder, and their children).
"""

from __future__ import annotations

import json
import os
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
from pathlib import Path

import pyarrow.parquet as pq
import pytest

# Token authentication (on by default since Ray 2.5x) without reading or writing ~/.ray: the
# tests' clusters and drivers share this token. Set before Ray is imported, which reads the mode once.
RAY_ENV = {"RAY_USAGE_STATS_ENABLED": "0", "RAY_AUTH_MODE": "token", "RAY_AUTH_TOKEN": secrets.token_hex(16)}
os.environ.update(RAY_ENV)
if os.environ.get("CI") == "true":  # CI installs the extra (scripts/test.sh): a skip would hide a broken install
    import ray
else:
    ray = pytest.importorskip("ray", reason='the ray extra is not installed (pip install -e ".[ray]")')

from conftest import expected_csv, mixed_folder, rows, wait_until, write_photo, write_video  # noqa: E402

from ferkit.batch import analyse  # noqa: E402

SAME = ["input", "kind", "status", "frames", "faces", "seconds", "dominant", "error"]
OBJECT_STORE = str(100 * 1024 ** 2)  # Ray's minimum is 75 MB; CI containers have a small /dev/shm

# config and pipeline (the tiny model, one per module) are conftest.py's fixtures.


@pytest.fixture(scope="module")
def ray_env():
    """The environment of the tests' Ray processes and drivers."""
    return {**os.environ, **RAY_ENV}


@pytest.fixture(scope="module")
def local_ray(ray_env):
    """A private local cluster (address="local": never a stray one), with a short temp folder
    (Unix socket paths must stay under 107 bytes); analyse(engine="ray") uses this connection."""
    temp = tempfile.mkdtemp(prefix="frt-", dir="/tmp")
    ray.init(address="local", num_cpus=2, _temp_dir=temp, object_store_memory=int(OBJECT_STORE),
             include_dashboard=False, log_to_driver=False)
    yield ray.get_runtime_context().get_node_id()
    ray.shutdown()
    shutil.rmtree(temp, ignore_errors=True)


def test_ray_engine_equals_the_local_engine(local_ray, config, tmp_path):
    root = mixed_folder(tmp_path / "media")
    local = analyse([root], tmp_path / "local", config=config, progress=False)
    table = analyse([root], tmp_path / "ray", engine="ray", config=config, progress=False)
    assert table.select(SAME).equals(local.select(SAME))
    assert [s for (s,) in rows(table, "status")] == ["done", "failed", "done", "failed", "done", "done"]
    assert {node for (node,) in rows(table, "node")} == {local_ray}, "every input ran on the Ray node"
    for key in ("a", "sub/e"):
        assert (tmp_path / "ray" / "videos" / f"{key}.csv").read_bytes() == \
               (tmp_path / "local" / "videos" / f"{key}.csv").read_bytes()
        assert (tmp_path / "ray" / "videos" / f"{key}_timeline.png").stat().st_size > 0
        ray_json, local_json = (json.loads((tmp_path / out / "videos" / f"{key}.json").read_text())
                                for out in ("ray", "local"))
        assert ray_json["outputs"] == {"csv": str(tmp_path / "ray" / "videos" / f"{key}.csv"),
                                       "timeline": str(tmp_path / "ray" / "videos" / f"{key}_timeline.png")}
        drop = ("fps", "outputs")
        assert {k: v for k, v in ray_json.items() if k not in drop} == \
               {k: v for k, v in local_json.items() if k not in drop}
    by_face = [("path", "ascending"), ("face_id", "ascending")]
    assert pq.read_table(tmp_path / "ray" / "photos").sort_by(by_face).equals(
        pq.read_table(tmp_path / "local" / "photos").sort_by(by_face))
    rerun = analyse([root], tmp_path / "ray", engine="ray", config=config, progress=False)
    assert [s for (s,) in rows(rerun, "status")] == ["skipped", "failed", "skipped", "failed", "skipped", "skipped"]
    # --keep-partial reaches the Ray task: the damaged video's frames before the damage, as the local engine keeps
    kept = [analyse([root / "b_bad.mp4"], tmp_path / out, engine=engine, config=config, progress=False,
                    keep_partial=True) for out, engine in (("local", "local"), ("ray", "ray"))]
    assert rows(kept[1], "status", "frames", "error") == rows(kept[0], "status", "frames", "error")
    assert rows(kept[1], "status")[0] == ("done",) and "damaged or truncated" in rows(kept[1], "error")[0][0]


def test_ray_photo_stage_many_batches(local_ray, config, tmp_path):
    """More photos than one actor batch: every photo is in the dataset exactly once."""
    root = tmp_path / "photos"
    root.mkdir()
    for i in range(40):
        write_photo(root / f"p{i:02d}.png", seed=i % 3)
    table = analyse([root], tmp_path / "out", engine="ray", config=config, progress=False)
    assert [s for (s,) in rows(table, "status")] == ["done"] * 40
    dataset = pq.read_table(tmp_path / "out" / "photos")
    assert sorted(dataset.column("path").to_pylist()) == [str(root / f"p{i:02d}.png") for i in range(40)]


# --- a two-node cluster on this machine -------------------------------------------------------

def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def processes_of(marker: str) -> set[int]:
    """The processes whose command line names `marker` (the cluster's own temp folder), and
    their children: exactly what `ray start` started for this test."""
    found = set()
    for proc in Path("/proc").iterdir():
        if proc.name.isdigit():
            try:
                if marker.encode() in (proc / "cmdline").read_bytes():
                    found.add(int(proc.name))
            except OSError:
                pass
    todo = list(found)
    while todo:
        for task in Path(f"/proc/{todo.pop()}/task").glob("*"):
            try:
                children = {int(c) for c in (task / "children").read_text().split()} - found
            except OSError:
                continue
            found |= children
            todo += children
    return found - {os.getpid()}


@pytest.fixture
def two_nodes(ray_env):
    """`ray start --head` and one `ray start --address` worker, one CPU each; yields the address."""
    temp = tempfile.mkdtemp(prefix="frt2-", dir="/tmp")
    port = free_port()
    common = ["--num-cpus", "1", "--object-store-memory", OBJECT_STORE, "--temp-dir", temp, "--disable-usage-stats"]
    ray_cli = str(Path(sys.executable).with_name("ray"))
    try:
        subprocess.run([ray_cli, "start", "--head", "--node-ip-address", "127.0.0.1", "--port", str(port),
                        "--include-dashboard", "false", *common], env=ray_env, check=True, capture_output=True)
        subprocess.run([ray_cli, "start", "--address", f"127.0.0.1:{port}", "--node-ip-address", "127.0.0.1",
                        *common], env=ray_env, check=True, capture_output=True)
        yield f"127.0.0.1:{port}"
    finally:
        for pid in processes_of(temp):
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        wait_until(lambda: not processes_of(temp), timeout=30, interval=0.1)
        shutil.rmtree(temp, ignore_errors=True)


@pytest.mark.slow
def test_two_node_cluster_runs_on_both_nodes_with_the_local_results(two_nodes, ray_env, tiny_model_dir,
                                                                     pipeline, tmp_path):
    root = tmp_path / "media"
    root.mkdir()
    for i in range(4):
        write_video(root / f"v{i}.mp4", 80, seed=i, size=(320, 240), pattern="square")
    write_photo(root / "p.png")
    out = tmp_path / "out"
    command = [sys.executable, "-m", "ferkit.cli", "batch", str(root), "--out", str(out), "--engine", "ray",
               "--address", two_nodes, "--model", str(tiny_model_dir), "--no-progress"]
    done = subprocess.run(command, env=ray_env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout.startswith("5 inputs: 5 done, 0 skipped (done before), 0 failed in ")
    table = pq.read_table(out / "summary.parquet")
    nodes = {node for (kind, node) in rows(table, "kind", "node") if kind == "video"}
    assert len(nodes) == 2, "the videos ran on both nodes"
    for i in range(4):
        video = root / f"v{i}.mp4"
        assert (out / "videos" / f"v{i}.csv").read_bytes() == expected_csv(pipeline, video, tmp_path)
    assert rows(pq.read_table(out / "photos"), "path", "face_id") == [(str(root / "p.png"), None)]


def test_a_cluster_that_cannot_be_reached_is_one_error_line(ray_env, tiny_model_dir, tmp_path):
    write_photo(tmp_path / "p.png")
    command = [sys.executable, "-m", "ferkit.cli", "batch", str(tmp_path / "p.png"), "--out", str(tmp_path / "out"),
               "--engine", "ray", "--address", f"127.0.0.1:{free_port()}", "--model", str(tiny_model_dir)]
    done = subprocess.run(command, env=ray_env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 2 and done.stdout == ""
    assert done.stderr.startswith("ferkit batch: error: cannot connect to Ray at 127.0.0.1:")
    assert done.stderr.count("\n") == 1 and "nothing answers there (Connection refused)" in done.stderr


def test_a_job_with_nothing_left_to_do_starts_no_cluster(monkeypatch, tmp_path):
    from ferkit.batch import Job, ray_engine
    from ferkit.config import Config

    monkeypatch.setattr(ray_engine, "connect", lambda *args: pytest.fail("a cluster was started for nothing"))
    ray_engine.run(Job(Config(), [], [], tmp_path), report=None)


def test_starting_a_local_cluster_does_not_warn_about_its_default_token_authentication(monkeypatch):
    """Ray 2.5x logs a WARNING on every local start that it turned token authentication on: noise in every run.
    ray.init is replaced by what Ray does in it when RAY_AUTH_MODE is unset; a real start is in the slow tests."""
    import logging

    from ray._private.authentication import authentication_token_setup as setup

    from ferkit.batch import ray_engine

    seen = []
    handler = logging.Handler()
    handler.emit = lambda record: seen.append((record.levelname, record.getMessage()[:40]))
    monkeypatch.setattr(setup.logger, "handlers", [*setup.logger.handlers, handler])
    monkeypatch.setattr(setup.logger, "level", setup.logger.level)  # the level connect() sets, undone after
    monkeypatch.setattr(ray_engine.ray, "is_initialized", lambda: False)
    monkeypatch.setattr(ray_engine.ray, "init", lambda **kwargs: setup._warn_token_auth_enabled())
    assert ray_engine.connect(None, 1) is True
    setup.logger.error("an error still shows")
    assert seen == [("ERROR", "an error still shows")]
