"""scripts/widen_member.py: a net widened by Net2WiderNet computes the narrow net's function, with copies that differ."""

import importlib.util
import sys
from pathlib import Path

import numpy as np
import pytest

from ferkit.training.backend import setup_keras

setup_keras("float32")

from ferkit.models.vgg import build_vgg_family  # noqa: E402  (needs Keras set up first)

SCRIPT = Path(__file__).resolve().parents[1] / "scripts" / "widen_member.py"
spec = importlib.util.spec_from_file_location("widen_member", SCRIPT)
widen = importlib.util.module_from_spec(spec)
sys.modules["widen_member"] = widen
spec.loader.exec_module(widen)


@pytest.fixture(autouse=True)
def float32_policy():
    setup_keras("float32")


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
