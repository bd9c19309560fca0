"""The one configuration object: every tunable of ferkit lives here, grouped by concern.

Front ends build a `Config` (the CLI from its flags, the web app from `create_app(config)`)
and hand the relevant section down; modules never keep settings of their own.
"""

from __future__ import annotations

import math
import numbers
import os
from dataclasses import asdict, dataclass, field, fields, is_dataclass, replace
from pathlib import Path

# The source checkout's root (src/ferkit/config.py -> ../..). Only development helpers (tests,
# benchmarks, default_shared_dir) use it; nothing the installed package runs depends on it.
REPO_ROOT = Path(__file__).resolve().parents[2]


def package_data_dir(*parts: str) -> Path:
    """A folder or file of ferkit's package data (src/ferkit/assets/...), as a real path.

    Read with importlib.resources, so it works from an installed wheel as well as from a checkout.
    A zipped install (no real path) gets a one-time copy in a temporary folder.
    """
    from importlib.resources import files

    resource = files("ferkit.assets").joinpath(*parts)
    if isinstance(resource, Path):
        return resource
    return _extracted(resource, parts)


_EXTRACTED: dict[tuple, Path] = {}


def _extracted(resource, parts: tuple) -> Path:
    import tempfile

    if parts not in _EXTRACTED:
        root = Path(tempfile.mkdtemp(prefix="ferkit-assets-"))

        def copy(node, dest: Path):
            if node.is_dir():
                dest.mkdir(parents=True, exist_ok=True)
                for child in node.iterdir():
                    copy(child, dest / child.name)
            elif node.is_file():
                dest.write_bytes(node.read_bytes())

        copy(resource, root / resource.name)
        _EXTRACTED[parts] = root / resource.name
    return _EXTRACTED[parts]


def default_models_dir() -> Path:
    """Bundled models: $FERKIT_MODELS_DIR, else the package's assets/models/ (package data)."""
    override = os.environ.get("FERKIT_MODELS_DIR")
    return Path(override) if override else package_data_dir("models")


def default_shared_dir() -> Path:
    """The shared data folder beside the project (../shared), or $FERKIT_SHARED_DIR."""
    return Path(os.environ.get("FERKIT_SHARED_DIR", REPO_ROOT.parent / "shared"))


@dataclass(frozen=True)
class Allowed:
    """The values a numeric or boolean config field takes: `kind` int, float or bool; an interval
    for numbers (None: unbounded). The CLI's flags for these fields parse with the same (cli.flag_type)."""

    kind: type
    low: float | None = None
    high: float | None = None
    low_open: bool = False
    high_open: bool = False

    def describe(self) -> str:
        if self.kind is bool:
            return "True or False"
        if self.kind is int and self.high is None:
            return f"a whole number >= {self.low:g}"
        low = "(-inf" if self.low is None else f"{'(' if self.low_open else '['}{self.low:g}"
        high = "inf)" if self.high is None else f"{self.high:g}{')' if self.high_open else ']'}"
        return f"{'a whole number' if self.kind is int else 'a number'} in {low}, {high}"

    def problem(self, value) -> type[Exception] | None:
        """TypeError for a value of the wrong type, ValueError for one out of range, None when it fits."""
        if self.kind is bool:
            return None if isinstance(value, bool) else TypeError
        # bool is an int to Python, but True as a face count is a mistake; numpy numbers pass
        kind = numbers.Integral if self.kind is int else numbers.Real
        if isinstance(value, bool) or not isinstance(value, kind):
            return TypeError
        if not isinstance(value, numbers.Integral) and not math.isfinite(value):  # NaN, inf
            return ValueError
        if self.low is not None and (value <= self.low if self.low_open else value < self.low):
            return ValueError
        if self.high is not None and (value >= self.high if self.high_open else value > self.high):
            return ValueError
        return None


def check_fields(section, allowed: dict[str, Allowed]) -> None:
    """One-line TypeError or ValueError naming the first field of `section` outside its allowed values.
    Checked when the config is built: a bad value would otherwise give wrong results silently, or
    fail at the first frame with an OpenCV error that names no field."""
    for name, rule in allowed.items():
        value = getattr(section, name)
        error = rule.problem(value)
        if error:
            raise error(f"{type(section).__name__}.{name} must be {rule.describe()}, "
                        f"got {value!r} ({type(value).__name__})")


@dataclass
class DetectorConfig:
    """Face detector settings; a value outside DETECTOR_ALLOWED raises TypeError/ValueError when built."""

    name: str = "yunet"  # --detector: yunet (bundled, the default) | haar (OpenCV's cascade)
    detector_model: str | None = None  # another YuNet .onnx file; default: the bundled one
    # Pixels, in the original frame. 20 measured: on the dlib group photos (faces 37-45 px) YuNet
    # finds 97.7% of the faces at 20, 93.0% at 30 and 39.5% at 40 (docs/real-faces.md).
    min_face: int = 20
    scale_factor: float = 1.1  # Haar image-pyramid step
    min_neighbors: int = 5  # Haar: overlapping hits needed to keep a face
    # YuNet: minimum confidence (det_score). 0.7 measured: dlib recall 97.7% at 0.5-0.8, 81.4% at
    # 0.9; precision 95.5% at 0.5-0.6, 97.7% at 0.7-0.8.
    detect_threshold: float = 0.7
    nms_threshold: float = 0.3  # overlap (IoU) above which the weaker of two boxes is dropped
    max_side: int = 640  # detect on a copy downscaled to at most this width/height
    # YuNet's fine pass (still images; every fine_scan_every-th detection round of a video) runs at
    # the scale where a min_face face is 20 pixels, on a copy of at most this width/height
    fine_max_side: int = 1920

    def __post_init__(self):
        self.validate()

    def validate(self) -> None:
        """Raise TypeError/ValueError for a field outside DETECTOR_ALLOWED (also run at construction)."""
        check_fields(self, DETECTOR_ALLOWED)


# detector settings that only one detector reads: given with the other, they would be ignored, so the CLI and
# ferkit.analyse refuse them
DETECTOR_NEEDS = {"detector_model": "yunet", "detect_threshold": "yunet", "min_neighbors": "haar"}

# --min-face, --detect-threshold and --min-neighbors take these ranges (cli.flag_type); the others have no flag
DETECTOR_ALLOWED = {
    "min_face": Allowed(int, 1, 65_535),  # OpenCV takes sizes as C ints; no image is wider
    "scale_factor": Allowed(float, 1, low_open=True),  # OpenCV's cascade needs a pyramid step above 1
    "min_neighbors": Allowed(int, 0, 10_000),  # a C int too; far above any useful count
    "detect_threshold": Allowed(float, 0, 1),
    "nms_threshold": Allowed(float, 0, 1),  # an IoU
    "max_side": Allowed(int, 1),
    "fine_max_side": Allowed(int, 1),
}


@dataclass
class PipelineConfig:
    """Per-frame path settings; a value outside PIPELINE_ALLOWED raises TypeError/ValueError when built."""

    detect_every: int = 3  # run the detector on every k-th frame; track in between (video only)
    # While faces are tracked, detection rounds look only for faces of about their size (10x faster
    # with Haar); every k-th round searches down to the smallest size, for new small faces.
    full_scan_every: int = 8
    # YuNet: every fine_scan_every-th detection round adds a pass at the resolution where a
    # min_face face is found (new small faces in large frames), every 2 s at 24 fps; faces found
    # are kept between these passes by cheap region passes around them
    fine_scan_every: int = 16
    # Extra border around a detected box, as a fraction of its side. 0 is measured: on upscaled
    # FER2013 faces, Haar boxes cover the whole image and YuNet square crops match it too.
    crop_margin: float = 0.0
    # Faces with landmarks (YuNet) are rotated level and framed like FER2013's faces (its median
    # landmarks); crop_scale > 1 shows more around the face, crop_shift moves the face down by that
    # share of the crop. Measured (docs/real-faces.md): aligned beats the box crop on tw-faces by
    # 1.5-3 points; 1.0 and +0.04 are at the top on tw-faces and a FER2013 Training sample alike.
    align: bool = True
    crop_scale: float = 1.0
    crop_shift: float = 0.04
    max_faces: int = 16  # classify at most this many faces per frame (largest first)
    # Videos: at most this many faces are classified per frame, in turns (the others keep their
    # smoothed scores), so a crowd costs a few classifier runs per frame, not one per face
    classify_per_frame: int = 4
    smoothing: float = 0.5  # weight of the newest scores in each track's moving average (1 = none)
    track_iou: float = 0.3  # minimum overlap for a detection to continue a track
    track_max_missed: int = 8  # frames a track survives without a matching detection (always to the next round)
    track_min_hits: int = 2  # detection rounds before a track is shown (drops one-off false detections)
    tta: bool = False  # test-time augmentation (mirror) in the classifier
    # Scores as if the seven expressions were equally common (the model's probabilities divided by its training
    # split's class shares). Measured (docs/real-faces.md): tw-faces 52.9% -> 58.2% with `accurate` (disgust 15% ->
    # 53%), the FER2013 Training holdout 72.8% -> 70.6%: off by default, for posed or balanced material.
    uniform_prior: bool = False
    # ONNX Runtime threads per classifier call: batches are a few 48x48 faces, and one thread costs
    # half the CPU time of two on a 2-core machine; the other core reads and writes a video's frames
    # (video/overlap.py) or runs another stream. Measured in docs/real-faces.md.
    classifier_threads: int = 1  # 0: ONNX Runtime's own default (every core)

    def __post_init__(self):
        self.validate()

    def validate(self) -> None:
        """Raise TypeError/ValueError for a field outside PIPELINE_ALLOWED (also run at construction)."""
        check_fields(self, PIPELINE_ALLOWED)


# --detect-every and --smoothing take these ranges (cli.flag_type); the others have no flag
PIPELINE_ALLOWED = {
    "detect_every": Allowed(int, 1),
    "full_scan_every": Allowed(int, 1),
    "fine_scan_every": Allowed(int, 1),
    "crop_margin": Allowed(float, 0),
    "align": Allowed(bool),
    "crop_scale": Allowed(float, 0, low_open=True),
    "crop_shift": Allowed(float, -0.5, 0.5),  # beyond half the crop, the face leaves it
    "max_faces": Allowed(int, 1),
    "classify_per_frame": Allowed(int, 1),
    "smoothing": Allowed(float, 0, 1, low_open=True),  # 0 would never take in new scores
    "track_iou": Allowed(float, 0, 1, low_open=True),  # 0 would match boxes that do not overlap
    "track_max_missed": Allowed(int, 0),
    "track_min_hits": Allowed(int, 1),
    "tta": Allowed(bool),
    "uniform_prior": Allowed(bool),
    "classifier_threads": Allowed(int, 0),
}


# `serve --token` and $FERKIT_TOKEN: shorter tokens can be guessed (a generated one has 32 hex digits, 128 bits)
MIN_TOKEN_CHARS = 16
# `serve --job-ttl`: results deleted seconds after a job ends are gone before a user can fetch them
MIN_JOB_TTL_S = 60


def token_problem(token: str, unset: str) -> str | None:
    """Why `token` cannot guard a server, or None; `unset` says how to get a generated one instead."""
    if len(token) >= MIN_TOKEN_CHARS:
        return None
    if not token:
        return f"an empty token is refused; give one of at least {MIN_TOKEN_CHARS} characters, or {unset}"
    return (f"a token of {len(token)} characters is too short to guard the server; give at least "
            f"{MIN_TOKEN_CHARS}, or {unset}")


@dataclass
class ServeConfig:
    host: str = "127.0.0.1"
    port: int = 5000
    source: str | None = None  # camera index, video file (looped) or stream URL for /video_feed
    threads: int = 8  # WSGI worker threads
    max_upload_mb: int = 64
    job_ttl: int = 3600  # seconds: video-upload jobs and their files are deleted after this (CLI: >= 60)
    jpeg_quality: int = 80
    stream_max_fps: float = 30.0
    stream_idle_s: float = 10.0  # the /video_feed capture stops after this long without viewers
    jobs_dir: str | None = None  # video-upload jobs live here; default a fresh temporary folder
    job_workers: int = 1  # videos processed at once (each keeps a CPU core busy)
    camera_sessions: int = 32  # browser tabs with their own tracker at once (oldest dropped first)
    camera_session_ttl_s: float = 120.0  # a tab's tracker is forgotten after this long without frames
    token: str | None = None  # needed off loopback; None there: one is generated at start (CLI: >= 16 chars)
    no_auth: bool = False  # serve without a token even off loopback
    job_queue: int = 4  # video jobs waiting beyond the running ones; more are refused (429)
    job_max_frames: int = 36_000  # a longer video is refused, or fails when it passes this
    jobs_max_mb: int = 2048  # disk the jobs folder may use (uploads and results)
    max_inflight: int = 4  # images (/api/predict, /api/annotate, /api/frame) analysed at once; more: 429


DISTILL_MODES = ("fixed", "consistent")  # how a --teacher makes the targets (TrainConfig.distill_mode)
TRAIN_VIEWS = (1, 2)  # views the training loss averages (TrainConfig.views): as is, + mirrored


@dataclass
class TrainConfig:
    data: str = ""
    model: str = "compact"
    epochs: int = 30
    batch_size: int = 64
    labels: str = "fer2013"  # fer2013 | ferplus
    ferplus_mode: str = "majority"  # majority | soft (vote distribution)
    ferplus_votes: str | None = None
    # share of each FER2013 target moved to the face's FER+ vote distribution (auxiliary target; below 0.5)
    ferplus_weight: float = 0.0
    train_split: str | None = None  # default: Training (CSV) or train (folders)
    val_split: str | None = None  # default: PublicTest (CSV) or test/val/validation (folders)
    # Share of the training split set aside to pick the best epoch, so the reported split
    # (val_split) is scored once at the end and never tuned on; 0 picks on val_split itself.
    holdout: float = 0.1
    # One fixed holdout for every run (not the run's --seed): ensemble members never train on the
    # faces that pick each other's epochs and the ensemble's weights.
    holdout_seed: int = 42
    out: str = "runs"
    name: str | None = None  # run folder name; default <model>-<labels>[-soft][-fp<weight>]-s<seed>
    resume: bool = False
    seed: int = 42
    precision: str = "mixed_bfloat16"  # or float32
    optimizer: str | None = None  # adam | adamw | sgd (Nesterov momentum); default: the model family's own
    learning_rate: float | None = None  # default: the model family's own
    schedule: str | None = None  # plateau (ReduceLROnPlateau) | cosine; default: the model family's own
    class_weights: bool = False
    augment: str = "standard"  # none | standard | strong | real (strong + lighting, low resolution, JPEG)
    mixup: float = 0.0  # alpha of mixup's Beta distribution (faces and targets blended in pairs); 0: off
    # 2: the loss and the holdout see the mean of the network's probabilities on the face and its mirror image,
    # the graph `fast` ships (ensemble --views 2); the exported network is the one-view net (docs/models.md)
    views: int = 1
    # epochs without validation improvement before stopping; 0: never. Default: 10 with the plateau
    # schedule, never with cosine (its last, low-rate epochs are its best: m5 stopped at 35 of 50)
    early_stopping: int | None = None
    limit: int | None = None  # use only the first N training and N validation rows (smoke tests)
    teacher: str | None = None  # run folder or bundled model to distil from
    init: str | None = None  # start from this trained model's weights (same architecture): fine-tuning
    distill_weight: float = 0.7  # share of the loss that follows the teacher
    # fixed: the teacher scores each clean training face once, before training; consistent: it scores every
    # batch as augmented and blended, so its targets are never the labels it memorised (Beyer et al. 2022)
    distill_mode: str = "fixed"  # one of DISTILL_MODES
    # Polyak averaging: >0 keeps an exponential moving average of the weights with this momentum;
    # it is what the holdout scores and the checkpoint keeps (a wider minimum than the last step).
    ema: float = 0.0
    # torch.compile the training step, meant to cut the per-layer kernel launches that left an H200
    # 21% busy in eager mode (docs/models.md). Not for this CPU: no faster in bench_training, and a
    # smoke run with --ema spent 10 minutes recompiling (torch.dynamo's limit) without ending an epoch.
    jit_compile: bool = False
    # leave the reported split (val_split: PublicTest) unscored at the end, so no figure of it is seen before
    # a decision made on the holdout; `ferkit evaluate --model RUN` scores it later. Needs holdout > 0.
    no_publictest: bool = False
    # sharpness-aware minimisation: each step's gradient is taken at the worst weights within this radius
    # (Foret et al. 2021, e.g. 0.05; twice the cost of a step); 0: off
    sam: float = 0.0


@dataclass
class Config:
    """Every setting of ferkit. `detector` takes a DetectorConfig or a detector name ("haar" means
    DetectorConfig(name="haar")); the detector and pipeline sections are checked when built."""

    model: str = "default"  # bundled model name, run folder, or .onnx / .json file
    models_dir: Path = field(default_factory=default_models_dir)
    detector: DetectorConfig = field(default_factory=DetectorConfig)
    pipeline: PipelineConfig = field(default_factory=PipelineConfig)
    serve: ServeConfig = field(default_factory=ServeConfig)
    train: TrainConfig = field(default_factory=TrainConfig)

    def __post_init__(self):
        # Config(detector="haar") reads as the detector's name: the DetectorConfig it stands for
        if isinstance(self.detector, str):
            self.detector = DetectorConfig(name=self.detector)
        self.validate()

    def validate(self) -> None:
        """TypeError/ValueError for a section of the wrong type or a detector or pipeline field out of range.
        Run at construction and by Pipeline.from_config (fields may be set after construction)."""
        for name, kind, extra in (("detector", DetectorConfig, " or a detector name ('yunet' or 'haar')"),
                                  ("pipeline", PipelineConfig, "")):
            section = getattr(self, name)
            if not isinstance(section, kind):
                raise TypeError(f"Config.{name} must be a {kind.__name__}{extra}, got {type(section).__name__}")
            section.validate()

    def to_dict(self) -> dict:
        return {k: str(v) if isinstance(v, Path) else v for k, v in asdict(self).items()}

    def updated(self, **sections) -> "Config":
        """A copy with some fields changed: cfg.updated(detector={"name": "yunet"}, model="fast")."""
        changes = {}
        for key, value in sections.items():
            current = getattr(self, key)
            changes[key] = replace(current, **value) if is_dataclass(current) and isinstance(value, dict) else value
        return replace(self, **changes)


def section_fields(section) -> list[str]:
    return [f.name for f in fields(section)]
