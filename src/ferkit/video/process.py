"""The one frame loop that turns a video file, or a camera or stream recorded live, into an annotated video, a
per-frame CSV, a timeline chart and a summary. `process_video` serves the CLI and the web app's upload jobs.
"""

from __future__ import annotations

import functools
import json
import os
import sys
import time
from contextlib import ExitStack
from pathlib import Path
from typing import Callable

from ..config import Config
from ..errors import MediaError
from ..files import atomic_output, is_special_file, is_utf8_name, printable, printable_json, require_file
from ..inference.pipeline import Pipeline
from .progress import ProgressBar
from .overlap import ReadAhead, WriteBehind
from .source import DamagedVideo, LiveSource, VideoSource, live_input, open_video
from .writers import TIMELINE_FORMATS, AnnotatedVideoWriter, CsvWriter, FaceHistory, plot_timeline, video_fourcc

ProgressCallback = Callable[[int, int], None]  # (frames done, approximate total; 0 when unknown)


def process_video(pipeline: Pipeline, input_path: str | Path | int | VideoSource | LiveSource,
                  out_video: str | Path | None = None, csv_path: str | Path | None = None,
                  timeline_png: str | Path | None = None,
                  progress_callback: ProgressCallback | None = None, fourcc: str | None = None,
                  duration: float | None = None, keep_partial: bool = False) -> dict:
    """Track and classify every face of a video file; write the outputs that were asked for.

    `input_path` may also be live (a camera index, device or stream URL, see `source.live_input`): it is
    recorded until `duration` seconds, Ctrl-C, or the source stopping or failing, each of which ends the recording as
    a file's end would (the summary's "ended" says which). It may also be a source opened already (`run_video` opens
    a camera before the model loads, and a camera opened twice may refuse the second time); it is closed at the
    end. `duration` stops a file early too. Outputs are complete or absent: on any error (MediaError for bad input
    or outputs) none of them is left behind, except that with `keep_partial` a video file damaged after some frames
    keeps the outputs of the frames read before the damage (the summary's "ended" gives DamagedVideo's reason).
    `fourcc` overrides the codec chosen from out_video's extension (the web app passes `browser_video_format()`'s).
    `progress_callback` is called after every frame; an exception it raises stops the run (that is how a caller
    cancels), outputs removed. Returns the summary (see `summarise`).
    """
    outputs = {"video": out_video, "csv": csv_path, "timeline": timeline_png}
    for kind, path in outputs.items():  # before Path() drops a trailing slash: "results/" means a folder
        if path and (str(path).endswith(("/", os.sep)) or is_folder(Path(path))):
            raise MediaError(f"{path}: is a folder; the {kind} output needs a file name")
    outputs = {kind: Path(path) for kind, path in outputs.items() if path}
    opened = input_path if isinstance(input_path, (VideoSource, LiveSource)) else None
    live = isinstance(opened, LiveSource) or (opened is None and live_input(input_path) is not None)
    check_outputs(None if live else Path(opened.path if opened else input_path), outputs, fourcc)
    stream, history = pipeline.stream(), FaceHistory()
    with ExitStack() as stack:
        source = opened or open_video(input_path)
        stack.callback(source.close)
        sinks, timeline_partial = open_outputs(stack, source, outputs, fourcc)
        # closed first on the way out (an ExitStack unwinds last in, first out): no thread still
        # decodes from the source or writes to a sink when they are released
        writer = stack.enter_context(WriteBehind(functools.partial(write_frame, sinks)))
        reader = stack.enter_context(ReadAhead(source.frames()))
        started = time.perf_counter()
        frames, last, ended = 0, 0.0, None
        try:
            for index, seconds, frame in reader:
                if duration is not None and seconds >= duration:
                    ended = "duration"
                    break
                faces = stream.process(frame)
                history.add(seconds, faces)
                writer.add(index, seconds, frame, faces)
                frames, last = index + 1, seconds
                if progress_callback:
                    progress_callback(frames, source.frame_count)
        except KeyboardInterrupt:
            if not live:
                raise  # a file stopped midway is an interrupted job: its outputs are removed
            ended = "interrupted"
        except DamagedVideo as exc:
            if not keep_partial:
                raise
            ended = exc.reason  # what was read before the damage stands, as asked
        writer.finish()
        elapsed = time.perf_counter() - started
        for sink in sinks:
            sink.close()
        # a live source's frames come at the camera's pace, not at its nominal rate: its clock says how long
        span = last + 1 / source.fps if live else frames / source.fps
        if timeline_partial:
            plot_timeline(history, timeline_partial, span, 1 / source.fps)
    summary = summarise(source, history, frames, elapsed, outputs, span)
    if live:  # a recording has no natural end: say which one it had (a stream that fails midway keeps its outputs)
        summary["ended"] = ended or source.stopped
    elif ended and ended != "duration":  # a damaged file kept in part (--keep-partial)
        summary["ended"] = ended
    return summary


def is_folder(path: Path) -> bool:
    try:
        return path.is_dir()
    except OSError:  # a name too long to stat: not a folder, and the output's own checks say what it is
        return False


def write_frame(sinks: list, index: int, seconds: float, frame, faces) -> None:
    for sink in sinks:
        sink.add(index, seconds, frame, faces)


def check_outputs(input_path: Path | None, outputs: dict[str, Path], fourcc: str | None) -> None:
    """Refuse, before any work, outputs that would overwrite the input (a file; None for a live source) or each
    other, or have unusable extensions."""
    resolved = [path.resolve() for path in outputs.values()]
    for path, full in zip(outputs.values(), resolved):
        if input_path is not None and full == input_path.resolve():
            raise MediaError(f"{path}: an output may not overwrite the input video")
        if resolved.count(full) > 1:
            raise MediaError(f"{path}: the same file is given for two outputs")
    if "video" in outputs and not is_utf8_name(outputs["video"].resolve().parent):
        # OpenCV's VideoWriter crashes (segfault) on such a path; the file's own name is made safe later
        raise MediaError(f"{printable(outputs['video'])}: its folder's name is not valid UTF-8; choose another folder")
    if "video" in outputs and not fourcc:
        video_fourcc(outputs["video"])
    if "timeline" in outputs and outputs["timeline"].suffix.lower() not in TIMELINE_FORMATS:
        raise MediaError(f"{outputs['timeline']}: the timeline chart must be one of {', '.join(TIMELINE_FORMATS)}")


def open_outputs(stack: ExitStack, source: VideoSource | LiveSource, outputs: dict[str, Path], fourcc: str | None):
    """(per-frame writers, the timeline's partial path or None), all created before the first frame
    so that unwritable paths fail before any work. `stack` commits or removes them."""
    sinks, timeline_partial = [], None
    if "video" in outputs:
        partial = stack.enter_context(atomic_output(outputs["video"]))
        sinks.append(AnnotatedVideoWriter(partial, outputs["video"], source.fps, source.size, fourcc,
                                          paced=isinstance(source, LiveSource)))
    if "csv" in outputs:
        partial = stack.enter_context(atomic_output(outputs["csv"]))
        sinks.append(CsvWriter(partial, outputs["csv"]))
    for sink in sinks:
        stack.callback(sink.release)  # on failure too, before the partial files are removed
    if "timeline" in outputs:
        timeline_partial = stack.enter_context(atomic_output(outputs["timeline"]))
        touch(timeline_partial, outputs["timeline"])
    return sinks, timeline_partial


def touch(partial: Path, target: Path) -> None:
    try:
        partial.touch()
    except OSError as exc:
        raise MediaError(f"{target}: cannot be written ({exc.strerror})") from None


def summarise(source: VideoSource | LiveSource, history: FaceHistory, frames: int, elapsed: float, outputs: dict,
              seconds: float) -> dict:
    """The run in numbers: frames, seconds, processing fps, and per face id its expression shares."""
    return {
        "input": str(source.path), "frames": frames, "seconds": round(seconds, 3),
        "video_fps": round(source.fps, 3), "width": source.width, "height": source.height,
        "fps": round(frames / max(elapsed, 1e-9), 1), "faces_seen": len(history.ids),
        "faces": {str(face_id): history.face_summary(face_id) for face_id in history.ids},
        "outputs": {kind: str(path) for kind, path in outputs.items()},
    }


def default_timeline(out: str | None, csv_path: str | None) -> Path | None:
    """The timeline chart goes beside the CSV (or else the video): NAME_timeline.png. Never beside a
    device or FIFO: `--csv /dev/null` must not create /dev/null_timeline.png."""
    base = next((path for path in (csv_path, out) if path and not is_special_file(path)), None)
    return Path(base).with_name(Path(base).stem + "_timeline.png") if base else None


def run_video(input_path, config: Config, out: str | None = None, csv_path: str | None = None,
              timeline: str | None = None, as_json: bool = False, progress: bool = True,
              duration: float | None = None, keep_partial: bool = False) -> int:
    """`ferkit video`: process one video file, or record a camera or stream; print the summary (text, or JSON
    with as_json)."""
    live = live_input(input_path)
    if live is None:
        require_file(input_path)  # before loading the model
        source = input_path
    else:  # a camera that cannot be used is said before the model loads, in one line; opened once, and kept
        source = LiveSource(live)
    bar = None
    try:
        pipeline = Pipeline.from_config(config)
        if live is not None:
            until = f"for {duration:g} s (or Ctrl-C)" if duration else "until Ctrl-C"
            print(f"recording {live} {until}", file=sys.stderr)
        bar = ProgressBar(sys.stderr) if progress and sys.stderr.isatty() else None
        summary = process_video(pipeline, source, out, csv_path, timeline or default_timeline(out, csv_path), bar,
                                duration=duration, keep_partial=keep_partial)
    finally:
        if bar:
            bar.finish()
        if live is not None:
            source.close()  # released already unless the model or an output failed first
    if keep_partial and "ended" in summary and live is None:  # said on stderr too: stdout may be parsed
        print(f"ferkit video: warning: {input_path}: {summary['ended']}; kept the {summary['frames']} frames "
              "before it", file=sys.stderr)
    print(json.dumps(printable_json(summary)) if as_json else format_summary(summary))
    return 0


def format_summary(summary: dict) -> str:
    lines = [f"{summary['input']}: {summary['frames']} frames, {summary['seconds']:.1f} s, "
             f"{summary['faces_seen']} face id(s), processed at {summary['fps']:.0f} fps"]
    for face_id, face in summary["faces"].items():
        top = sorted(face["shares"].items(), key=lambda item: -item[1])[:3]
        lines.append(f"  face #{face_id}: {face['frames']} frames ({face['first_s']:.1f}-{face['last_s']:.1f} s), "
                     + ", ".join(f"{name} {share:.0%}" for name, share in top))
    lines += [f"  {kind}: {path}" for kind, path in summary["outputs"].items()]
    if "ended" in summary:
        lines.append(f"  ended: {summary['ended']}")
    return "\n".join(lines)
