"""Small building blocks shared by the model families."""

from __future__ import annotations

import keras
from keras import layers


def pixels_input(input_shape):
    """Input of raw 0..255 pixels, scaled inside the model so every caller feeds the same thing."""
    inputs = keras.Input(shape=input_shape, name="face")
    return inputs, layers.Rescaling(1.0 / 255.0, name="scale")(inputs)


@keras.saving.register_keras_serializable(package="ferkit")
class Upscale(layers.Layer):
    """Bilinear resize to size x size inside the net. Keras' own Resizing layer does not export to ONNX under the
    torch backend (its trace leaves BatchNorm in training mode); this one does, and still loads from model.json."""

    def __init__(self, size: int, **kwargs):
        super().__init__(**kwargs)
        self.size = size

    def call(self, x):
        return keras.ops.image.resize(x, (self.size, self.size), interpolation="bilinear")

    def compute_output_shape(self, input_shape):
        return (input_shape[0], self.size, self.size, input_shape[3])

    def get_config(self):
        return {**super().get_config(), "size": self.size}


def conv_bn_relu(x, filters: int, kernel_size: int = 3, name: str | None = None):
    x = layers.Conv2D(filters, kernel_size, padding="same", use_bias=False, name=name)(x)
    x = layers.BatchNormalization()(x)
    return layers.Activation("relu")(x)


def dense_block(x, units: int, dropout: float):
    """Dropout, then a BN-ReLU dense layer: the hidden head of the families that have one."""
    x = layers.Dropout(dropout)(x)
    x = layers.Dense(units, use_bias=False)(x)
    x = layers.BatchNormalization()(x)
    return layers.Activation("relu")(x)


def classifier_head(x, num_classes: int):
    # float32 softmax keeps probabilities exact under a mixed-precision policy
    return layers.Dense(num_classes, activation="softmax", dtype="float32", name="expression")(x)


def averaged_views(net, views: int):
    """`net` as a two-view graph ships it (ensemble.py): probabilities averaged over the face and its mirror
    image, the one set of weights shared. views=1 is `net` itself."""
    if views == 1:
        return net
    if views != 2:
        raise ValueError(f"{views} training views: expected 1 or 2")
    face = keras.Input(shape=net.input_shape[1:], name="face")
    # float32: pixels and probabilities pass through unrounded under a mixed-precision policy
    mirrored = layers.Lambda(lambda x: keras.ops.flip(x, axis=2), dtype="float32", name="mirror")(face)
    mean = layers.Average(dtype="float32", name="views")([net(face), net(mirrored)])
    return keras.Model(face, mean, name=f"{net.name}_views{views}")
