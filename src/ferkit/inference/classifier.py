"""FacialExpressionModel: one predict/predict_proba interface over ONNX Runtime or Keras JSON + weights.

Inference never needs Keras or torch: the ONNX path imports only onnxruntime. The Keras path
(model.json + .weights.h5, the seed's format) imports Keras lazily, for users who trained
their own model and have not exported it.
"""

from __future__ import annotations

import json
from pathlib import Path

import cv2
import numpy as np

from ..config import default_models_dir
from ..errors import ModelError
from ..files import is_utf8_name, printable
from ..labels import CLASS_NAMES, IMAGE_SIZE

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


def resolve_model(spec: str | Path = "default", models_dir: str | Path | None = None) -> Path:
    """A bundled model's name, "default", a run folder, or a .onnx/.json file -> an existing path."""
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


def as_batch(faces) -> np.ndarray:
    """Faces as float32 (N, 48, 48, 1) raw pixels; accepts one face or a batch, with or without channel."""
    faces = np.asarray(faces)
    if faces.ndim == 2:
        faces = faces[None]
    if faces.ndim == 4 and faces.shape[-1] == 1:
        faces = faces[..., 0]
    if faces.ndim != 3 or faces.shape[1:] != (IMAGE_SIZE, IMAGE_SIZE):
        raise ValueError(f"faces must be 48x48 grayscale, shape (N, 48, 48[, 1]); got {faces.shape}")
    return faces.astype(np.float32)[..., None]


def zoomed(batch: np.ndarray) -> np.ndarray:
    """Each (N, 48, 48, 1) face zoomed about 10%: 2 pixels cropped each side, enlarged back."""
    crop = IMAGE_SIZE // 20
    return np.stack([cv2.resize(f[crop:-crop, crop:-crop], (IMAGE_SIZE, IMAGE_SIZE)) for f in batch[..., 0]])[..., None]


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

    def __init__(self, model_file: str | Path, weights_file: str | Path | None = None, *, threads: int | None = None):
        path = Path(model_file)
        self.folder = path if path.is_dir() else path.parent
        if path.is_dir():
            if (path / ONNX_FILE).is_file() and weights_file is None:
                path = path / ONNX_FILE
            elif (path / JSON_FILE).is_file():
                path, weights_file = path / JSON_FILE, weights_file or path / WEIGHTS_FILE
            else:
                raise ModelError(f"{path}: no {ONNX_FILE} or {JSON_FILE} in this folder")
        if not path.is_file():
            raise ModelError(f"{path}: no such model file")
        self.path = path
        self.name = self.folder.name if path.parent == self.folder and path.name in (ONNX_FILE, JSON_FILE) else path.stem
        # a folder's calibration belongs to the folder's own model, not to any file beside it
        calibration = self.folder / CALIBRATION_FILE
        own_model = path.parent == self.folder and path.name in (ONNX_FILE, JSON_FILE)
        self.temperature = float(json.loads(calibration.read_text())["temperature"]) \
            if own_model and calibration.is_file() else 1.0
        self.views_in_graph = int(self.card.get("views_in_graph", 1)) if own_model else 1
        if path.suffix == ".onnx":
            self.backend = "onnx"
            self._run = self._load_onnx(path, threads)
        elif path.suffix == ".json":
            self.backend = "keras"
            self._run = self._load_keras(path, Path(weights_file) if weights_file else path.with_name(WEIGHTS_FILE))
        else:
            raise ModelError(f"{path}: expected a .onnx file, a .json architecture or a model folder")

    @classmethod
    def load(cls, spec: str | Path = "default", models_dir: str | Path | None = None, **kwargs) -> "FacialExpressionModel":
        return cls(resolve_model(spec, models_dir), **kwargs)

    @staticmethod
    def _load_onnx(path: Path, threads: int | None):
        import onnxruntime as ort

        from .int8 import graph_for_this_cpu

        options = ort.SessionOptions()
        options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        options.log_severity_level = 3
        if threads:
            options.intra_op_num_threads = threads
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
            model.load_weights(str(weights_path))
        except (OSError, ValueError, KeyError, TypeError) as exc:  # h5py's OSError for a damaged file
            raise ModelError(f"{weights_path}: weights do not load into {json_path} ({first_line(exc)})") from None
        # predict_on_batch runs without gradients and returns numpy (calling the model returns a torch
        # tensor that requires grad, which numpy cannot convert)
        return lambda batch: model.predict_on_batch(batch).astype(np.float32)

    def predict_proba(self, faces, tta: bool = False, calibrated: bool = True) -> np.ndarray:
        """(N, 7) probabilities, columns in CLASS_NAMES order; rows sum to 1.

        Calibrated by the model's fitted temperature (calibration.json) unless `calibrated=False`.
        Large inputs run in chunks of MAX_BATCH faces so memory stays flat on a whole test set.
        """
        raw = self._predict_raw(faces, tta)
        return apply_temperature(raw, self.temperature) if calibrated else raw

    def _predict_raw(self, faces, tta: bool) -> np.ndarray:
        batch = as_batch(faces)
        if len(batch) > MAX_BATCH:
            return np.concatenate([self._predict_raw(batch[i:i + MAX_BATCH], tta)
                                   for i in range(0, len(batch), MAX_BATCH)])
        if len(batch) == 0:
            return np.zeros((0, len(CLASS_NAMES)), np.float32)
        if not tta or self.views_in_graph >= 4:  # a graph with all four views inside: TTA is already done
            return self._run(batch).astype(np.float32)
        # a graph that adds each face's mirror itself gets the as-is and zoomed faces: four views either way
        views = np.concatenate([batch, zoomed(batch)]) if self.views_in_graph == 2 else tta_views(batch)
        out = self._run(views).reshape(len(views) // len(batch), len(batch), len(CLASS_NAMES))
        return out.mean(axis=0).astype(np.float32)

    def predict(self, faces, tta: bool = False) -> np.ndarray:
        """Expression names, one per face."""
        return np.asarray(CLASS_NAMES)[self.predict_proba(faces, tta).argmax(axis=1)]

    def predict_emotion(self, face) -> str:
        """The seed's one-face call, spelled correctly."""
        return str(self.predict(face)[0])

    @property
    def card(self) -> dict:
        """metrics.json of the model's folder (empty when absent)."""
        metrics = self.folder / METRICS_FILE
        return json.loads(metrics.read_text()) if metrics.is_file() else {}
