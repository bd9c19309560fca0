"""Residual nets: the `compact` stages and widths with identity shortcuts.

`rescompact` costs about what `compact` does (32-256 channels, one basic block of two 3x3 convs per
stage, max-pool between stages) but adds a shortcut around every block: a different inductive bias
at the same price, so that ensemble members disagree more than seeds of one design do (issue 13).
`resmedium` has `medium`'s widths and head, with a second block at the two smallest maps, where depth is cheap.
"""

from __future__ import annotations

import keras
from keras import layers

from .layers import classifier_head, conv_bn_relu, dense_block, pixels_input
from .registry import register_model


def basic_block(x, filters: int):
    """conv-BN-ReLU, conv-BN, + shortcut (1x1 conv-BN where the width changes), ReLU."""
    shortcut = x
    if x.shape[-1] != filters:
        shortcut = layers.Conv2D(filters, 1, use_bias=False)(x)
        shortcut = layers.BatchNormalization()(shortcut)
    x = conv_bn_relu(x, filters)
    x = layers.Conv2D(filters, 3, padding="same", use_bias=False)(x)
    x = layers.BatchNormalization()(x)
    return layers.Activation("relu")(layers.Add()([x, shortcut]))


def build_residual_family(input_shape, num_classes, widths, blocks=None, stem=32, dense_units=0, dropout=0.4,
                          name="rescompact"):
    """`blocks[i]` basic blocks at stage i (default one each); stem=0: the first block takes the pixels itself."""
    inputs, x = pixels_input(input_shape)
    if stem:
        x = conv_bn_relu(x, stem)
    for stage, filters in enumerate(widths):
        for _ in range(blocks[stage] if blocks else 1):
            x = basic_block(x, filters)
        x = layers.MaxPooling2D(2, name=f"pool{stage + 1}")(x)
    x = layers.GlobalAveragePooling2D()(x)
    if dense_units:
        x = dense_block(x, dense_units, dropout)
    x = layers.Dropout(dropout)(x)
    return keras.Model(inputs, classifier_head(x, num_classes), name=name)


@register_model("rescompact", "`compact` with residual blocks (32-256), an ensemble member of a different design",
                optimizer="adamw", learning_rate=2e-3, weight_decay=0.05, schedule="cosine", label_smoothing=0.1)
def build_rescompact(input_shape, num_classes, **kwargs):
    return build_residual_family(input_shape, num_classes, widths=(32, 64, 128, 256), name="rescompact", **kwargs)


@register_model("resmedium", "`medium`'s widths (48-384) in residual blocks, two at each 12x12 and 6x6 stage: deeper "
                "where depth is cheap, a design the VGG members do not share",
                optimizer="adamw", learning_rate=2e-3, weight_decay=0.05, schedule="cosine", label_smoothing=0.1)
def build_resmedium(input_shape, num_classes, **kwargs):
    return build_residual_family(input_shape, num_classes, widths=(48, 96, 192, 384), blocks=(1, 1, 2, 2), stem=0,
                                 dense_units=384, name="resmedium", **kwargs)
