"""The run summary: one row per input, sorted by input, as a pyarrow Table (summary.parquet and
summary.csv in the output folder)."""

from __future__ import annotations

from pathlib import Path

import pyarrow as pa
import pyarrow.csv as pacsv
import pyarrow.parquet as pq

from ..files import atomic_output
from .inputs import Item

SUMMARY_SCHEMA = pa.schema([
    ("input", pa.string()),  # absolute path or URL
    ("kind", pa.string()),  # video | photo | missing | unknown | bad-name
    ("status", pa.string()),  # done (this run) | skipped (complete from an earlier run) | failed
    ("frames", pa.int64()),  # frames analysed (1 for a photo)
    ("faces", pa.int64()),  # face ids seen in a video; faces found in a photo
    ("seconds", pa.float64()),  # the video's duration
    ("dominant", pa.string()),  # each face's most frequent expression: "1:happy 2:neutral"
    ("elapsed_s", pa.float64()),  # processing time in this run (empty when skipped)
    ("node", pa.string()),  # where it ran: host:pid, or the Ray node id
    ("output", pa.string()),  # the video's JSON summary; the photo dataset folder
    ("error", pa.string()),
])


def video_row(item: Item, summary: dict, status: str, output: Path, elapsed_s=None, node=None) -> dict:
    faces = summary.get("faces", {})
    return {"input": item.source, "kind": item.kind, "status": status, "frames": summary["frames"],
            "faces": summary["faces_seen"], "seconds": summary["seconds"],
            "dominant": " ".join(f"{face_id}:{face['emotion']}" for face_id, face in faces.items()),
            "elapsed_s": elapsed_s, "node": node, "output": str(output),
            "error": summary.get("ended")}  # a damaged video kept in part says where it stopped


def photo_row(item: Item, rows: list[dict], status: str, output: Path) -> dict:
    """From one photo's rows of the photo dataset (or of a task's result)."""
    faces = [row for row in rows if row.get("face_id") is not None]
    elapsed = sum(row["elapsed_s"] for row in rows) if status == "done" else None
    return {"input": item.source, "kind": item.kind, "status": status, "frames": 1, "faces": len(faces),
            "dominant": " ".join(f"{row['face_id']}:{row['emotion']}" for row in faces), "elapsed_s": elapsed,
            "node": rows[0].get("node") if status == "done" else None, "output": str(output)}


def failed_row(item: Item, error: str, elapsed_s=None, node=None) -> dict:
    return {"input": item.source, "kind": item.kind, "status": "failed", "error": error,
            "elapsed_s": elapsed_s, "node": node}


def summary_table(rows: list[dict]) -> pa.Table:
    return pa.Table.from_pylist(rows, schema=SUMMARY_SCHEMA)


def write_summary(table: pa.Table, out: Path) -> None:
    with atomic_output(out / "summary.parquet") as partial:
        pq.write_table(table, partial)
    with atomic_output(out / "summary.csv") as partial:
        pacsv.write_csv(table, partial)
