"""FacialExpressionModel: one predict/predict_proba interface over ONNX Runtime or Keras JSON + weights.

Inference never needs Keras or torch: the ONNX path imports only onnxruntime. The Keras path
(model.json + .weights.h5, the seed's format) imports Keras lazily, for users who trained
their own model and have not exported it.
"""

from __future__ import annotations

import json
import math
import os
import threading
import warnings
from pathlib import Path

import cv2
import numpy as np

from ..config import default_models_dir
from ..errors import ModelError
from ..files import is_utf8_name, printable
from ..labels import CLASS_NAMES, IMAGE_SIZE, TRAINING_COUNTS

ONNX_FILE, JSON_FILE, WEIGHTS_FILE, CARD_FILE, METRICS_FILE = (
    "model.onnx", "model.json", "model.weights.h5", "MODEL_CARD.md", "metrics.json")
CALIBRATION_FILE = "calibration.json"  # {"temperature": T, ...}, fitted by `ferkit calibrate`
DEFAULT_NAME_FILE = "DEFAULT"  # in the models folder: the name of the bundled default
MAX_BATCH = 512  # faces per inference call


def list_bundled_models(models_dir: str | Path | None = None) -> list[str]:
    models_dir = Path(models_dir or default_models_dir())
    if not models_dir.is_dir():
        return []
    return sorted(p.name for p in models_dir.iterdir() if (p / ONNX_FILE).is_file() or (p / JSON_FILE).is_file())


MODEL_SPEC = "a bundled model's name, a run folder or a .onnx/.json file"


def check_path(value, what: str = "model", wanted: str = MODEL_SPEC) -> None:
    """TypeError unless `value` is a str or a path; ModelError for "" (which Path would read as the cwd)."""
    if not isinstance(value, (str, os.PathLike)):
        raise TypeError(f"{what} must be a str or Path ({wanted}), got {type(value).__name__}")
    if isinstance(value, str) and not value.strip():
        raise ModelError(f"{what} is empty: pass {wanted}")


def resolve_model(spec: str | Path = "default", models_dir: str | Path | None = None) -> Path:
    """A bundled model's name, "default", a run folder, or a .onnx/.json file -> an existing path."""
    check_path(spec)
    models_dir = Path(models_dir or default_models_dir())
    spec = str(spec)
    if spec == "default":
        marker = models_dir / DEFAULT_NAME_FILE
        if not marker.is_file():
            raise ModelError(f"no default model: {marker} is missing (pass --model PATH)")
        spec = marker.read_text().strip()
    if (models_dir / spec).is_dir() and spec in list_bundled_models(models_dir):
        return models_dir / spec
    path = Path(spec)
    if path.is_dir() or path.is_file():
        return path
    available = ", ".join(list_bundled_models(models_dir)) or "none"
    raise ModelError(f"model {spec!r} not found: not a file, a run folder or a bundled model (bundled: {available})")


FACE_INPUT, SCORES_OUTPUT = ("batch", IMAGE_SIZE, IMAGE_SIZE, 1), ("batch", len(CLASS_NAMES))
FLOAT_TYPES = ("float", "float32")  # ONNX Runtime's and Keras's names for the faces' dtype


def first_line(exc: BaseException) -> str:
    return (str(exc).strip().splitlines() or [type(exc).__name__])[0].rstrip(":")


def check_classifier_io(path: str | Path, inputs: list[tuple[tuple, str]], outputs: list[tuple]) -> None:
    """ModelError unless a model takes one float (batch, 48, 48, 1) input and returns (batch, 7) scores first.

    `inputs` are (shape, dtype) pairs, `outputs` shapes, as the model declares them: a named axis or None
    matches any size, and a shape of None (not declared) anything. The batch axis must be free: a fixed
    batch fails on the second face.
    Checked at load, so that another network (the face detector, say) is one error line, not a runtime
    error at the first face or, in the web app, at every request."""
    def fits(shape, expected) -> bool:
        return shape is None or len(shape) == len(expected) and not isinstance(shape[0], int) and all(
            not isinstance(size, int) or size == want for size, want in zip(shape[1:], expected[1:]))

    def describe(shape) -> str:
        return "(unknown)" if shape is None else f"({', '.join(map(str, shape))})"

    if len(inputs) == 1 and inputs[0][1] in FLOAT_TYPES and fits(inputs[0][0], FACE_INPUT) \
            and outputs and fits(outputs[0], SCORES_OUTPUT):
        return
    takes = " and ".join(describe(shape) if dtype in FLOAT_TYPES else f"{dtype} {describe(shape)}"
                         for shape, dtype in inputs) or "no input"
    returns = describe(outputs[0]) if outputs else "nothing"
    raise ModelError(f"{path}: not a facial expression classifier: it takes {takes} and returns {returns}; "
                     f"ferkit needs {describe(FACE_INPUT)} faces in and {describe(SCORES_OUTPUT)} scores out")


def apply_temperature(probs: np.ndarray, temperature: float) -> np.ndarray:
    """softmax(log(p) / T): T > 1 softens over-confident probabilities; the ranking (and so the
    predicted class) never changes."""
    if temperature == 1.0:
        return probs
    logits = np.log(np.clip(probs, 1e-12, None)) / temperature
    logits -= logits.max(axis=1, keepdims=True)
    exp = np.exp(logits)
    return (exp / exp.sum(axis=1, keepdims=True)).astype(np.float32)


KERAS_LOAD_LOCK = threading.Lock()


def json_record(path: Path) -> dict:
    """A model folder's metrics.json or calibration.json ({} where absent); one that is damaged is a ModelError,
    not a traceback in every command that loads the model."""
    if not path.is_file():
        return {}
    try:
        record = json.loads(path.read_text())
    except (OSError, ValueError) as exc:  # UnicodeDecodeError and JSONDecodeError are ValueErrors
        raise ModelError(f"{path}: not a readable JSON record ({' '.join(str(exc).split())[:120]}); restore it or "
                         "delete it") from None
    if not isinstance(record, dict):
        raise ModelError(f"{path}: not a JSON object; restore it or delete it")
    return record


def checked_temperature(value, source: Path) -> float:
    """A calibration's temperature: a finite number > 0 (0 divides by zero, a negative one turns scores around)."""
    try:
        temperature = float(value)
    except (TypeError, ValueError):
        temperature = float("nan")
    if not (math.isfinite(temperature) and temperature > 0):
        raise ModelError(f"{source}: temperature {value!r} is not a number > 0; refit it with `ferkit calibrate` "
                         "or delete the file")
    return temperature


def run_config(folder: Path) -> dict:
    """A run folder's train_config.json ({} where it is absent, unreadable or not a JSON object)."""
    try:
        config = json.loads((folder / "train_config.json").read_text())
    except (OSError, ValueError):
        return {}
    return config if isinstance(config, dict) else {}


def trained_class_counts(config: dict) -> np.ndarray | None:
    """(7,) the run's `class_counts` (its training targets summed per class, sample weights included), or
    None where the run predates them or they are malformed: the labels' table stands in then."""
    counts = config.get("class_counts")
    if not isinstance(counts, list) or len(counts) != len(CLASS_NAMES):
        return None
    try:
        counts = np.asarray(counts, np.float64)
    except (TypeError, ValueError):
        return None
    return counts if np.isfinite(counts).all() and (counts >= 0).all() and counts.sum() > 0 else None


def apply_uniform_prior(probs: np.ndarray, shares: np.ndarray) -> np.ndarray:
    """p(class | face) as if every class were equally common: p / share, renormalised (Bayes' rule under
    label shift; `shares` are the training split's). Rare classes (disgust: 1.5% of FER2013) gain most."""
    weighted = probs / shares
    return (weighted / weighted.sum(axis=1, keepdims=True)).astype(np.float32)


ONE_FACE = (IMAGE_SIZE, IMAGE_SIZE)
SHAPES = "shape (N, 48, 48[, 1]) or one face (48, 48[, 1])"


def item_shapes(items) -> str:
    """The distinct shapes of a list's items, for the error that says they differ."""
    shapes = []
    for item in items:
        try:
            shape = str(np.shape(item))
        except ValueError:  # an item that is itself ragged
            shape = "uneven"
        if shape not in shapes:
            shapes.append(shape)
    return ", ".join(shapes[:4])


def pixel_array(faces) -> np.ndarray:
    """`faces` as a numpy array of integer or float numbers; a one-line TypeError or ValueError otherwise."""
    if not isinstance(faces, (np.ndarray, list, tuple)) and not hasattr(faces, "__array__") \
            and not hasattr(faces, "__array_interface__"):
        raise TypeError(f"faces must be a numpy array or a list of 48x48 faces, got {type(faces).__name__}")
    try:
        array = np.asarray(faces)
    except ValueError:  # numpy's "inhomogeneous shape" text for a ragged list says nothing about faces
        if not isinstance(faces, (list, tuple)):
            raise
        raise ValueError(f"faces must be 48x48 grayscale, {SHAPES}; got a {type(faces).__name__} whose items' "
                         f"shapes differ: {item_shapes(faces)}") from None
    if array.dtype.kind not in "iuf":  # bool and complex would be cast silently; strings, None fail obscurely
        kind = {"b": "bool", "c": "complex", "O": "objects"}.get(array.dtype.kind, f"dtype {array.dtype}")
        raise TypeError(f"faces must be raw pixels 0..255 as integers or floats, got {kind}")
    return array


def check_pixels(faces: np.ndarray) -> None:
    """ValueError unless every value is a raw pixel, finite and in 0..255 (a wrong input gives a confident
    but meaningless prediction, never an error, further on)."""
    if faces.size == 0 or faces.dtype == np.uint8:
        return
    if faces.dtype.kind == "f" and not np.isfinite(faces).all():
        raise ValueError("faces contain NaN or infinite values; pass raw 0..255 pixels")
    low, high = faces.min(), faces.max()
    if low < 0 or high > 255:
        raise ValueError(f"faces must be raw pixels in 0..255; got values from {low:g} to {high:g}")
    # faces / 255 is the usual mistake, and every face then comes out 'angry' with no error; no real face
    # in 0..255 has all its pixels at or below 1 (an all-black face, all 0, still passes)
    if faces.dtype.kind == "f" and 0 < high <= 1:
        raise ValueError(f"faces look scaled to 0..1 (float, largest value {high:g}); pass raw 0..255 pixels")


def as_batch(faces) -> np.ndarray:
    """Faces as float32 (N, 48, 48, 1) raw pixels. Accepts one face, (48, 48) or (48, 48, 1), or a batch,
    (N, 48, 48) or (N, 48, 48, 1), as an array or a list; [] is no faces. Pixels are raw 0..255 values,
    integer or float: NaN, inf, values outside 0..255, floats scaled to 0..1, bool and complex are refused."""
    faces = pixel_array(faces)
    if faces.shape == (0,):  # [] is an empty batch, as np.zeros((0, 48, 48)) is
        faces = faces.reshape(0, *ONE_FACE)
    if faces.shape in (ONE_FACE, ONE_FACE + (1,)):
        faces = faces.reshape(1, *ONE_FACE)
    if faces.ndim == 4 and faces.shape[-1] == 1:
        faces = faces[..., 0]
    if faces.ndim != 3 or faces.shape[1:] != ONE_FACE:
        raise ValueError(f"faces must be 48x48 grayscale, {SHAPES}; got {faces.shape}")
    check_pixels(faces)
    return faces.astype(np.float32)[..., None]


def zoomed(batch: np.ndarray) -> np.ndarray:
    """Each (N, 48, 48, 1) face zoomed about 10%: 2 pixels cropped each side, enlarged back."""
    crop = IMAGE_SIZE // 20
    return np.stack([cv2.resize(f[crop:-crop, crop:-crop], (IMAGE_SIZE, IMAGE_SIZE))
                     for f in batch[..., 0]])[..., None]


def check_threads(threads) -> None:
    """None or 0 (ONNX Runtime's default, every core: PipelineConfig's classifier_threads = 0), or a positive int.
    Checked here: onnxruntime's own error for "2" is a 4-line pybind message, and -1 it takes silently."""
    if threads is None:
        return
    if isinstance(threads, (bool, np.bool_)) or not isinstance(threads, (int, np.integer)):
        raise TypeError(f"threads must be a positive int, 0 or None, got {type(threads).__name__} {threads!r}")
    if threads < 0:
        raise ValueError(f"threads must be a positive int, 0 or None (ONNX Runtime's default), got {threads}")


def describes_another_graph(card: dict) -> bool:
    """True for the metrics.json of a graph built from networks (`ferkit ensemble`: "model" "ensemble",
    members, views inside): it and the folder's calibration.json describe model.onnx, not the one network
    in a model.json beside it (the bundled `fast`). A trained run's metrics.json names its architecture."""
    return card.get("model") == "ensemble" or "views_in_graph" in card


def tta_views(batch: np.ndarray) -> np.ndarray:
    """Test-time augmentation: each face as is, mirrored, zoomed 10%, and zoomed + mirrored."""
    zoom = zoomed(batch)
    return np.concatenate([batch, batch[:, :, ::-1], zoom, zoom[:, :, ::-1]])


class FacialExpressionModel:
    """Loads a trained model and predicts expressions of 48x48 grayscale faces.

    FacialExpressionModel("model.json", "model.weights.h5")  -> Keras, the seed's format
    FacialExpressionModel("model.onnx")                      -> ONNX Runtime
    FacialExpressionModel("runs/compact-fer2013-s42")        -> the run or bundled folder (ONNX first)
    FacialExpressionModel.load("default")                    -> a bundled model by name
    """

    EMOTIONS_LIST = list(CLASS_NAMES)

    def __init__(self, model_file: str | Path, weights_file: str | Path | None = None, *,
                 threads: int | None = None):
        check_path(model_file, "model_file")
        if weights_file is not None:
            check_path(weights_file, "weights_file", "a .weights.h5 file")
        check_threads(threads)
        path = Path(model_file)
        self.folder = path if path.is_dir() else path.parent
        if path.is_dir():
            if (path / ONNX_FILE).is_file() and weights_file is None:
                path = path / ONNX_FILE
            elif (path / JSON_FILE).is_file():
                path, weights_file = path / JSON_FILE, weights_file or path / WEIGHTS_FILE
            elif weights_file is not None:
                raise ModelError(f"{path}: no {JSON_FILE} in this folder to load the weights {weights_file} into")
            else:
                raise ModelError(f"{path}: no {ONNX_FILE} or {JSON_FILE} in this folder")
        if not path.is_file():
            raise ModelError(f"{path}: no such model file")
        if path.suffix == ".onnx" and weights_file is not None:  # it would be ignored: the graph holds its weights
            raise ModelError(f"{path}: an ONNX model takes no weights file (got {weights_file}); "
                             f"weights go with a .json architecture")
        self.path = path
        own_model = path.parent == self.folder and path.name in (ONNX_FILE, JSON_FILE)
        self.name = self.folder.name if own_model else path.stem
        # a folder's calibration belongs to the folder's own model, not to any file beside it, and an ensemble's
        # (views in the graph, its temperature) to its model.onnx, not to the network in its model.json
        described = own_model and not (path.suffix == ".json" and describes_another_graph(self.card))
        calibration = self.folder / CALIBRATION_FILE
        fitted = json_record(calibration) if described else {}
        self.temperature = checked_temperature(fitted.get("temperature", 1.0), calibration)
        # what it learnt from, for the class shares a uniform prior undoes: the run's own class counts where it
        # recorded them (an image-folder tree has shares of its own), else the labels' table: the calibration's
        # word on the labels, else the run's
        run = run_config(self.folder) if described else {}
        self.labels = str(fitted.get("labels") or run.get("labels") or "fer2013")
        self.labels_recorded = bool(fitted.get("labels") or run.get("labels"))  # or only assumed: FER2013's
        self.class_counts = trained_class_counts(run)
        views = self.card.get("views_in_graph", 1) if described else 1
        # a graph giving each member its own count: --tta adds only what its largest view set lacks
        self.views_in_graph = int(max(views) if isinstance(views, list) else views)
        if path.suffix == ".onnx":
            self.backend = "onnx"
            self._run = self._load_onnx(path, threads)
        elif path.suffix == ".json":
            self.backend = "keras"
            self._run = self._load_keras(path, Path(weights_file) if weights_file else path.with_name(WEIGHTS_FILE))
        else:
            raise ModelError(f"{path}: expected a .onnx file, a .json architecture or a model folder")

    @classmethod
    def load(cls, spec: str | Path = "default", models_dir: str | Path | None = None,
             **kwargs) -> "FacialExpressionModel":
        return cls(resolve_model(spec, models_dir), **kwargs)

    @staticmethod
    def _load_onnx(path: Path, threads: int | None):
        import onnxruntime as ort

        from .int8 import graph_for_this_cpu

        options = ort.SessionOptions()
        options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        options.log_severity_level = 3
        if threads:  # None and 0 leave ONNX Runtime's default
            options.intra_op_num_threads = int(threads)
        try:
            graph = graph_for_this_cpu(path)
            if isinstance(graph, str) and not is_utf8_name(graph):  # onnxruntime takes only UTF-8 paths
                graph = path.read_bytes()
            session = ort.InferenceSession(graph, options, providers=["CPUExecutionProvider"])
        except OSError as exc:
            raise ModelError(f"{printable(path)}: cannot be read ({exc.strerror or exc})") from None
        except Exception as exc:  # onnxruntime raises its own exception types
            raise ModelError(f"{printable(path)}: not a loadable ONNX model ({str(exc).splitlines()[0]})") from None
        inputs, outputs = session.get_inputs(), session.get_outputs()
        check_classifier_io(path, [(i.shape, i.type.removeprefix("tensor(").removesuffix(")")) for i in inputs],
                            [o.shape for o in outputs])
        input_name = inputs[0].name
        return lambda batch: session.run(None, {input_name: batch})[0]

    @staticmethod
    def _load_keras(json_path: Path, weights_path: Path):
        from ..training.backend import setup_keras

        keras = setup_keras(None)
        previous = keras.config.dtype_policy()
        keras.config.set_dtype_policy("float32")  # inference runs in float32, whatever the caller trains in
        try:
            model = keras.models.model_from_json(json_path.read_text())
        except (ValueError, TypeError, KeyError, json.JSONDecodeError) as exc:
            raise ModelError(f"{json_path}: not a Keras model architecture ({first_line(exc)})") from None
        finally:
            keras.config.set_dtype_policy(previous)  # the global policy is the caller's
        # valid JSON of anything else ({"a": 1}, one layer) comes back as that thing, not as an error
        if not isinstance(model, keras.Model):
            raise ModelError(f"{json_path}: not a Keras model architecture (it describes a {type(model).__name__})")
        # a model never built (no input shape) has no inputs or outputs attribute at all
        check_classifier_io(json_path, [(tuple(t.shape), t.dtype) for t in getattr(model, "inputs", None) or []],
                            [tuple(t.shape) for t in getattr(model, "outputs", None) or []])
        if not weights_path.is_file():
            raise ModelError(f"{weights_path}: weights file not found")
        try:
            # Keras warns of each layer it skips (a screenful) before it fails or half-loads: one error instead. The
            # filter list is the process's: loads in other threads must not restore it out of order (the lock)
            with KERAS_LOAD_LOCK, warnings.catch_warnings():
                warnings.simplefilter("error", UserWarning)
                model.load_weights(str(weights_path))
        except (OSError, ValueError, KeyError, TypeError, UserWarning) as exc:  # h5py's OSError: a damaged file
            raise ModelError(f"{weights_path}: weights do not load into {json_path} ({first_line(exc)})") from None
        # predict_on_batch runs without gradients and returns numpy (calling the model returns a torch
        # tensor that requires grad, which numpy cannot convert)
        return lambda batch: model.predict_on_batch(batch).astype(np.float32)

    def predict_proba(self, faces, tta: bool = False, calibrated: bool = True,
                      uniform_prior: bool = False) -> np.ndarray:
        """(N, 7) probabilities, columns in CLASS_NAMES order; rows sum to 1.

        Calibrated by the model's fitted temperature (calibration.json) unless `calibrated=False`; with
        `uniform_prior`, then divided by the training split's class shares (`class_shares`) and renormalised.
        Large inputs run in chunks of MAX_BATCH faces so memory stays flat on a whole test set.
        """
        shares = self.class_shares() if uniform_prior else None  # an unknown label set fails before the work
        raw = self._predict_raw(faces, tta)
        probs = apply_temperature(raw, self.temperature) if calibrated else raw
        return apply_uniform_prior(probs, shares) if uniform_prior else probs

    def class_shares(self) -> np.ndarray:
        """(7,) share of each class in what this model learnt from: its run's class counts, else the Training
        split's counts for its labels."""
        if self.class_counts is not None:
            missing = [name for name, count in zip(CLASS_NAMES, self.class_counts) if count == 0]
            if missing:  # p / 0: a class it never saw cannot be given its share back
                raise ModelError(f"{self.name}: it was trained without {', '.join(missing)} faces; "
                                 "a uniform prior needs every class in the training data")
            return self.class_counts / self.class_counts.sum()
        if self.labels not in TRAINING_COUNTS:
            raise ModelError(f"{self.name}: its training labels ({self.labels}) have no known class shares; "
                             f"a uniform prior needs a model trained on {' or '.join(TRAINING_COUNTS)} labels")
        counts = np.asarray(TRAINING_COUNTS[self.labels], np.float64)
        return counts / counts.sum()

    def _predict_raw(self, faces, tta: bool) -> np.ndarray:
        batch = as_batch(faces)  # checked once: a chunk of float32 pixels is not checked again
        if len(batch) == 0:
            return np.zeros((0, len(CLASS_NAMES)), np.float32)
        return np.concatenate([self._predict_chunk(batch[i:i + MAX_BATCH], tta)
                               for i in range(0, len(batch), MAX_BATCH)])

    def _predict_chunk(self, batch: np.ndarray, tta: bool) -> np.ndarray:
        if not tta or self.views_in_graph >= 4:  # a graph with all four views inside: TTA is already done
            return self._run(batch).astype(np.float32)
        # a graph that adds each face's mirror itself gets the as-is and zoomed faces: four views either way
        views = np.concatenate([batch, zoomed(batch)]) if self.views_in_graph == 2 else tta_views(batch)
        out = self._run(views).reshape(len(views) // len(batch), len(batch), len(CLASS_NAMES))
        return out.mean(axis=0).astype(np.float32)

    def predict(self, faces, tta: bool = False, uniform_prior: bool = False) -> np.ndarray:
        """Expression names, one per face."""
        return np.asarray(CLASS_NAMES)[self.predict_proba(faces, tta, uniform_prior=uniform_prior).argmax(axis=1)]

    def predict_emotion(self, face) -> str:
        """The seed's one-face call, spelled correctly: one face, (48, 48) or (48, 48, 1), or a batch of one.
        Several faces (or none) are a ValueError: predict() names each face of a batch."""
        count = len(as_batch(face))
        if count != 1:
            raise ValueError(f"predict_emotion takes one face, got {count}; predict() takes a batch")
        return str(self.predict(face)[0])

    @property
    def card(self) -> dict:
        """metrics.json of the model's folder (empty when absent)."""
        return json_record(self.folder / METRICS_FILE)
