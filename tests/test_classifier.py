"""FacialExpressionModel and model lookup: which file a name or folder loads, the input shapes it
takes, calibrated scores, and the errors for what cannot be loaded."""

from __future__ import annotations

import json
import shutil

import numpy as np
import pytest

from ferkit.errors import ModelError
from ferkit.inference.classifier import (FacialExpressionModel, apply_temperature, apply_uniform_prior, as_batch,
                                         list_bundled_models, resolve_model, tta_views)
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


@pytest.mark.parametrize("name, text, says", [
    ("metrics.json", "{not json", "not a readable JSON record (Expecting property name enclosed in double quotes"),
    ("metrics.json", "", "not a readable JSON record (Expecting value: line 1 column 1 (char 0)); restore it"),
    ("calibration.json", "garbage", "not a readable JSON record (Expecting value"),
    ("calibration.json", "[2.0]", "not a JSON object; restore it or delete it"),
    ("calibration.json", '{"temperature": "abc"}', "temperature 'abc' is not a number > 0"),
    ("calibration.json", '{"temperature": 0}', "temperature 0 is not a number > 0"),
    ("calibration.json", '{"temperature": -1.5}', "temperature -1.5 is not a number > 0"),
    ("calibration.json", '{"temperature": NaN}', "temperature nan is not a number > 0"),
])
def test_a_damaged_record_in_a_model_folder_is_one_model_error(models, name, text, says):
    folder = models / "onnx_and_keras"
    (folder / name).write_text(text)
    with pytest.raises(ModelError) as error:
        FacialExpressionModel(folder)
    assert str(error.value).startswith(f"{folder / name}: {says}"), str(error.value)


def test_a_uniform_prior_divides_by_the_class_shares_and_renormalises():
    probs = np.array([[0.30, 0.05, 0.10, 0.25, 0.10, 0.10, 0.10], [0.1, 0.1, 0.1, 0.1, 0.1, 0.1, 0.4]])
    shares = np.array([0.1, 0.05, 0.1, 0.25, 0.2, 0.1, 0.2])
    got = apply_uniform_prior(probs, shares)
    # by hand, row 1: p / share = 3, 1, 1, 1, 0.5, 1, 0.5 (sum 8); row 2: 1, 2, 1, 0.4, 0.5, 1, 2 (sum 7.9)
    np.testing.assert_allclose(got[0], np.array([3, 1, 1, 1, 0.5, 1, 0.5]) / 8, rtol=1e-6)
    np.testing.assert_allclose(got[1], np.array([1, 2, 1, 0.4, 0.5, 1, 2]) / 7.9, rtol=1e-6)
    assert got.dtype == np.float32 and got[1].argmax() == 1  # neutral's 0.4 loses to disgust's rarer 0.1


def test_predict_proba_with_a_uniform_prior_uses_the_calibrated_scores_and_the_models_own_labels(models):
    folder = models / "onnx_and_keras"
    (folder / "calibration.json").write_text(json.dumps({"temperature": 2.0, "labels": "ferplus"}))
    model = FacialExpressionModel(folder)
    assert model.labels == "ferplus"
    shares = np.array([2467, 191, 652, 7528, 3515, 3562, 10309]) / 28224  # FER+ majority labels, Training
    np.testing.assert_allclose(model.class_shares(), shares, rtol=1e-12)
    calibrated = model.predict_proba(FACES)
    np.testing.assert_allclose(model.predict_proba(FACES, uniform_prior=True), apply_uniform_prior(calibrated, shares),
                               atol=1e-6)
    # a file beside the folder's model has no calibration: FER2013's own Training shares (disgust 436 of 28,709)
    shutil.copy(folder / "model.onnx", folder / "other.onnx")
    other = FacialExpressionModel(folder / "other.onnx")
    assert other.labels == "fer2013" and other.class_shares()[1] == pytest.approx(436 / 28709, rel=1e-12)
    model._run = lambda batch: np.tile(np.float32([0.2, 0.02, 0.1, 0.26, 0.12, 0.1, 0.2]), (len(batch), 1))
    assert model.predict(FACES[:1]).tolist() == ["happy"]
    assert model.predict(FACES[:1], uniform_prior=True).tolist() == ["disgust"]


def test_without_calibration_labels_a_run_folders_train_config_names_them(models):
    folder = models / "onnx_and_keras"
    (folder / "train_config.json").write_text(json.dumps({"model": "compact", "labels": "ferplus"}))
    assert FacialExpressionModel(folder).labels == "ferplus"
    (folder / "calibration.json").write_text(json.dumps({"temperature": 1.5, "labels": "fer2013"}))
    assert FacialExpressionModel(folder).labels == "fer2013"  # the calibration's word first
    (folder / "calibration.json").unlink()
    shutil.copy(folder / "model.onnx", folder / "other.onnx")
    assert FacialExpressionModel(folder / "other.onnx").labels == "fer2013"  # another file: not that run's
    for broken in ("{not json", "[1, 2]"):
        (folder / "train_config.json").write_text(broken)
        assert FacialExpressionModel(folder).labels == "fer2013"


def test_a_runs_own_class_counts_come_before_its_labels_table(models):
    folder = models / "onnx_and_keras"
    counts = [5, 1, 2, 8, 4, 3, 7]
    (folder / "train_config.json").write_text(json.dumps({"labels": "ferplus", "class_counts": counts}))
    (folder / "calibration.json").write_text(json.dumps({"temperature": 2.0, "labels": "ferplus"}))
    model = FacialExpressionModel(folder)
    np.testing.assert_allclose(model.class_shares(), np.array(counts) / 30, rtol=1e-12)
    calibrated = model.predict_proba(FACES)
    np.testing.assert_allclose(model.predict_proba(FACES, uniform_prior=True),
                               apply_uniform_prior(calibrated, np.array(counts) / 30), atol=1e-6)
    shutil.copy(folder / "model.onnx", folder / "other.onnx")  # another file: not that run's counts
    assert FacialExpressionModel(folder / "other.onnx").class_shares()[1] == pytest.approx(436 / 28709, rel=1e-12)
    # counts a run cannot have recorded stand aside for the labels' table (FER+: disgust 191 of 28,224)
    for broken in ([1, 2, 3], [1, 2, 3, 4, 5, 6, "x"], [1, 2, 3, 4, 5, 6, -1], [0] * 7, [1, 2, 3, 4, 5, 6, None],
                   "7"):
        (folder / "train_config.json").write_text(json.dumps({"labels": "ferplus", "class_counts": broken}))
        assert FacialExpressionModel(folder).class_shares()[1] == pytest.approx(191 / 28224, rel=1e-12), broken


def test_a_uniform_prior_for_a_class_the_run_never_saw_is_refused(models):
    folder = models / "onnx_and_keras"
    (folder / "train_config.json").write_text(json.dumps({"class_counts": [5, 0, 2, 8, 4, 0, 7]}))
    model = FacialExpressionModel(folder)
    model._run = None  # refused before any face is run
    with pytest.raises(ModelError, match=r"^onnx_and_keras: it was trained without disgust, surprise faces; "
                                         r"a uniform prior needs every class in the training data$"):
        model.predict_proba(FACES, uniform_prior=True)


def test_a_uniform_prior_for_a_model_whose_class_shares_are_unknown_is_refused(models):
    folder = models / "onnx_and_keras"
    (folder / "calibration.json").write_text(json.dumps({"temperature": 1.0, "labels": "folders"}))
    model = FacialExpressionModel(folder)
    model._run = None  # refused before any face is run
    with pytest.raises(ModelError, match=r"^onnx_and_keras: its training labels \(folders\) have no known class "
                                         r"shares; a uniform prior needs a model trained on fer2013 or ferplus labels$"):
        model.predict_proba(FACES, uniform_prior=True)


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


def test_weights_of_another_network_are_a_model_error(keras_copy, recwarn):
    other = keras_net((48, 48, 1), 7)
    other.save_weights(str(keras_copy / "model.weights.h5"))
    with pytest.raises(ModelError) as error:
        FacialExpressionModel(keras_copy)
    message = str(error.value)
    assert message.startswith(f"{keras_copy / 'model.weights.h5'}: weights do not load into "
                              f"{keras_copy / 'model.json'} (") and "\n" not in message
    # not a screenful of Keras's skipped layers first
    assert [str(w.message)[:60] for w in recwarn if issubclass(w.category, UserWarning)] == []


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


# --- what metadata a Keras network takes from its folder ------------------------------------------------------

# faces darker on the left than on the right (plus noise): a mirrored view is another input
ASYMMETRIC = (np.linspace(20, 230, 48)[None, None, :]
              + np.random.default_rng(4).integers(0, 25, (5, 48, 48))).astype(np.uint8)


def four_view_mean(model, faces):
    """tta_views' four views of each face through the model's network as is, averaged: what tta=True means."""
    return model._run(tta_views(as_batch(faces))).reshape(4, len(faces), 7).mean(axis=0)


def test_the_keras_net_of_the_bundled_ensemble_folder_takes_none_of_the_graphs_metadata():
    """`fast`'s metrics.json and calibration.json describe its model.onnx (int8, each face's mirror inside):
    its model.json network gets all four views from tta=True and no temperature fitted for that graph."""
    folder = resolve_model("fast")
    card = json.loads((folder / "metrics.json").read_text())
    assert (card["model"], card["views_in_graph"]) == ("ensemble", 2)
    keras = FacialExpressionModel(folder / "model.json", folder / "model.weights.h5")
    np.testing.assert_allclose(keras.predict_proba(ASYMMETRIC, tta=True, calibrated=False),
                               four_view_mean(keras, ASYMMETRIC), atol=1e-5)
    np.testing.assert_array_equal(keras.predict_proba(ASYMMETRIC), keras.predict_proba(ASYMMETRIC, calibrated=False))
    assert (keras.backend, keras.views_in_graph, keras.temperature) == ("keras", 1, 1.0)
    graph = FacialExpressionModel(folder)  # the ONNX graph keeps what describes it
    assert (graph.backend, graph.views_in_graph, graph.temperature) == ("onnx", 2, 1.0015)


def test_an_ensemble_cards_views_and_temperature_go_to_its_onnx_graph_not_the_keras_net(models):
    folder = models / "onnx_and_keras"
    (folder / "metrics.json").write_text(json.dumps({"model": "ensemble", "members": ["a"], "views_in_graph": 2}))
    (folder / "calibration.json").write_text(json.dumps({"temperature": 2.0}))
    keras = FacialExpressionModel(folder, folder / "model.weights.h5")
    onnx = FacialExpressionModel(folder)
    assert (keras.backend, keras.views_in_graph, keras.temperature) == ("keras", 1, 1.0)
    assert (onnx.backend, onnx.views_in_graph, onnx.temperature) == ("onnx", 2, 2.0)
    np.testing.assert_allclose(keras.predict_proba(ASYMMETRIC, tta=True), four_view_mean(keras, ASYMMETRIC),
                               atol=1e-5)


def test_a_plain_run_folders_calibration_applies_to_its_keras_net_and_its_onnx_export(models):
    folder = models / "onnx_and_keras"
    (folder / "metrics.json").write_text(json.dumps({"model": "compact", "accuracy": 0.5, "accuracy_tta": 0.52}))
    (folder / "calibration.json").write_text(json.dumps({"temperature": 2.0}))
    keras = FacialExpressionModel(folder / "model.json", folder / "model.weights.h5")
    onnx = FacialExpressionModel(folder)
    assert (keras.temperature, keras.views_in_graph, onnx.temperature, onnx.views_in_graph) == (2.0, 1, 2.0, 1)
    raw = keras.predict_proba(ASYMMETRIC, calibrated=False)
    np.testing.assert_allclose(keras.predict_proba(ASYMMETRIC), apply_temperature(raw, 2.0), atol=1e-6)
    np.testing.assert_allclose(keras.predict_proba(ASYMMETRIC, tta=True),
                               apply_temperature(four_view_mean(keras, ASYMMETRIC), 2.0), atol=1e-5)


# --- what predict_proba takes ---------------------------------------------------------------------------------

FACE = ASYMMETRIC[0]
SHAPES = "shape (N, 48, 48[, 1]) or one face (48, 48[, 1])"


def with_value(value, row=3, column=40, dtype=np.float32):
    faces = ASYMMETRIC[:2].astype(dtype)
    faces[1, row, column] = value
    return faces


@pytest.mark.parametrize("faces, error, message", [
    (with_value(np.nan), ValueError, "faces contain NaN or infinite values; pass raw 0..255 pixels"),
    (with_value(-np.inf), ValueError, "faces contain NaN or infinite values; pass raw 0..255 pixels"),
    (with_value(-3.5), ValueError, "faces must be raw pixels in 0..255; got values from -3.5 to 254"),
    (with_value(300, dtype=np.int16), ValueError, "faces must be raw pixels in 0..255; got values from 20 to 300"),
    (ASYMMETRIC[:2] / 340.0, ValueError,
     "faces look scaled to 0..1 (float, largest value 0.747059); pass raw 0..255 pixels"),
    (ASYMMETRIC[:2] > 128, TypeError, "faces must be raw pixels 0..255 as integers or floats, got bool"),
    (ASYMMETRIC[:2] + 1j, TypeError, "faces must be raw pixels 0..255 as integers or floats, got complex"),
    ([None, None], TypeError, "faces must be raw pixels 0..255 as integers or floats, got objects"),
    (None, TypeError, "faces must be a numpy array or a list of 48x48 faces, got NoneType"),
    ("face.jpg", TypeError, "faces must be a numpy array or a list of 48x48 faces, got str"),
    (b"\xff\xd8", TypeError, "faces must be a numpy array or a list of 48x48 faces, got bytes"),
    ({"face": FACE}, TypeError, "faces must be a numpy array or a list of 48x48 faces, got dict"),
    ([FACE, FACE[:, :47]], ValueError,
     f"faces must be 48x48 grayscale, {SHAPES}; got a list whose items' shapes differ: (48, 48), (48, 47)"),
    ((FACE, FACE[:, :47], FACE[:46]), ValueError, f"faces must be 48x48 grayscale, {SHAPES}; got a tuple whose "
                                                   "items' shapes differ: (48, 48), (48, 47), (46, 48)"),
], ids=["nan", "-inf", "negative", "above 255", "scaled to 0..1", "bool", "complex", "None items", "None", "str",
        "bytes", "dict", "ragged list", "ragged tuple"])
def test_what_is_not_raw_pixels_is_a_one_line_error(models, faces, error, message):
    model = FacialExpressionModel(models / "onnx_and_keras")
    for call in (model.predict_proba, model.predict):
        with pytest.raises(error) as raised:
            call(faces)
        assert str(raw := raised.value) == message and type(raw) is error


def test_raw_pixels_at_the_range_ends_and_an_all_black_float_face_are_taken(models):
    model = FacialExpressionModel(models / "onnx_and_keras")
    edges = with_value(255.0, dtype=np.float64)
    edges[0, 0, 0] = 0.0
    black = np.zeros((1, 48, 48), np.float32)  # max 0: nothing to tell it from a scaled face, and nothing wrong
    np.testing.assert_array_equal(model.predict_proba(edges), model.predict_proba(edges.astype(np.uint8)))
    np.testing.assert_array_equal(model.predict_proba(black), model.predict_proba(black.astype(np.uint8)))


def test_an_empty_list_is_an_empty_batch(models):
    model = FacialExpressionModel(models / "onnx_and_keras")
    for faces in ([], np.zeros((0, 48, 48), np.uint8)):
        probs = model.predict_proba(faces, tta=True)
        assert (probs.shape, probs.dtype, model.predict(faces).shape) == ((0, 7), np.float32, (0,))


def test_one_face_with_a_channel_axis_is_one_face(models):
    model = FacialExpressionModel(models / "onnx_and_keras")
    assert as_batch(FACE[..., None]).shape == (1, 48, 48, 1)
    one = model.predict_proba(FACE[..., None])
    assert one.shape == (1, 7)
    np.testing.assert_array_equal(one, model.predict_proba(FACE))
    np.testing.assert_array_equal(one, model.predict_proba(ASYMMETRIC)[:1])


def test_predict_emotion_takes_one_face_only(models):
    model = FacialExpressionModel(models / "onnx_and_keras")
    model._run = lambda batch: np.eye(7, dtype=np.float32)[[5] * len(batch)]  # surprise
    assert [model.predict_emotion(face) for face in (FACE, FACE[..., None], FACE[None])] == ["surprise"] * 3
    for faces, count in ((ASYMMETRIC[:3], 3), (np.zeros((0, 48, 48)), 0), ([], 0)):
        with pytest.raises(ValueError) as error:
            model.predict_emotion(faces)
        assert str(error.value) == f"predict_emotion takes one face, got {count}; predict() takes a batch"


# --- arguments of the loader ----------------------------------------------------------------------------------

@pytest.mark.parametrize("threads, error, message", [
    ("2", TypeError, "threads must be a positive int, 0 or None, got str '2'"),
    (True, TypeError, "threads must be a positive int, 0 or None, got bool True"),
    (2.0, TypeError, "threads must be a positive int, 0 or None, got float 2.0"),
    (-1, ValueError, "threads must be a positive int, 0 or None (ONNX Runtime's default), got -1"),
], ids=["str", "bool", "float", "negative"])
def test_threads_must_be_a_whole_number_of_threads(models, threads, error, message):
    with pytest.raises(error) as raised:
        FacialExpressionModel(models / "onnx_and_keras", threads=threads)
    assert str(raw := raised.value) == message and type(raw) is error


def test_threads_none_zero_or_a_positive_int_load(models):
    """0 is ONNX Runtime's own default, as PipelineConfig's classifier_threads = 0 says."""
    expected = FacialExpressionModel(models / "onnx_and_keras").predict_proba(ASYMMETRIC)
    for threads in (None, 0, 1, np.int64(2)):
        model = FacialExpressionModel(models / "onnx_and_keras", threads=threads)
        np.testing.assert_array_equal(model.predict_proba(ASYMMETRIC), expected)


@pytest.mark.parametrize("spec, error, message", [
    (None, TypeError, "model must be a str or Path (a bundled model's name, a run folder or a .onnx/.json file), "
                      "got NoneType"),
    (3, TypeError, "model must be a str or Path (a bundled model's name, a run folder or a .onnx/.json file), "
                   "got int"),
    ("", ModelError, "model is empty: pass a bundled model's name, a run folder or a .onnx/.json file"),
    ("  ", ModelError, "model is empty: pass a bundled model's name, a run folder or a .onnx/.json file"),
], ids=["None", "int", "empty", "blank"])
def test_a_model_spec_that_names_nothing_is_a_one_line_error(models, spec, error, message):
    with pytest.raises(error) as raised:
        FacialExpressionModel.load(spec, models)
    assert str(raw := raised.value) == message and type(raw) is error
    with pytest.raises(error) as raised:
        FacialExpressionModel(spec)
    assert str(raised.value) == message.replace("model ", "model_file ", 1)


def test_weights_given_with_an_onnx_model_are_refused_not_ignored(models):
    folder = models / "onnx_and_keras"
    weights = folder / "model.weights.h5"
    with pytest.raises(ModelError) as error:
        FacialExpressionModel(folder / "model.onnx", weights)
    assert str(error.value) == (f"{folder / 'model.onnx'}: an ONNX model takes no weights file (got {weights}); "
                                "weights go with a .json architecture")
    (folder / "model.json").unlink()  # a folder given with weights loads its model.json: here there is none
    with pytest.raises(ModelError) as error:
        FacialExpressionModel(folder, weights)
    assert str(error.value) == f"{folder}: no model.json in this folder to load the weights {weights} into"
    with pytest.raises(TypeError) as raised:
        FacialExpressionModel(folder / "model.onnx", 3)
    assert str(raised.value) == "weights_file must be a str or Path (a .weights.h5 file), got int"
    with pytest.raises(ModelError) as raised:
        FacialExpressionModel(folder / "model.onnx", "")
    assert str(raised.value) == "weights_file is empty: pass a .weights.h5 file"
