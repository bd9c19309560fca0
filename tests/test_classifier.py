"""FacialExpressionModel and model lookup: which file a name or folder loads, the input shapes it
takes, calibrated scores, and the errors for what cannot be loaded."""

from __future__ import annotations

import json
import shutil

import numpy as np
import pytest

from ferkit.errors import ModelError
from ferkit.inference.classifier import (FacialExpressionModel, apply_temperature, as_batch, list_bundled_models,
                                         resolve_model)
from ferkit.labels import CLASS_NAMES


@pytest.fixture
def models(tiny_model_dir, tmp_path):
    """A models folder: onnx_and_keras/ (both files), keras_only/ (no model.onnx), empty/, DEFAULT."""
    root = tmp_path / "models"
    shutil.copytree(tiny_model_dir, root / "onnx_and_keras")
    shutil.copytree(tiny_model_dir, root / "keras_only")
    (root / "keras_only" / "model.onnx").unlink()
    (root / "empty").mkdir()
    (root / "DEFAULT").write_text("keras_only\n")
    return root


FACES = np.random.default_rng(2).integers(0, 256, (3, 48, 48)).astype(np.uint8)


def test_as_batch_shapes():
    one = np.arange(48 * 48, dtype=np.uint8).reshape(48, 48)
    assert as_batch(one).shape == (1, 48, 48, 1) and as_batch(one).dtype == np.float32
    np.testing.assert_array_equal(as_batch(one)[0, :, :, 0], one)
    assert as_batch(FACES).shape == as_batch(FACES[..., None]).shape == (3, 48, 48, 1)
    for bad in (np.zeros((3, 48, 47)), np.zeros((3, 48, 48, 3)), np.zeros((48,)), np.zeros((2, 2, 48, 48))):
        with pytest.raises(ValueError, match=r"faces must be 48x48 grayscale.*got \(" + str(bad.shape[0])):
            as_batch(bad)


def test_apply_temperature_is_softmax_of_log_scores_over_t():
    probs = np.array([[0.5, 0.2, 0.1, 0.05, 0.05, 0.05, 0.05], [0.1, 0.1, 0.1, 0.1, 0.1, 0.1, 0.4]])
    assert apply_temperature(probs, 1.0) is probs
    softened = apply_temperature(probs, 2.0)
    expected = np.sqrt(probs) / np.sqrt(probs).sum(axis=1, keepdims=True)  # p^(1/2), renormalised per row
    np.testing.assert_allclose(softened, expected, atol=1e-6)
    assert softened.dtype == np.float32 and (softened.argmax(axis=1) == probs.argmax(axis=1)).all()


def test_list_and_resolve_bundled_models(models, tmp_path):
    assert list_bundled_models(models) == ["keras_only", "onnx_and_keras"]
    assert list_bundled_models(tmp_path / "absent") == []
    assert resolve_model("default", models) == models / "keras_only"
    assert resolve_model("onnx_and_keras", models) == models / "onnx_and_keras"
    assert resolve_model(models / "onnx_and_keras" / "model.onnx", models) == models / "onnx_and_keras" / "model.onnx"
    with pytest.raises(ModelError, match=r"model 'empty' not found: .*\(bundled: keras_only, onnx_and_keras\)"):
        resolve_model("empty", models)
    (models / "DEFAULT").unlink()
    with pytest.raises(ModelError, match=r"no default model: .*DEFAULT is missing \(pass --model PATH\)"):
        resolve_model("default", models)
    with pytest.raises(ModelError, match=r"\(bundled: none\)"):
        resolve_model("nope", tmp_path / "absent")


def test_a_folder_loads_its_onnx_file_unless_weights_are_given(models):
    onnx = FacialExpressionModel(models / "onnx_and_keras")
    assert (onnx.backend, onnx.path.name, onnx.name, onnx.folder) == ("onnx", "model.onnx", "onnx_and_keras",
                                                                      models / "onnx_and_keras")
    weights = models / "onnx_and_keras" / "model.weights.h5"
    keras = FacialExpressionModel(models / "onnx_and_keras", weights)
    assert (keras.backend, keras.path.name, keras.name) == ("keras", "model.json", "onnx_and_keras")
    only = FacialExpressionModel.load("keras_only", models)
    assert (only.backend, only.name) == ("keras", "keras_only")
    np.testing.assert_allclose(onnx.predict_proba(FACES), keras.predict_proba(FACES), atol=1e-4)
    np.testing.assert_allclose(only.predict_proba(FACES), keras.predict_proba(FACES), atol=1e-6)


def test_a_file_beside_others_is_named_by_its_stem(models):
    renamed = models / "onnx_and_keras" / "other.onnx"
    shutil.copy(models / "onnx_and_keras" / "model.onnx", renamed)
    model = FacialExpressionModel(renamed)
    assert (model.name, model.folder, model.temperature) == ("other", models / "onnx_and_keras", 1.0)


def test_a_folders_calibration_applies_to_its_own_model_only(models):
    folder = models / "onnx_and_keras"
    (folder / "calibration.json").write_text(json.dumps({"temperature": 2.0}))
    calibrated = FacialExpressionModel(folder)
    assert calibrated.temperature == 2.0
    raw = calibrated.predict_proba(FACES, calibrated=False)
    np.testing.assert_allclose(calibrated.predict_proba(FACES), apply_temperature(raw, 2.0), atol=1e-6)
    shutil.copy(folder / "model.onnx", folder / "other.onnx")
    assert FacialExpressionModel(folder / "other.onnx").temperature == 1.0


def test_predict_names_the_top_class(models):
    model = FacialExpressionModel(models / "onnx_and_keras")
    model._run = lambda batch: np.eye(7, dtype=np.float32)[[4, 0, 6]]  # sad, angry, neutral
    assert model.predict(FACES).tolist() == ["sad", "angry", "neutral"]
    assert model.predict_emotion(FACES[0]) == "sad"
    assert model.EMOTIONS_LIST == list(CLASS_NAMES)


@pytest.mark.parametrize("make, message", [
    (lambda root: root / "empty", "no model.onnx or model.json in this folder"),
    (lambda root: root / "absent.onnx", "no such model file"),
    (lambda root: root / "DEFAULT", "expected a .onnx file, a .json architecture or a model folder"),
    (lambda root: root / "keras_only" / "model.weights.h5", "expected a .onnx file"),
])
def test_what_cannot_be_loaded_is_a_model_error(models, make, message):
    with pytest.raises(ModelError, match=message):
        FacialExpressionModel(make(models))


def test_broken_files_are_model_errors(models):
    junk = models / "junk.onnx"
    junk.write_bytes(b"not a model")
    with pytest.raises(ModelError, match="not a loadable ONNX model"):
        FacialExpressionModel(junk)
    (models / "keras_only" / "model.weights.h5").unlink()
    with pytest.raises(ModelError, match="weights file not found"):
        FacialExpressionModel(models / "keras_only")
    (models / "keras_only" / "model.json").write_text("{not json")
    with pytest.raises(ModelError, match="not a Keras model architecture"):
        FacialExpressionModel(models / "keras_only")


def yunet_path():
    from ferkit.config import package_data_dir
    from ferkit.vision.detectors import YUNET_FILE

    return package_data_dir("detectors", YUNET_FILE)


NEEDS = "ferkit needs (batch, 48, 48, 1) faces in and (batch, 7) scores out"


def test_an_onnx_model_that_is_not_a_face_classifier_is_refused_at_load():
    """The face detector is a loadable ONNX model with the wrong shapes: refused when loaded, not with an
    ONNX Runtime error at the first face."""
    path = yunet_path()
    with pytest.raises(ModelError) as error:
        FacialExpressionModel(path)
    assert str(error.value) == (f"{path}: not a facial expression classifier: it takes (1, 3, height, width) "
                                f"and returns (1, anchors, 1); {NEEDS}")


def linear_onnx(path, input_shape, output_shape, input_type=None, classes: int = 7):
    """softmax(flatten(x) @ W) with the given declared shapes; W fits a 48x48x1 input."""
    import onnx
    from onnx import TensorProto, helper

    input_type = TensorProto.FLOAT if input_type is None else input_type
    nodes = [helper.make_node("Cast", ["x"], ["xf"], to=TensorProto.FLOAT),
             helper.make_node("Flatten", ["xf"], ["flat"], axis=1),
             helper.make_node("MatMul", ["flat", "W"], ["z"]),
             helper.make_node("Softmax", ["z"], ["probs"], axis=1)]
    weights = np.full((48 * 48, classes), 0.001, np.float32)
    graph = helper.make_graph(nodes, "g", [helper.make_tensor_value_info("x", input_type, input_shape)],
                              [helper.make_tensor_value_info("probs", TensorProto.FLOAT, output_shape)],
                              [helper.make_tensor("W", TensorProto.FLOAT, weights.shape, weights.ravel())])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 20)])
    model.ir_version = 9
    onnx.save(model, str(path))
    return path


@pytest.mark.parametrize("input_shape, output_shape, input_type, classes, takes, returns", [
    (["batch", 48, 48, 1], ["batch", 7], None, 7, None, None),  # the one that loads
    ([None, 48, 48, 1], [None, 7], None, 7, None, None),  # unnamed batch axes are dynamic too
    (["batch", 48, 48, 1], ["batch", 5], None, 5, "(batch, 48, 48, 1)", "(batch, 5)"),
    (["batch", 48, 48], ["batch", 7], None, 7, "(batch, 48, 48)", "(batch, 7)"),
    ([1, 48, 48, 1], [1, 7], None, 7, "(1, 48, 48, 1)", "(1, 7)"),  # a fixed batch fails on two faces
    (["batch", 48, 48, 1], ["batch", 7], 2, 7, "uint8 (batch, 48, 48, 1)", "(batch, 7)"),
], ids=["fits", "unnamed batch", "5 classes", "no channel axis", "fixed batch", "uint8 input"])
def test_onnx_shapes_and_input_type_are_checked_at_load(tmp_path, input_shape, output_shape, input_type, classes,
                                                        takes, returns):
    path = linear_onnx(tmp_path / "m.onnx", input_shape, output_shape, input_type, classes)
    if takes is None:
        assert FacialExpressionModel(path).predict_proba(FACES).shape == (3, 7)
        return
    with pytest.raises(ModelError) as error:
        FacialExpressionModel(path)
    assert str(error.value) == (f"{path}: not a facial expression classifier: it takes {takes} and returns "
                                f"{returns}; {NEEDS}")


@pytest.fixture
def keras_copy(tiny_model_dir, tmp_path):
    """The tiny model's model.json and model.weights.h5, in a folder of their own."""
    folder = tmp_path / "kj"
    folder.mkdir()
    for name in ("model.json", "model.weights.h5"):
        shutil.copy(tiny_model_dir / name, folder / name)
    return folder


def test_valid_json_that_is_not_a_keras_model_is_a_model_error(keras_copy):
    json_path = keras_copy / "model.json"
    for text, kind in (('{"a": 1}', "dict"), ("[1, 2]", "list"), ("null", "NoneType"),
                       ('{"module": "keras.layers", "class_name": "Dense", "config": {"units": 3}}', "Dense")):
        json_path.write_text(text)
        with pytest.raises(ModelError) as error:
            FacialExpressionModel(json_path)
        assert str(error.value) == f"{json_path}: not a Keras model architecture (it describes a {kind})"
    # the same without weights beside it: the architecture is what is wrong, not the missing weights
    (keras_copy / "model.weights.h5").unlink()
    with pytest.raises(ModelError, match=r"not a Keras model architecture \(it describes a Dense\)"):
        FacialExpressionModel(json_path)


def test_corrupt_keras_weights_are_a_model_error(keras_copy):
    weights = keras_copy / "model.weights.h5"
    weights.write_bytes(b"not an HDF5 file" * 100)
    with pytest.raises(ModelError) as error:
        FacialExpressionModel(keras_copy)
    assert str(error.value).startswith(f"{weights}: weights do not load into {keras_copy / 'model.json'} (")
    assert "\n" not in str(error.value)


def keras_net(input_shape, classes):
    from ferkit.training.backend import setup_keras

    keras = setup_keras("float32")
    return keras.Sequential([keras.Input(input_shape), keras.layers.Flatten(), keras.layers.Dense(classes)])


@pytest.mark.filterwarnings("ignore:Skipping nested container:UserWarning")  # Keras says what the error says
def test_weights_of_another_network_are_a_model_error(keras_copy):
    other = keras_net((48, 48, 1), 7)
    other.save_weights(str(keras_copy / "model.weights.h5"))
    with pytest.raises(ModelError) as error:
        FacialExpressionModel(keras_copy)
    message = str(error.value)
    assert message.startswith(f"{keras_copy / 'model.weights.h5'}: weights do not load into "
                              f"{keras_copy / 'model.json'} (") and "\n" not in message


def test_a_keras_model_with_other_shapes_is_refused_at_load(tmp_path):
    net = keras_net((32, 32, 3), 5)
    (tmp_path / "model.json").write_text(net.to_json())
    net.save_weights(str(tmp_path / "model.weights.h5"))
    with pytest.raises(ModelError) as error:
        FacialExpressionModel(tmp_path)
    assert str(error.value) == (f"{tmp_path / 'model.json'}: not a facial expression classifier: it takes "
                                f"(None, 32, 32, 3) and returns (None, 5); {NEEDS}")
    # a model never built declares no shapes at all
    keras = pytest.importorskip("keras")
    (tmp_path / "model.json").write_text(keras.Sequential([keras.layers.Dense(3)]).to_json())
    with pytest.raises(ModelError) as error:
        FacialExpressionModel(tmp_path)
    assert str(error.value) == (f"{tmp_path / 'model.json'}: not a facial expression classifier: it takes "
                                f"no input and returns nothing; {NEEDS}")


@pytest.mark.parametrize("vnni", [False, True])
def test_an_onnx_model_in_a_folder_named_in_bytes_that_are_not_utf8_loads(tiny_model_dir, tmp_path, monkeypatch,
                                                                          vnni):
    """onnxruntime takes paths as UTF-8 only: such a folder's graph is handed over as bytes, on either CPU path."""
    monkeypatch.setattr("ferkit.inference.int8.cpu_has_vnni", lambda: vnni)
    folder = shutil.copytree(tiny_model_dir, tmp_path / "m\udcff\udcfe")  # the bytes ff fe in its name
    faces = np.random.default_rng(3).integers(0, 256, (5, 48, 48), dtype=np.uint8)
    copy = FacialExpressionModel.load(folder / "model.onnx")
    assert copy.backend == "onnx"
    np.testing.assert_array_equal(copy.predict_proba(faces), FacialExpressionModel.load(
        tiny_model_dir / "model.onnx").predict_proba(faces))


def test_a_broken_onnx_file_in_such_a_folder_is_named_printably(tmp_path):
    folder = tmp_path / "m\udcff"
    folder.mkdir()
    (folder / "model.onnx").write_bytes(b"not onnx")
    with pytest.raises(ModelError) as error:
        FacialExpressionModel.load(folder / "model.onnx")
    assert str(error.value).startswith(f"{tmp_path}/m\\xff/model.onnx: not a loadable ONNX model (")
