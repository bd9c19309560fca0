"""scripts/soup_members.py: the soup's every variable is the members' mean, and it ships as a run folder."""

from pathlib import Path

import numpy as np
import pytest
from conftest import load_script

from ferkit.training.backend import setup_keras

setup_keras("float32")

from ferkit.inference.classifier import FacialExpressionModel  # noqa: E402
from ferkit.models.vgg import build_vgg_family  # noqa: E402  (needs Keras set up first)
from ferkit.training.export import export_model  # noqa: E402

soup = load_script("scripts/soup_members.py")


def member(folder: Path, seed: int, widths=(4, 8)) -> Path:
    import keras

    keras.utils.set_random_seed(seed)
    net = build_vgg_family((48, 48, 1), 7, widths=widths, dense_units=8, name=f"net{seed}")
    rng = np.random.default_rng(seed)
    for layer in net.layers:  # BatchNorm statistics away from their start, so that they are averaged too
        if type(layer).__name__ == "BatchNormalization":
            gamma, beta, mean, var = (w.numpy() for w in layer.weights)
            layer.set_weights([rng.uniform(0.5, 2, gamma.shape), rng.normal(0, 0.5, beta.shape),
                               rng.normal(0, 0.5, mean.shape), rng.uniform(0.5, 2, var.shape)])
    net.set_weights([w + rng.normal(0, 0.05, w.shape).astype(w.dtype) for w in net.get_weights()])  # zeros too
    folder.mkdir()
    export_model(net, folder)
    return folder


def test_the_soup_is_the_mean_of_every_variable_and_its_onnx_computes_it(tmp_path, capsys):
    folders = [member(tmp_path / f"m{seed}", seed) for seed in (1, 2, 5)]
    assert soup.main([*map(str, folders), "--out", str(tmp_path / "soup")]) == 0
    assert capsys.readouterr().out == f"3 members -> {tmp_path / 'soup'}\n"
    nets = [soup.load_member(folder) for folder in folders]
    made = soup.load_member(tmp_path / "soup")
    for variable, *inputs in zip(made.get_weights(), *(net.get_weights() for net in nets)):
        assert np.allclose(variable, (inputs[0] + inputs[1] + inputs[2]) / 3, atol=1e-6, rtol=0)
        assert not np.allclose(variable, inputs[0])  # every variable moved, BatchNorm statistics included
    faces = np.random.default_rng(3).integers(0, 256, (6, 48, 48)).astype(np.uint8)
    keras_probs = made.predict(faces[..., None].astype(np.float32), verbose=0)
    onnx_probs = FacialExpressionModel(tmp_path / "soup" / "model.onnx").predict_proba(faces)
    assert np.abs(keras_probs - onnx_probs).max() < 1e-5
    member_probs = FacialExpressionModel(folders[0] / "model.onnx").predict_proba(faces)
    assert np.abs(onnx_probs - member_probs).max() > 1e-3  # not the first member's network
    assert (tmp_path / "soup" / "soup.txt").read_text() == "uniform soup of " + " ".join(map(str, folders)) + "\n"


def test_members_of_other_architectures_or_without_weights_are_refused(tmp_path, capsys):
    a, b = member(tmp_path / "a", 1), member(tmp_path / "b", 2, widths=(4, 12))
    assert soup.main([str(a), str(b), "--out", str(tmp_path / "soup")]) == 2
    assert capsys.readouterr().err == "error: net2 does not have net1's architecture\n"
    (a / "model.weights.h5").unlink()
    assert soup.main([str(a), str(b), "--out", str(tmp_path / "soup")]) == 2
    assert capsys.readouterr().err.startswith(f"error: {a}: no model.weights.h5 (scripts/keras_from_onnx.py")
    with pytest.raises(SystemExit):
        soup.main([str(b), "--out", str(tmp_path / "soup")])
    assert "a soup needs two members or more" in capsys.readouterr().err
    assert not (tmp_path / "soup").exists()
