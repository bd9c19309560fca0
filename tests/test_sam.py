"""Sharpness-aware minimisation (`ferkit train --sam RHO`): one step against the update written out by hand
in torch, BatchNorm statistics that follow the real weights only, and a training run that uses it."""

from __future__ import annotations

import json
from dataclasses import replace

import numpy as np
import pytest
import torch

from ferkit.config import TrainConfig
from ferkit.training.backend import setup_keras

keras = setup_keras("float32")

from ferkit.training import fit  # noqa: E402  (needs Keras set up first)
from ferkit.training.sam import use_sam  # noqa: E402

X = np.array([[1.0, -2.0, 0.5], [0.3, 0.8, -1.2], [-0.7, 0.1, 2.0], [1.5, 1.1, -0.4]], np.float32)
Y = np.eye(2, dtype=np.float32)[[0, 1, 1, 0]]
KERNEL = np.array([[0.2, -0.5], [0.7, 0.1], [-0.3, 0.4]], np.float32)
BIAS = np.array([0.05, -0.1], np.float32)


def dense_model():
    keras.utils.set_random_seed(0)
    model = keras.Sequential([keras.Input((3,)), keras.layers.Dense(2, activation="softmax")])
    model.layers[0].set_weights([KERNEL, BIAS])
    model.compile(optimizer=keras.optimizers.SGD(learning_rate=0.5), loss="categorical_crossentropy")
    return model


def gradient(kernel: torch.Tensor, bias: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """d(mean cross-entropy)/d(kernel, bias) of softmax(X @ kernel + bias) against Y."""
    kernel, bias = kernel.clone().requires_grad_(), bias.clone().requires_grad_()
    probs = torch.softmax(torch.from_numpy(X) @ kernel + bias, dim=1)
    loss = -(torch.from_numpy(Y) * torch.log(probs)).sum(1).mean()
    return torch.autograd.grad(loss, (kernel, bias))


def test_a_sam_step_applies_the_gradient_taken_at_the_climbed_weights():
    rho, lr = 0.3, 0.5
    kernel, bias = torch.from_numpy(KERNEL), torch.from_numpy(BIAS)
    g_kernel, g_bias = gradient(kernel, bias)
    norm = torch.sqrt((g_kernel ** 2).sum() + (g_bias ** 2).sum())  # one norm over every weight
    s_kernel, s_bias = gradient(kernel + rho * g_kernel / norm, bias + rho * g_bias / norm)
    expected = [(kernel - lr * s_kernel).numpy(), (bias - lr * s_bias).numpy()]

    model = dense_model()
    use_sam(model, rho)
    history = model.fit(X, Y, batch_size=4, epochs=1, shuffle=False, verbose=0)
    for got, want in zip(model.layers[0].get_weights(), expected):
        np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-6)
    # the loss reported is the one at the weights the step started from
    assert history.history["loss"][0] == pytest.approx(float(-(Y * np.log(
        torch.softmax(torch.from_numpy(X @ KERNEL + BIAS), 1).numpy())).sum(1).mean()), rel=1e-5)

    plain = dense_model()  # without SAM: the first gradient, a different update
    plain.fit(X, Y, batch_size=4, epochs=1, shuffle=False, verbose=0)
    np.testing.assert_allclose(plain.layers[0].get_weights()[0], (kernel - lr * g_kernel).numpy(), rtol=1e-5)
    assert not np.allclose(plain.layers[0].get_weights()[0], expected[0], atol=1e-4)


def test_batch_norm_statistics_move_once_a_step_at_the_real_weights():
    def bn_model():
        keras.utils.set_random_seed(0)
        inputs = keras.Input((3,))
        hidden = keras.layers.BatchNormalization(momentum=0.5)(keras.layers.Dense(4)(inputs))
        model = keras.Model(inputs, keras.layers.Dense(2, activation="softmax")(hidden))
        model.compile(optimizer=keras.optimizers.SGD(learning_rate=0.0), loss="categorical_crossentropy")
        return model

    model = bn_model()
    use_sam(model, 0.5)
    model.fit(X, Y, batch_size=4, epochs=1, shuffle=False, verbose=0)
    reference = bn_model()  # the same start; learning rate 0, so only the statistics can move
    reference.fit(X, Y, batch_size=4, epochs=1, shuffle=False, verbose=0)
    bn, ref = model.layers[2], reference.layers[2]
    assert not np.allclose(bn.moving_mean.numpy(), 0.0)  # they moved
    np.testing.assert_allclose(bn.moving_mean.numpy(), ref.moving_mean.numpy(), rtol=1e-6)
    np.testing.assert_allclose(bn.moving_variance.numpy(), ref.moving_variance.numpy(), rtol=1e-6)


def test_sam_radius_must_be_positive():
    with pytest.raises(ValueError, match="SAM radius must be > 0, got 0"):
        use_sam(dense_model(), 0)


def test_train_with_sam_takes_sam_steps_and_says_so(tiny_csv, tmp_path, monkeypatch):
    from ferkit.training import sam

    steps = []
    real = sam.sam_train_step
    monkeypatch.setattr(sam, "sam_train_step", lambda self, data, rho, statistics: steps.append(
        (rho, len(statistics))) or real(self, data, rho, statistics))
    cfg = TrainConfig(data=str(tiny_csv({"Training": 64, "PublicTest": 16})), model="compact", epochs=1,
                      batch_size=32, out=str(tmp_path), name="smoke", precision="float32", holdout=0.0)
    fit.train(replace(cfg, sam=0.05))
    run_dir = tmp_path / "smoke"
    assert steps and {rho for rho, _ in steps} == {0.05}
    assert steps[0][1] == 2 * sum(isinstance(layer, keras.layers.BatchNormalization)
                                  for layer in keras.models.model_from_json((run_dir / "model.json").read_text())
                                  ._flatten_layers(include_self=False, recursive=True))
    assert json.loads((run_dir / "train_config.json").read_text())["sam"] == 0.05
    assert "sharpness-aware (SAM, radius 0.05)" in (run_dir / "MODEL_CARD.md").read_text()
    assert (run_dir / "model.onnx").is_file()  # the checkpoint loads into the plain network and exports
