"""Small building blocks shared by the model families."""

from __future__ import annotations

import keras
from keras import layers


def pixels_input(input_shape):
    """Input of raw 0..255 pixels, scaled inside the model so every caller feeds the same thing."""
    inputs = keras.Input(shape=input_shape, name="face")
    return inputs, layers.Rescaling(1.0 / 255.0, name="scale")(inputs)


def conv_bn_relu(x, filters: int, kernel_size: int = 3, name: str | None = None):
    x = layers.Conv2D(filters, kernel_size, padding="same", use_bias=False, name=name)(x)
    x = layers.BatchNormalization()(x)
    return layers.Activation("relu")(x)


def classifier_head(x, num_classes: int):
    # float32 softmax keeps probabilities exact under a mixed-precision policy
    return layers.Dense(num_classes, activation="softmax", dtype="float32", name="expression")(x)
