"""scripts/keras_from_onnx.py: Keras weights rebuilt from an exported ONNX graph give its probabilities, with
BatchNorm variances measured on the faces given."""

import numpy as np
import pytest
from conftest import load_script

from ferkit.training.backend import setup_keras

keras = setup_keras("float32")

from ferkit.models.vgg import build_vgg_family  # noqa: E402  (needs Keras set up first)

rebuild = load_script("scripts/keras_from_onnx.py")


def faces(count, seed):
    """Faces unlike each other in brightness and in where the light falls."""
    rng = np.random.default_rng(seed)
    ramp = np.linspace(0, 1, 16, dtype=np.float32)
    return np.stack([rng.uniform(0, 60) + 180 * (ramp[:, None] if i % 2 else ramp[None, :]) * np.ones((16, 16))
                     + rng.normal(0, 12, (16, 16)) for i in range(count)])[..., None].astype(np.float32)


@pytest.fixture(scope="module")
def exported(tmp_path_factory):
    setup_keras("float32")
    net = build_vgg_family((16, 16, 1), 7, widths=(4, 8), dense_units=6, name="small")
    rng = np.random.default_rng(5)
    sample = faces(32, seed=9)
    for layer in net.layers:  # BatchNorm statistics near its input's but off them, and gamma, beta not 1, 0
        if type(layer).__name__ == "BatchNormalization":
            inputs = keras.ops.convert_to_numpy(keras.Model(net.input, layer.input)(sample))
            inputs = inputs.reshape(-1, inputs.shape[-1])
            shape = inputs.shape[-1:]
            layer.set_weights([rng.uniform(0.5, 2, shape), rng.normal(0, 0.3, shape),
                               inputs.mean(0) * rng.uniform(0.5, 1.5, shape),
                               inputs.var(0) * rng.uniform(0.3, 3, shape)])
    folder = tmp_path_factory.mktemp("small")
    net(np.zeros((1, 16, 16, 1), np.float32))
    net.export(str(folder / "model.onnx"), format="onnx", verbose=False)
    (folder / "model.json").write_text(net.to_json())
    return net, folder


def test_the_rebuilt_net_gives_the_graphs_probabilities(exported):
    original, folder = exported
    fresh = keras.models.model_from_json((folder / "model.json").read_text())
    probe = faces(12, seed=1)
    before = keras.ops.convert_to_numpy(fresh(probe, training=False))
    rebuild.rebuild_from_onnx(fresh, folder / "model.onnx", faces(64, seed=2))
    expected = keras.ops.convert_to_numpy(original(probe, training=False))
    got = keras.ops.convert_to_numpy(fresh(probe, training=False))
    assert np.abs(before - expected).max() > 1e-2  # not two untrained nets agreeing
    np.testing.assert_allclose(got, expected, atol=1e-5)
    assert np.ptp(expected, axis=0).max() > 0.01  # and the faces get different answers


def test_batchnorm_variance_is_measured_on_the_faces_and_gamma_keeps_the_ratio(exported):
    original, folder = exported
    fresh = keras.models.model_from_json((folder / "model.json").read_text())
    measured_on = faces(64, seed=2)
    rebuild.rebuild_from_onnx(fresh, folder / "model.onnx", measured_on)
    conv = next(layer for layer in original.layers if type(layer).__name__ == "Conv2D")
    first_bn = next(layer for layer in fresh.layers if type(layer).__name__ == "BatchNormalization")
    original_bn = next(layer for layer in original.layers if type(layer).__name__ == "BatchNormalization")
    inputs = keras.ops.convert_to_numpy(keras.Model(original.input, conv.output)(measured_on))
    gamma, beta, mean, var = (w.numpy() for w in first_bn.weights)
    o_gamma, o_beta, o_mean, o_var = (w.numpy() for w in original_bn.weights)
    np.testing.assert_allclose(var, inputs.reshape(-1, inputs.shape[-1]).var(axis=0), rtol=1e-4)
    assert np.abs(var / o_var - 1).max() > 0.2  # measured, not the exported net's (unknowable) moving variance
    np.testing.assert_allclose(gamma / np.sqrt(var + 1e-3), o_gamma / np.sqrt(o_var + 1e-3), rtol=1e-5)
    np.testing.assert_allclose(beta, o_beta, rtol=1e-6)
    np.testing.assert_allclose(mean, o_mean, rtol=1e-6)


def test_a_graph_of_another_architecture_is_refused(exported):
    _, folder = exported
    other = build_vgg_family((16, 16, 1), 7, widths=(4, 8), name="headless")  # no hidden dense layer: its output
    # layer takes the hidden layer's kernel, then finds BatchNorm where its bias should be
    with pytest.raises(ValueError, match="expected the Add parameter, found Sub"):
        rebuild.rebuild_from_onnx(other, folder / "model.onnx", faces(8, seed=3))


def test_the_command_line_refuses_a_folder_without_a_graph(tmp_path, capsys):
    (tmp_path / "model.json").write_text("{}")
    assert rebuild.main([str(tmp_path), "--data", "unused.csv", "--out", str(tmp_path / "out")]) == 2
    assert capsys.readouterr().err.strip() == f"error: {tmp_path}: no model.onnx"
    assert not (tmp_path / "out").exists()
