"""`ferkit.analyse` and `ferkit.analyse_video`: the whole per-frame path in one call, for scripts and notebooks.
A facade above `inference` and `video`: neither imports it.

It builds the same `Pipeline` every front end uses, once per distinct settings, and keeps the last few
(loading `accurate` takes about a second; classifying a face a few milliseconds).
"""

from __future__ import annotations

import json
import os
import threading
from collections import OrderedDict
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path, PurePath

from .config import DETECTOR_NEEDS, Config, DetectorConfig, PipelineConfig, section_fields
from .inference.classifier import FacialExpressionModel
from .inference.images import read_image
from .inference.pipeline import Face, Pipeline
from .vision.detectors import create_detector
from .video.source import open_video

KEPT_PIPELINES = 4  # distinct settings kept loaded; a fifth drops the one used longest ago
_pipelines: OrderedDict[str, Pipeline] = OrderedDict()
_lock = threading.Lock()

# The detector settings taken by keyword, named as DetectorConfig's fields and the CLI's flags (--detector-model,
# --min-face, --detect-threshold, --min-neighbors), each with the detector it needs (None: either). A setting
# the chosen detector would ignore is refused, as the CLI refuses the flag. Other DetectorConfig fields:
# detector=DetectorConfig(...).
DETECTOR_SETTINGS = {"min_face": None, **DETECTOR_NEEDS}


def pipeline_for(model: str | os.PathLike | FacialExpressionModel = "default", detector: str | DetectorConfig = "yunet",
                 **settings) -> Pipeline:
    """The kept Pipeline for these settings (built on first use): `settings` are DETECTOR_SETTINGS (applied to
    `detector`, a name or a DetectorConfig) and PipelineConfig fields. `model`: a name or path, or a loaded
    FacialExpressionModel (used as it is: its pipelines are kept by the object)."""
    loaded = model if isinstance(model, FacialExpressionModel) else None
    if loaded is None and not isinstance(model, (str, os.PathLike)):  # str() of it read "model '<...>' not found"
        raise TypeError(f"model must be a bundled model's name, a path or a loaded FacialExpressionModel, "
                        f"got {type(model).__name__}")
    if loaded is not None and "classifier_threads" in settings:  # would be ignored: the model has its session
        raise ValueError("classifier_threads applies when ferkit loads the model; give a loaded model its threads "
                         "when loading it (FacialExpressionModel.load(..., threads=N))")
    known = section_fields(PipelineConfig)
    unknown = sorted(set(settings) - set(known) - set(DETECTOR_SETTINGS))
    if unknown:
        raise TypeError(f"unknown setting {unknown[0]!r}: the keywords are model, detector, the detector's "
                        f"{', '.join(sorted(DETECTOR_SETTINGS))} (other DetectorConfig fields: "
                        f"detector=DetectorConfig(...)) and PipelineConfig's {', '.join(sorted(known))}")
    given = {name: settings.pop(name) for name in DETECTOR_SETTINGS if name in settings}
    if isinstance(given.get("detector_model"), os.PathLike):
        given["detector_model"] = os.fspath(given["detector_model"])
    if given and isinstance(detector, (str, DetectorConfig)):  # another type: Config says what it takes
        # a new DetectorConfig, checked by DETECTOR_ALLOWED as it is built; the one passed in is left as it was
        detector = replace(DetectorConfig(name=detector) if isinstance(detector, str) else detector, **given)
    config = Config(model="default" if loaded else os.fspath(model), detector=detector,
                    pipeline=PipelineConfig(**settings))
    for name, needs in DETECTOR_SETTINGS.items():
        if needs and given.get(name) is not None and config.detector.name != needs:
            raise ValueError(f"{name} needs detector={needs!r} (detector={config.detector.name!r} would ignore it)")
    detector_model = config.detector.detector_model
    # a loaded model by its object (held by the kept pipeline, so no other object takes its id while kept)
    key = json.dumps([config.to_dict(), files_stamp(model) if loaded is None else f"loaded {id(loaded)}",
                      files_stamp(detector_model) if detector_model else []], sort_keys=True, default=str)
    with _lock:
        if key in _pipelines:
            _pipelines.move_to_end(key)
            return _pipelines[key]
    # outside the lock: a load can take a second
    built = Pipeline.from_config(config) if loaded is None else loaded_pipeline(loaded, config)
    with _lock:
        built = _pipelines.setdefault(key, built)
        _pipelines.move_to_end(key)
        while len(_pipelines) > KEPT_PIPELINES:
            _pipelines.popitem(last=False)
    return built


def loaded_pipeline(classifier: FacialExpressionModel, config: Config) -> Pipeline:
    """Pipeline.from_config with a model already loaded."""
    if config.pipeline.uniform_prior:
        classifier.class_shares()  # a model without known class shares fails here, as from_config does
    return Pipeline(classifier, create_detector(config.detector), config.pipeline)


def files_stamp(model) -> list:
    """Name, size and modification time of a model path's files (a run folder's, not its subfolders'): a run
    retrained or recalibrated in place gets a new pipeline instead of the one loaded before. [] for a name."""
    path = Path(str(model))
    try:
        files = sorted(p for p in path.iterdir() if p.is_file()) if path.is_dir() else [path] if path.is_file() else []
        return [(p.name, p.stat().st_size, p.stat().st_mtime_ns) for p in files]
    except OSError:
        return []  # unreadable: Pipeline.from_config says why


def analyse(image, model: str | os.PathLike | FacialExpressionModel = "default", *,
            detector: str | DetectorConfig = "yunet", **settings) -> list[Face]:
    """Every face in `image`, largest first: box, expression, the seven scores, detector confidence.

    `image`: a file path, the bytes of an image file, or a uint8 array as `Pipeline.analyse` takes it (BGR,
    BGRA or grayscale). `model`: a bundled name ("fast", "accurate"), a run folder, a model file, or a loaded
    FacialExpressionModel.
    `detector`: "yunet" or "haar" (or a DetectorConfig), tuned by the CLI's detector settings: `min_face` (pixels,
    either detector), `detect_threshold` and `detector_model` (yunet), `min_neighbors` (haar). Other keywords are
    PipelineConfig fields, e.g. `uniform_prior=True` or `tta=True`. Bad input raises the same errors as the CLI
    prints in one line (MediaError for an unreadable file, ModelError for an unknown model, TypeError/ValueError
    for a bad setting or one the detector would ignore).
    One pipeline is shared by every call with the same settings: for many threads, give each its own `Pipeline`.
    """
    pipeline = pipeline_for(model, detector, **settings)
    if isinstance(image, (str, PurePath, bytes, bytearray, memoryview)):
        image = read_image(image)
    return pipeline.analyse(image)


def analyse_video(video, model: str | os.PathLike | FacialExpressionModel = "default", *,
                  detector: str | DetectorConfig = "yunet", **settings) -> Iterator[tuple[int, float, list[Face]]]:
    """(index, seconds, faces) for every frame of a video, as `ferkit video` computes them: faces tracked
    with stable `face_id`s and smoothed scores, shown from their second detection round on.

    `video`: a file path, or a live source: a camera index (an int: 0 is the first webcam), a device such as
    /dev/video0 or a stream URL (rtsp://, http://), whose seconds count from its first frame and which runs
    until it stops or the loop breaks. Other arguments as `analyse`. A missing, corrupt or empty video, or a
    camera that cannot be opened, raises MediaError here, not at the first frame; a video file cut short raises
    it after its last readable frame. Stopping early (break) releases the file or camera.
    """
    stream = pipeline_for(model, detector, **settings).stream()  # each call tracks its own faces
    source = open_video(video)
    return ((index, seconds, stream.process(frame)) for index, seconds, frame in source.frames())
