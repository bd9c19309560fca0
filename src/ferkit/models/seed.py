"""The seed notebook's CNN, layer for layer: 4 conv blocks, 2 dense blocks, softmax (4.48 M params)."""

from __future__ import annotations

import keras
from keras import layers

from .layers import classifier_head, pixels_input
from .registry import register_model


@register_model("seed", "the seed design: 4 conv + 2 dense layers, Adam 5e-4", optimizer="adam", learning_rate=5e-4)
def build_seed(input_shape, num_classes, dropout: float = 0.25):
    inputs, x = pixels_input(input_shape)
    for filters, kernel in ((64, 3), (128, 5), (512, 3), (512, 3)):
        x = layers.Conv2D(filters, (kernel, kernel), padding="same")(x)
        x = layers.BatchNormalization()(x)
        x = layers.Activation("relu")(x)
        x = layers.MaxPooling2D(pool_size=(2, 2))(x)
        x = layers.Dropout(dropout)(x)
    x = layers.Flatten()(x)
    for units in (256, 512):
        x = layers.Dense(units)(x)
        x = layers.BatchNormalization()(x)
        x = layers.Activation("relu")(x)
        x = layers.Dropout(dropout)(x)
    return keras.Model(inputs, classifier_head(x, num_classes), name="seed")
