"""The `ferkit` command: one entry point, one subcommand per job.

Each subcommand turns its flags into the one Config object and calls the package; errors a
user can fix print one line and exit 2, never a traceback.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import shlex
import signal
import sys
import threading
from pathlib import Path

from . import __version__
from .config import (DETECTOR_ALLOWED, DETECTOR_NEEDS, DISTILL_MODES, MIN_JOB_TTL_S, MIN_TOKEN_CHARS,
                     PIPELINE_ALLOWED, TRAIN_VIEWS, Allowed, Config, DetectorConfig, PipelineConfig, ServeConfig, TrainConfig,
                     token_problem)
from .errors import FerkitError
from .files import printable_json


def add_model_flags(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--model", default="default",
                        help="bundled model name (see `ferkit models`; default: the one marked default there), "
                             "run folder, or .onnx/.json file")
    parser.add_argument("--tta", action="store_true", help="test-time augmentation (mirror and zoom views)")
    parser.add_argument("--uniform-prior", action="store_true",
                        help="score as if the seven expressions were equally common (more disgust and fear found "
                             "on posed photos, fewer faces right on FER2013-like material; docs/real-faces.md)")


def add_detector_flags(parser: argparse.ArgumentParser) -> None:
    d = DetectorConfig()
    # the flags after --detector default to None (then DetectorConfig's): one given for the other detector is seen
    parser.add_argument("--detector", choices=["yunet", "haar"], default=d.name,
                        help="face detector: yunet (bundled, the default) or haar (OpenCV's cascade)")
    parser.add_argument("--detector-model", help="yunet: another YuNet .onnx file (default: the bundled one)")
    parser.add_argument("--min-face", type=flag_type(DETECTOR_ALLOWED["min_face"]),
                        help=f"smallest face side in pixels (default {d.min_face})")
    parser.add_argument("--detect-threshold", type=flag_type(DETECTOR_ALLOWED["detect_threshold"]),
                        help=f"yunet: minimum confidence, 0..1 (default {d.detect_threshold})")
    parser.add_argument("--min-neighbors", type=flag_type(DETECTOR_ALLOWED["min_neighbors"]),
                        help=f"haar: overlapping hits needed to keep a face (default {d.min_neighbors})")


# flag -> (the flag it needs, the value that flag must have): given otherwise, the flag would be ignored
NEEDS_FLAG = {**{name: ("detector", needs) for name, needs in DETECTOR_NEEDS.items()}, "address": ("engine", "ray"),
              "ferplus_mode": ("labels", "ferplus")}


def add_keep_partial_flag(p: argparse.ArgumentParser) -> None:
    p.add_argument("--keep-partial", action="store_true",
                   help="a video file damaged or cut short midway keeps the outputs of the frames read before the "
                        "damage (a warning says where it stopped), instead of failing with none")


def inapplicable_flag(args: argparse.Namespace) -> str | None:
    """Why a flag the user gave does nothing with the others given, or None."""
    for dest, (needs, value) in NEEDS_FLAG.items():
        if getattr(args, dest, None) is not None and getattr(args, needs) != value:
            return (f"argument --{dest.replace('_', '-')}: needs --{needs} {value} "
                    f"(--{needs} {getattr(args, needs)} would ignore it)")
    return None


def config_from_args(args: argparse.Namespace) -> Config:
    detector = DetectorConfig()
    if hasattr(args, "detector"):
        given = {name: getattr(args, name) for name in ("detector_model", "min_face", "detect_threshold",
                                                       "min_neighbors") if getattr(args, name) is not None}
        detector = DetectorConfig(name=args.detector, **given)
    pipeline = PipelineConfig(tta=getattr(args, "tta", False), uniform_prior=getattr(args, "uniform_prior", False))
    if getattr(args, "detect_every", None):
        pipeline.detect_every = args.detect_every
    if getattr(args, "smoothing", None) is not None:
        pipeline.smoothing = args.smoothing
    serve = ServeConfig()
    if args.command == "serve":  # serve's flags are named as ServeConfig's fields
        serve = ServeConfig(**{k: v for k, v in vars(args).items() if k in ServeConfig.__dataclass_fields__})
        if serve.token is None and "FERKIT_TOKEN" in os.environ:  # --token was checked by argparse
            serve.token = os.environ["FERKIT_TOKEN"]
            problem = token_problem(serve.token, "unset FERKIT_TOKEN to have one generated")
            if problem:
                raise FerkitError(f"FERKIT_TOKEN: {problem}")
    return Config(model=getattr(args, "model", "default"), detector=detector, pipeline=pipeline, serve=serve)


def int_range(low: int, high: int | None = None):
    """argparse type: an integer from low to high; anything else is argparse's one-line error, exit 2."""
    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{text!r} is not a whole number") from None
        if value < low or (high is not None and value > high):
            raise argparse.ArgumentTypeError(f"{value} is out of range ({low}..{high if high is not None else ''})")
        return value
    return parse


SEED = int_range(0, 2**32 - 1)  # NumPy's seeds


def token_arg(text: str) -> str:
    """argparse type of --token: long enough to guard a server reachable from other machines."""
    problem = token_problem(text, "leave --token out to have one generated")
    if problem:
        raise argparse.ArgumentTypeError(problem)
    return text


def flag_type(rule: Allowed):
    """argparse type of a flag that sets a config field: the field's own range (config.py), stated once."""
    if rule.kind is int:
        return int_range(int(rule.low), None if rule.high is None else int(rule.high))
    return float_range(rule.low, rule.high, rule.low_open, rule.high_open)


def float_range(low: float, high: float | None = None, low_open: bool = False, high_open: bool = False):
    """argparse type: a finite number in an interval, e.g. float_range(0, 1, low_open=True) for (0, 1]."""
    # no upper bound reads (low, inf): infinity itself is refused too, as not finite
    upper = "inf)" if high is None else f"{high:g}{')' if high_open else ']'}"
    interval = f"{'(' if low_open else '['}{low:g}, {upper}"

    def parse(text: str) -> float:
        try:
            value = float(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{text!r} is not a number") from None
        above = value > low if low_open else value >= low
        below = high is None or (value < high if high_open else value <= high)
        if not (math.isfinite(value) and above and below):
            raise argparse.ArgumentTypeError(f"{text} is outside {interval}")
        return value
    return parse


class HelpFormatter(argparse.HelpFormatter):
    """--help states each flag's default, unless its help already says it or there is none to state."""

    def _get_help_string(self, action):
        text = action.help or ""
        if "default" in text or not action.option_strings or action.default in (None, False, argparse.SUPPRESS):
            return text
        return f"{text} (default: %(default)s)"


class Parser(argparse.ArgumentParser):
    """argparse with the one-line error ferkit's own errors have (no usage block), exit 2; --help with defaults."""

    def __init__(self, *args, **kwargs):
        kwargs.setdefault("formatter_class", HelpFormatter)
        super().__init__(*args, **kwargs)

    def error(self, message: str):
        self.exit(2, f"{self.prog}: error: {message} (see {self.prog} --help)\n")


def add_stream_flags(parser: argparse.ArgumentParser) -> None:
    p = PipelineConfig()
    parser.add_argument("--detect-every", type=flag_type(PIPELINE_ALLOWED["detect_every"]),
                        help=f"run the detector every k-th frame (default {p.detect_every})")
    parser.add_argument("--smoothing", type=flag_type(PIPELINE_ALLOWED["smoothing"]),
                        help=f"weight of the newest scores, in (0, 1]; 1 = no smoothing (default {p.smoothing})")


def build_parser() -> argparse.ArgumentParser:
    parser = Parser(prog="ferkit", description="Facial expression recognition: train, evaluate, "
                                     "and apply to images, videos and live video.")
    parser.add_argument("--version", action="version", version=f"ferkit {__version__}")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    parser.commands = sub.choices  # each subcommand's parser, for errors found after parsing

    p = sub.add_parser("explore", help="sample faces per class and the class balance, as plots")
    p.add_argument("--data", required=True, help="FER2013 CSV (.csv or .csv.gz) or image folder root")
    p.add_argument("--out", default="explore", help="folder for the PNG files")
    p.add_argument("--per-class", type=int_range(1), default=8, help="sample faces per class (at most 50)")

    t = TrainConfig()
    p = sub.add_parser("train", help="train a model; writes a run folder")
    p.add_argument("--data", required=True, help="FER2013 CSV (.csv or .csv.gz) or image folder root")
    p.add_argument("--model", default=t.model, help="architecture (see `ferkit models --architectures`)")
    p.add_argument("--epochs", type=int_range(1), default=t.epochs, help="passes over the training split")
    p.add_argument("--batch-size", type=int_range(1), default=t.batch_size, help="faces per step")
    p.add_argument("--labels", choices=["fer2013", "ferplus"], default=t.labels,
                   help="FER2013's labels, or FER+'s crowd votes")
    p.add_argument("--ferplus-mode", choices=["majority", "soft"],
                   help=f"with --labels ferplus: majority vote, or the vote distribution (default {t.ferplus_mode})")
    p.add_argument("--ferplus-votes", help="fer2013new.csv (default: ../ferplus/ beside the CSV's folder)")
    p.add_argument("--ferplus-weight", type=float_range(0, 0.5, high_open=True), default=t.ferplus_weight,
                   help="with FER2013 labels: share of each target that follows the face's FER+ vote "
                        "distribution (auxiliary target, e.g. 0.3; default 0)")
    p.add_argument("--train-split", help="training split name (default Training, or train)")
    p.add_argument("--val-split",
                   help="split scored at the end and reported, never the training split (default PublicTest, "
                        "or test/val/validation)")
    p.add_argument("--holdout", type=float, default=t.holdout,
                   help="share of the training split that picks the best epoch (0: pick on --val-split)")
    p.add_argument("--holdout-seed", type=SEED, default=t.holdout_seed,
                   help="seed of the holdout draw (fixed, so ensemble members share one holdout)")
    p.add_argument("--out", default=t.out, help="parent folder of run folders")
    p.add_argument("--name", help="run folder name (default MODEL-LABELS-sSEED)")
    p.add_argument("--resume", action="store_true", help="continue an interrupted run")
    p.add_argument("--seed", type=SEED, default=t.seed, help="seed of weights, batches and augmentation")
    p.add_argument("--precision", choices=["mixed_bfloat16", "float32"], default=t.precision,
                   help="mixed_bfloat16 trained 1.4-1.7x faster on the CPUs measured")
    p.add_argument("--optimizer", choices=["adam", "adamw", "sgd"],
                   help="optimizer (sgd: Nesterov momentum 0.9); default: the model's own")
    p.add_argument("--learning-rate", type=float_range(0, low_open=True), help="peak learning rate (default: the model's own)")
    p.add_argument("--schedule", choices=["plateau", "cosine"],
                   help="learning rate: halve on a validation plateau, or cosine decay (default: the model's own)")
    p.add_argument("--class-weights", action="store_true", help="weight classes against the imbalance")
    p.add_argument("--augment", choices=["none", "standard", "strong", "real"], default=t.augment,
                   help="strong: + random erasing; real: strong + lighting, low-resolution and JPEG changes")
    p.add_argument("--mixup", type=float_range(0, 10), default=t.mixup, metavar="ALPHA",
                   help="blend faces and their targets in pairs, shares from Beta(ALPHA, ALPHA), e.g. 0.2 (0: off)")
    p.add_argument("--views", type=int, choices=TRAIN_VIEWS, default=t.views,
                   help="views the loss sees, averaged: 1, or 2 (+ mirrored), the graph `ensemble --views 2` ships")
    p.add_argument("--early-stopping", type=int_range(0), default=t.early_stopping,
                   help="patience in epochs, 0: never stop early (default: 10 with the plateau schedule, "
                        "never with cosine)")
    p.add_argument("--limit", type=int_range(1), help="use only the first N rows of each split (smoke tests; an "
                   "image tree's rows interleave its classes, so every class is kept)")
    p.add_argument("--teacher", help="distil from this model (bundled name or run folder)")
    p.add_argument("--distill-weight", type=float_range(0, 1), default=t.distill_weight,
                   help="share of each target that is the teacher's probabilities")
    p.add_argument("--distill-mode", choices=DISTILL_MODES, default=t.distill_mode,
                   help="fixed: the teacher scores the clean faces once; consistent: every augmented batch")
    p.add_argument("--init", help="start from this model's weights (bundled name or run folder, same architecture)")
    p.add_argument("--ema", type=float_range(0, 1, high_open=True), default=t.ema, metavar="MOMENTUM",
                   help="score and keep a moving average of the weights, e.g. 0.999 (0: off)")
    p.add_argument("--jit-compile", action="store_true", help="compile the training step (torch.compile): for GPU runs, measured first; slow to compile on a CPU")
    p.add_argument("--sam", type=float_range(0, 1), default=t.sam, metavar="RHO",
                   help="sharpness-aware minimisation of radius RHO, e.g. 0.05 (twice the cost of a step; 0: off)")
    p.add_argument("--no-publictest", action="store_true",
                   help="do not score the reported split (--val-split, PublicTest) at the end: decide on the "
                        "holdout first, then `ferkit evaluate --model RUN` (needs --holdout > 0)")

    p = sub.add_parser("evaluate", help="accuracy, per-class scores and confusion matrix on a split")
    p.add_argument("--data", required=True, help="FER2013 CSV (.csv or .csv.gz) or image folder root")
    p.add_argument("--split", help="split (Usage value) to score (default: PublicTest, or test/val)")
    p.add_argument("--labels", choices=["fer2013", "ferplus"],
                   help="the labels scored against (default: those the model was trained on, else fer2013)")
    p.add_argument("--ferplus-votes", help="fer2013new.csv, for --labels ferplus (default: ../ferplus/ beside the "
                   "CSV's folder)")
    p.add_argument("--out", help="folder for confusion.png and report.txt")
    p.add_argument("--json", action="store_true", help="print one JSON object on stdout")
    add_model_flags(p)

    p = sub.add_parser("calibrate", help="fit a model's temperature on the Training holdout (calibrated scores)")
    p.add_argument("--data", required=True,
                   help="FER2013 CSV (.csv or .csv.gz) or an image tree, as the model was trained on")
    # required: a default would rewrite the bundled default model's calibration.json without being asked
    p.add_argument("--model", required=True,
                   help="bundled model name, model folder, or its model.onnx/model.json "
                        "(calibration.json goes in the folder)")
    p.add_argument("--holdout", type=float,
                   help="share of the training split held out (default: the run's own, from its train_config.json; "
                        "else 0.1)")
    p.add_argument("--holdout-seed", type=SEED, help="seed of the holdout draw (default: the run's own; else 42)")
    p.add_argument("--labels", choices=["fer2013", "ferplus"],
                   help="the label set to fit against (default: the one the model was trained on, else fer2013); "
                        "another than the model's recorded one is refused")
    p.add_argument("--json", action="store_true", help="print one JSON object on stdout")

    p = sub.add_parser("ensemble", help="average trained models (and test-time views) into one ONNX model folder")
    p.add_argument("members", nargs="+", metavar="MEMBER", help="bundled model names, run folders or .onnx files")
    p.add_argument("--out", required=True, help="model folder to write (e.g. src/ferkit/assets/models/accurate)")
    p.add_argument("--data", required=True, help="FER2013 CSV: Training holdout for calibration, PublicTest scored")
    p.add_argument("--weights", type=float, nargs="+", help="one weight per member (default: equal)")
    p.add_argument("--views", type=int, choices=(1, 2, 4), nargs="+", metavar="{1,2,4}",
                   help="test-time views inside the graph: 1 (none), 2 (+ mirrored), 4 (+ zoomed, zoomed mirrored; "
                        "the default); one count for every member, or one per member in their order")
    p.add_argument("--no-tta", action="store_true", help="no test-time views inside the graph (same as --views 1)")
    p.add_argument("--int8", action="store_true",
                   help="quantize the graph to int8 (ranges fitted on Training faces outside the holdout)")

    p = sub.add_parser("models", help="list bundled models (or architectures)")
    p.add_argument("--architectures", action="store_true", help="list trainable architectures instead")
    p.add_argument("--json", action="store_true", help="print one JSON object on stdout")

    p = sub.add_parser("predict", help="expressions of every face in images")
    p.add_argument("images", nargs="+", metavar="IMAGE")
    p.add_argument("--json", action="store_true", help="print one JSON object on stdout")
    p.add_argument("--out", help="folder for annotated copies of the images")
    add_model_flags(p)
    add_detector_flags(p)

    p = sub.add_parser("video", help="annotate a saved video or record a camera: per-frame CSV, timeline, summary")
    p.add_argument("input", metavar="INPUT", help="a video file, or a camera index (0), device (/dev/video0) or stream "
                   "URL, recorded until --duration or Ctrl-C")
    p.add_argument("--duration", type=float_range(0, low_open=True), metavar="SECONDS",
                   help="stop after this many seconds of video (default: the whole file; a camera until Ctrl-C)")
    p.add_argument("--out", help="annotated video (.mp4)")
    p.add_argument("--csv", help="per-frame CSV")
    p.add_argument("--timeline", help="timeline chart PNG (default: beside --csv or --out)")
    p.add_argument("--json", action="store_true", help="print a JSON summary on stdout")
    add_keep_partial_flag(p)
    add_stream_flags(p)
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    add_model_flags(p)
    add_detector_flags(p)

    p = sub.add_parser("batch", help="many videos and photos: per-video outputs, a photo dataset, a run summary")
    p.add_argument("inputs", nargs="+", metavar="INPUT",
                   help="video or photo files, folders (recursive), glob patterns, or .txt lists of paths/URLs")
    p.add_argument("--out", required=True, help="output folder (per-video CSV/JSON/timeline, photos/, summary)")
    p.add_argument("--engine", choices=["local", "ray"], default="local",
                   help="local: a process pool here; ray: Ray tasks and actors (pip install \"ferkit[ray]\")")
    p.add_argument("--address", help="with --engine ray: Ray cluster to join (auto, HOST:PORT, "
                   "ray://HOST:10001); default: a private local Ray")
    p.add_argument("--workers", type=int_range(1), help="worker processes (local) or photo actors (ray); default one per core")
    p.add_argument("--annotate", action="store_true", help="also write an annotated .mp4 per video")
    p.add_argument("--force", action="store_true", help="redo inputs whose outputs are already complete")
    add_keep_partial_flag(p)
    add_stream_flags(p)
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    add_model_flags(p)
    add_detector_flags(p)

    s = ServeConfig()
    p = sub.add_parser("serve", help="the web app: live video, browser camera, uploads, JSON API")
    p.add_argument("--host", default=s.host, help="address to bind (default 127.0.0.1: this machine only)")
    p.add_argument("--port", type=int_range(0, 65535), default=s.port, help="0: any free port")
    p.add_argument("--source", help="server-side video for /video_feed: camera index, video file or URL")
    p.add_argument("--threads", type=int_range(1, 1024), default=s.threads,
                   help="worker threads (each /video_feed viewer holds one)")
    p.add_argument("--max-upload-mb", type=int_range(1, 4096), default=s.max_upload_mb,
                   help="larger uploads are refused (413)")
    p.add_argument("--job-ttl", type=int_range(MIN_JOB_TTL_S), default=s.job_ttl,
                   help=f"seconds a video job's results are kept after it ends (at least {MIN_JOB_TTL_S})")
    p.add_argument("--jobs-dir", help="folder for video jobs (default: a new temporary folder)")
    p.add_argument("--job-workers", type=int_range(1, 64), default=s.job_workers, help="video jobs run at once")
    p.add_argument("--job-queue", type=int_range(0, 10_000), default=s.job_queue,
                   help="video jobs waiting beyond those (more get 429)")
    p.add_argument("--job-max-frames", type=int_range(1), default=s.job_max_frames, help="longest video a job takes")
    p.add_argument("--jobs-max-mb", type=int_range(1), default=s.jobs_max_mb, help="disk the video jobs may use")
    p.add_argument("--max-inflight", type=int_range(1, 1024), default=s.max_inflight,
                   help="images analysed at once over the API and browser cameras (more get 429)")
    p.add_argument("--token", type=token_arg,
                   help=f"access token off loopback, at least {MIN_TOKEN_CHARS} characters (default: $FERKIT_TOKEN, "
                        "else one generated and printed)")
    p.add_argument("--no-auth", action="store_true",
                   help="no token even when reachable from other machines (anyone there gets full access)")
    add_model_flags(p)
    add_detector_flags(p)
    return parser


def train_config_from_args(args: argparse.Namespace) -> TrainConfig:
    fields = {k: v for k, v in vars(args).items() if k in TrainConfig.__dataclass_fields__}
    if fields.get("ferplus_mode") is None:  # not given (it needs --labels ferplus): TrainConfig's default
        fields.pop("ferplus_mode", None)
    if fields.get("ferplus_votes") and fields.get("labels") != "ferplus" and not fields.get("ferplus_weight"):
        raise FerkitError("argument --ferplus-votes: needs --labels ferplus or --ferplus-weight (without them no "
                          "vote is read)")
    return TrainConfig(**fields)


def cmd_train(args, command: str) -> int:
    from .training.fit import train

    metrics = train(train_config_from_args(args), command=command)
    return 0 if metrics else 1


def cmd_evaluate(args, command: str) -> int:
    from .evaluation.evaluate import evaluate

    report = evaluate(args.data, model=args.model, split=args.split, labels=args.labels,
                      ferplus_votes=args.ferplus_votes, tta=args.tta, out=args.out, uniform_prior=args.uniform_prior)
    if args.json:
        print(json.dumps(printable_json(report)))
    else:
        from .evaluation.evaluate import model_heading
        from .evaluation.metrics import format_report

        print(model_heading(report))
        print(format_report(report))
    return 0


def model_summary(card: dict, network: str | None = None) -> str:
    """One line for `ferkit models`: what the graph holds, and its card's accuracy on the labels it was scored on.
    `network`: the architecture of a one-network graph (as the README names `fast`: `compact`), when known."""
    kind = card.get("model", "?")
    if kind == "ensemble":  # what `ferkit ensemble` built: say how many networks and views it runs
        n, views = len(card.get("members", [])), card.get("views_in_graph", 1)
        nets = network if n == 1 and network else f"{n} network{'s' * (n != 1)}"
        if isinstance(views, list):  # each member its own count
            views = f"{'+'.join(map(str, views))} views"
        else:
            views = f"{views} view{'s' * (views != 1)}"
        kind = f"{nets} x {views}{', int8' * bool(card.get('int8'))}"
    accuracy = card.get("accuracy")
    if not accuracy:
        # a `--no-publictest` run: its holdout figure is all there is until `ferkit evaluate` scores the split
        pick = card.get("pick_accuracy")
        if pick is None:
            return f"{kind}, no metrics"
        return f"{kind}, {card.get('pick_split', 'holdout')} accuracy {pick:.2%} ({card.get('val_split', '?')} not scored)"
    # a FER+ card scores the argmax of the votes, not the FER+ majority protocol its model card also reports
    labels = "FER2013 labels" if card.get("train", {}).get("labels", "fer2013") == "fer2013" else \
        "FER+ labels: the votes' argmax, not the majority-vote protocol"
    return f"{kind}, {card.get('val_split', '?')} accuracy {accuracy:.2%} ({labels})"


def network_of(folder: Path) -> str | None:
    """The architecture in a model folder's train_config.json (a one-network graph keeps its network's, as `fast`)."""
    try:
        return json.loads((folder / "train_config.json").read_text()).get("model")
    except (OSError, ValueError, AttributeError):
        return None


def cmd_models(args, command: str) -> int:
    if args.architectures:
        from .training.backend import setup_keras

        setup_keras()
        from .models import get_spec, list_models

        rows = {name: get_spec(name).description for name in list_models()}
    else:
        from .config import default_models_dir
        from .errors import ModelError
        from .inference.classifier import FacialExpressionModel, list_bundled_models, resolve_model

        if not list_bundled_models():
            raise ModelError(f"no models found in {default_models_dir()} "
                             "(FERKIT_MODELS_DIR overrides the bundled folder; reinstall ferkit to restore it)")
        try:
            default = resolve_model("default").name
        except ModelError:  # a folder of runs (FERKIT_MODELS_DIR) is listed without a default
            default = None
        rows = {}
        for name in list_bundled_models():
            model = FacialExpressionModel.load(name)
            default_mark = " (default)" if name == default else ""
            rows[name] = model_summary(model.card, network_of(model.folder)) + default_mark
    if args.json:
        print(json.dumps(printable_json(rows)))
    else:
        for name, text in rows.items():
            print(f"{name:<12} {text}")
    return 0


def cmd_explore(args, command: str) -> int:
    from .evaluation.explore import explore

    explore(args.data, args.out, per_class=args.per_class)
    return 0


def cmd_predict(args, command: str) -> int:
    from .inference.images import run_predict

    return run_predict(args.images, config_from_args(args), as_json=args.json, out_dir=args.out)


def cmd_video(args, command: str) -> int:
    from .video.process import run_video

    return run_video(args.input, config_from_args(args), out=args.out, csv_path=args.csv,
                     timeline=args.timeline, as_json=args.json, progress=not args.no_progress, duration=args.duration,
                     keep_partial=args.keep_partial)


def cmd_batch(args, command: str) -> int:
    from .batch import run_batch

    return run_batch(args.inputs, args.out, config_from_args(args), engine=args.engine, address=args.address,
                     workers=args.workers, annotate=args.annotate, force=args.force, progress=not args.no_progress,
                     keep_partial=args.keep_partial)


def cmd_serve(args, command: str) -> int:
    from .web.server import serve

    return serve(config_from_args(args))


def cmd_calibrate(args, command: str) -> int:
    from .evaluation.calibration import calibrate

    # calibrate writes the card too: it alone knows the model's folder (a model.onnx path names its file)
    result = calibrate(args.model, args.data, args.holdout, args.holdout_seed, labels=args.labels, card=True,
                       refuse_poor_fit=True)
    if args.json:
        print(json.dumps(printable_json(result)))
    else:
        print(f"temperature {result['temperature']:.3f} (fitted on the {result['fit_on']}); expected calibration "
              f"error on {result['reported_on']}: {result['ece_before']:.2%} before, {result['ece_after']:.2%} after")
    return 0


def cmd_ensemble(args, command: str) -> int:
    from .training.ensemble import make_ensemble

    given = " ".join(map(str, args.views or []))
    if args.no_tta and set(args.views or [1]) != {1}:
        raise FerkitError(f"--no-tta contradicts --views {given} (--no-tta means --views 1)")
    # no --views: four views, the documented default
    views = 1 if args.no_tta else 4 if not args.views else args.views[0] if len(args.views) == 1 else args.views
    if isinstance(views, list) and len(views) != len(args.members):
        raise FerkitError(f"--views {given}: {len(views)} counts for {len(args.members)} members (give one count "
                          "for all, or one per member)")
    metrics = make_ensemble(args.members, args.out, args.data, args.weights, views=views, command=command,
                            int8=args.int8)
    print(f"{args.out}: {len(args.members)} members, PublicTest accuracy {metrics['accuracy']:.2%}, "
          f"temperature {metrics['calibration']['temperature']:.3f}")
    from .evaluation.calibration import edge_problem

    # the model is built either way (calibrate refuses such a fit; here it is the ensemble's only one): say so
    problem = edge_problem(metrics["calibration"]["temperature"], metrics["calibration"]["fit_faces"])
    if problem:
        print(f"ferkit ensemble: warning: {problem}; its scores may be badly calibrated", file=sys.stderr)
    return 0


class Terminated(KeyboardInterrupt):
    """SIGTERM (kill, timeout, a container stopping) unwinds as Ctrl-C does: partial outputs are removed, and a
    camera recording ends with its outputs kept."""


def on_sigterm(signum, frame):
    raise Terminated


COMMANDS = {"train": cmd_train, "calibrate": cmd_calibrate, "ensemble": cmd_ensemble, "evaluate": cmd_evaluate,
            "models": cmd_models, "explore": cmd_explore, "predict": cmd_predict, "video": cmd_video,
            "serve": cmd_serve, "batch": cmd_batch}


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    # Process-wide settings belong to the entry point, not to imports. FFmpeg's own log lines ("moov
    # atom not found", h264 decode errors) would surround our one-line errors: silenced unless asked for.
    os.environ.setdefault("OPENCV_FFMPEG_LOGLEVEL", "-8")
    os.environ.setdefault("OPENCV_LOG_LEVEL", "SILENT")  # likewise imdecode's "[ERROR:0@0.5] ... loadsave.cpp" lines
    parser = build_parser()
    args = parser.parse_args(argv)
    problem = inapplicable_flag(args)
    if problem:  # argparse's one-line error and exit 2, from the subcommand's parser
        parser.commands[args.command].error(problem)
    command = "ferkit " + shlex.join(argv)
    previous = None
    if threading.current_thread() is threading.main_thread():  # signals reach the main thread only
        previous = signal.signal(signal.SIGTERM, on_sigterm)
    try:
        return COMMANDS[args.command](args, command)
    except FerkitError as exc:
        print(f"ferkit {args.command}: error: {exc}", file=sys.stderr)
        return 2
    except BrokenPipeError:  # the reader left (`| head`): stop quietly, as Unix tools do on SIGPIPE
        try:  # and let the interpreter's last flush of stdout fail silently too
            os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        except (OSError, ValueError, AttributeError):
            pass
        return 141  # 128 + SIGPIPE, as a shell reports a pipe's writer that was cut off
    except KeyboardInterrupt as exc:
        terminated = isinstance(exc, Terminated)
        print(f"ferkit {args.command}: {'terminated' if terminated else 'interrupted'}", file=sys.stderr)
        return 143 if terminated else 130  # 128 + the signal's number, as a shell reports it
    finally:
        if previous is not None:
            signal.signal(signal.SIGTERM, previous)


if __name__ == "__main__":
    sys.exit(main())
