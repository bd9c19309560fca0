"""scripts/widen_member.py: a net widened by Net2WiderNet computes the narrow net's function, with copies that differ."""

import numpy as np
import pytest
from conftest import load_script

from ferkit.training.backend import setup_keras

setup_keras("float32")

from ferkit.models.vgg import build_vgg_family  # noqa: E402  (needs Keras set up first)

widen = load_script("scripts/widen_member.py")


@pytest.fixture(autouse=True)
def float32_policy():
    setup_keras("float32")
    import keras

    keras.utils.set_random_seed(0)  # the nets' random starts decide whether the faces get different answers


def narrow_and_wide(dense=(8, 12)):
    narrow = build_vgg_family((16, 16, 1), 7, widths=(4, 8), dense_units=dense[0], name="narrow")
    wide = build_vgg_family((16, 16, 1), 7, widths=(6, 13), dense_units=dense[1], name="wide")
    rng = np.random.default_rng(11)
    for layer in narrow.layers:  # BatchNorm away from its identity start, so copying its statistics matters
        if type(layer).__name__ == "BatchNormalization":
            gamma, beta, mean, var = (w.numpy() for w in layer.weights)
            layer.set_weights([rng.uniform(0.5, 2, gamma.shape), rng.normal(0, 0.5, beta.shape),
                               rng.normal(0, 0.5, mean.shape), rng.uniform(0.5, 2, var.shape)])
    return narrow, wide


def test_the_wide_net_computes_the_narrow_nets_probabilities():
    narrow, wide = narrow_and_wide()
    # faces unlike each other in brightness and in where the light falls: random noise alone averages out
    ramp = np.linspace(0, 1, 16, dtype=np.float32)
    faces = np.stack([level * 28 + 200 * (ramp[:, None] if level % 2 else ramp[None, :]) * np.ones((16, 16))
                      for level in range(9)])[..., None].astype(np.float32)
    before = wide.predict(faces, verbose=0)
    widen.widen_weights(narrow, wide, seed=3)
    expected, got = narrow.predict(faces, verbose=0), wide.predict(faces, verbose=0)
    assert np.abs(before - expected).max() > 1e-2  # the check below is not two untrained nets agreeing
    np.testing.assert_allclose(got, expected, atol=1e-5)
    assert np.ptp(expected, axis=0).max() > 0.01  # and the faces get different answers from it


def test_extra_units_copy_narrow_units_and_their_outgoing_weights_differ():
    narrow, wide = narrow_and_wide()
    widen.widen_weights(narrow, wide, seed=3)
    convs = [layer for layer in wide.layers if type(layer).__name__ == "Conv2D"]
    first_narrow = next(layer for layer in narrow.layers if type(layer).__name__ == "Conv2D").weights[0].numpy()
    first_wide, second_wide = convs[0].weights[0].numpy(), convs[1].weights[0].numpy()
    np.testing.assert_array_equal(first_wide[..., :4], first_narrow)
    copies = [next(u for u in range(4) if np.array_equal(first_wide[..., extra], first_narrow[..., u]))
              for extra in (4, 5)]
    # the next layer's weights from a copy and from its original are unequal shares of the narrow weight
    for extra, original in zip((4, 5), copies):
        assert not np.allclose(second_wide[:, :, extra, :], second_wide[:, :, original, :])


def test_nets_of_different_designs_or_a_narrower_target_are_refused():
    narrow, wide = narrow_and_wide()
    with pytest.raises(ValueError, match="fewer than"):
        widen.widen_weights(wide, narrow)
    headless = build_vgg_family((16, 16, 1), 7, widths=(6, 13), name="headless")
    with pytest.raises(ValueError, match="same layers"):
        widen.widen_weights(narrow, headless)


def bright_faces(count, seed):
    """Faces unlike each other in brightness and in where the light falls."""
    rng = np.random.default_rng(seed)
    ramp = np.linspace(0, 1, 16, dtype=np.float32)
    return np.stack([rng.uniform(0, 60) + 180 * (ramp[:, None] if i % 2 else ramp[None, :]) * np.ones((16, 16))
                     + rng.normal(0, 12, (16, 16)) for i in range(count)])[..., None].astype(np.float32)


def test_a_net_without_a_hidden_dense_layer_gets_an_identity_one_then_widens():
    narrow, _ = narrow_and_wide()
    headless = build_vgg_family((16, 16, 1), 7, widths=(4, 8), name="headless")
    rng = np.random.default_rng(4)
    for layer in headless.layers:
        if type(layer).__name__ == "BatchNormalization":
            gamma, beta, mean, var = (w.numpy() for w in layer.weights)
            layer.set_weights([rng.uniform(0.5, 2, gamma.shape), rng.normal(0, 0.5, beta.shape),
                               rng.normal(0, 0.5, mean.shape), rng.uniform(0.5, 2, var.shape)])
    measured_on, probe = bright_faces(48, seed=2), bright_faces(10, seed=7)
    deep = widen.with_identity_head(headless, measured_on)
    expected = headless.predict(probe, verbose=0)
    np.testing.assert_allclose(deep.predict(probe, verbose=0), expected, atol=1e-5)
    assert np.ptp(expected, axis=0).max() > 1e-3  # a hundred times the tolerance: the faces' answers differ
    hidden = [layer for layer in deep.layers if type(layer).__name__ == "Dense"][0]
    np.testing.assert_array_equal(hidden.weights[0].numpy(), np.eye(8, dtype=np.float32))
    # the new BatchNorm holds the pooled features' own statistics, so training starts near the identity too
    pooled = keras_model(headless, measured_on)
    norm = [layer for layer in deep.layers if type(layer).__name__ == "BatchNormalization"][-1]
    gamma, beta, mean, var = (w.numpy() for w in norm.weights)
    np.testing.assert_allclose(mean, pooled.mean(axis=0), rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(var, pooled.var(axis=0), rtol=1e-4, atol=1e-7)
    np.testing.assert_allclose(gamma, np.sqrt(pooled.var(axis=0) + norm.epsilon), rtol=1e-4)
    assert np.abs(var - 1).max() > 0.05  # measured, not a default
    wide = build_vgg_family((16, 16, 1), 7, widths=(6, 13), dense_units=12, name="wide")
    widen.widen_weights(deep, wide, seed=3)
    np.testing.assert_allclose(wide.predict(probe, verbose=0), expected, atol=1e-5)


def keras_model(net, faces):
    import keras

    dense = [layer for layer in net.layers if type(layer).__name__ == "Dense"][0]
    return keras.ops.convert_to_numpy(keras.Model(net.input, dense.input)(faces, training=False))


def test_widening_a_net_without_a_hidden_dense_layer_asks_for_faces_first(tmp_path, capsys):
    from ferkit.inference.classifier import WEIGHTS_FILE
    from ferkit.models.registry import create_model

    narrow = create_model("compact")
    (tmp_path / "model.json").write_text(narrow.to_json())
    narrow.save_weights(tmp_path / WEIGHTS_FILE)
    assert widen.main([str(tmp_path), "--to", "vgg", "--out", str(tmp_path / "wide")]) == 2
    assert "--data is needed" in capsys.readouterr().err
    assert not (tmp_path / "wide").exists()
