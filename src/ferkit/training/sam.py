"""Sharpness-aware minimisation (SAM; Foret et al. 2021), for `ferkit train --sam RHO`.

Each step first climbs to the worst weights within `rho` of the current ones (along the normalised
gradient), takes the gradient there, and applies that gradient to the current weights. It seeks
flat minima; the paper's largest gains were on noisy labels, which FER2013 has. A step costs two
forward and backward passes. The model, its weights and their files are unchanged: only `fit`'s
step is replaced, so checkpoints, resume and export work as without it.
"""

from __future__ import annotations

import types

import keras


def batch_norm_statistics(model) -> list:
    """The moving means and variances of every BatchNormalization inside `model` (nested models too)."""
    return [variable for layer in model._flatten_layers(include_self=False, recursive=True)
            if isinstance(layer, keras.layers.BatchNormalization)
            for variable in (layer.moving_mean, layer.moving_variance)]


def sam_train_step(self, data, rho: float, statistics: list):
    """Model.train_step for the torch backend (as Keras' own, with SAM's second pass); `statistics`:
    batch_norm_statistics(self)."""
    import torch

    x, y, sample_weight = keras.utils.unpack_x_y_sample_weight(data)
    weights = self.trainable_weights[:]

    # 1. the gradient at the current weights; the loss and metrics reported are this pass's
    self.zero_grad()
    y_pred = self(x, training=True)
    loss = self._compute_loss(x=x, y=y, y_pred=y_pred, sample_weight=sample_weight, training=True)
    self._loss_tracker.update_state(loss, sample_weight=keras.ops.shape(keras.tree.flatten(x)[0])[0])
    self.optimizer.scale_loss(loss).backward()

    # 2. climb rho along it (one norm over every weight), keeping the step to undo it
    with torch.no_grad():
        grads = [w.value.grad for w in weights]
        norm = torch.sqrt(sum(torch.sum(g.float() ** 2) for g in grads if g is not None))
        scale = rho / (norm + 1e-12)
        climbs = [None if g is None else (g * scale).to(w.value.dtype) for w, g in zip(weights, grads)]
        for w, climb in zip(weights, climbs):
            if climb is not None:
                w.value.add_(climb)
        # the second pass must not move BatchNorm's statistics again: they follow the real weights only
        saved = [(v, v.value.clone()) for v in statistics]

    # 3. the gradient at the climbed weights, applied to the weights we started from
    self.zero_grad()
    climbed_loss = self._compute_loss(x=x, y=y, y_pred=self(x, training=True), sample_weight=sample_weight,
                                      training=True)
    self.optimizer.scale_loss(climbed_loss).backward()
    with torch.no_grad():
        for w, climb in zip(weights, climbs):
            if climb is not None:
                w.value.sub_(climb)
        for variable, value in saved:
            variable.value.copy_(value)
        self.optimizer.apply([w.value.grad for w in weights], weights)
    self.zero_grad()
    return self.compute_metrics(x, y, y_pred, sample_weight=sample_weight)


def use_sam(model, rho: float) -> None:
    """Make `model.fit` take SAM steps of radius `rho` (e.g. 0.05); torch backend only."""
    if keras.backend.backend() != "torch":
        raise NotImplementedError(f"--sam is written for the torch backend, not {keras.backend.backend()}")
    if not rho > 0:
        raise ValueError(f"SAM radius must be > 0, got {rho}")
    statistics = batch_norm_statistics(model)  # held here, not as model attributes: Keras would track them
    model.train_step = types.MethodType(lambda self, data: sam_train_step(self, data, float(rho), statistics), model)
