"""VGG-style nets: stages of 3x3 conv-BN-ReLU pairs, max-pool, global pooling, dropout.

`vgg` is the accurate family (Khaireddin & Chen's recipe, trimmed head); `medium` has 3/4 of its
width (about half the cost); `compact` is the same design at half the width and a quarter of the cost, fast enough for many faces per frame on a CPU.
"""

from __future__ import annotations

import keras
from keras import layers

from .layers import Upscale, classifier_head, conv_bn_relu, dense_block, pixels_input
from .registry import register_model


def build_vgg_family(input_shape, num_classes, widths, convs_per_stage=2, dense_units=0, dropout=0.4, name="vgg",
                     upscale=0):
    inputs, x = pixels_input(input_shape)
    if upscale:
        # more pixels per face, not more detail: every stage (and the last 4x4 map, not 3x3) sees the face larger
        x = Upscale(upscale, name="upscale")(x)
    for stage, filters in enumerate(widths):
        for _ in range(convs_per_stage):
            x = conv_bn_relu(x, filters)
        x = layers.MaxPooling2D(2, name=f"pool{stage + 1}")(x)
    x = layers.GlobalAveragePooling2D()(x)
    if dense_units:
        x = dense_block(x, dense_units, dropout)
    x = layers.Dropout(dropout)(x)
    return keras.Model(inputs, classifier_head(x, num_classes), name=name)


@register_model("vgg", "VGG-style, 4 stages x 2 convs (64-512), for GPU training",
                optimizer="sgd", learning_rate=0.01, weight_decay=5e-4, schedule="cosine", label_smoothing=0.1)
def build_vgg(input_shape, num_classes, **kwargs):
    return build_vgg_family(input_shape, num_classes, widths=(64, 128, 256, 512), dense_units=512, name="vgg", **kwargs)


@register_model("medium", "VGG-style at three-quarter width (48-384), an ensemble member between vgg and compact",
                optimizer="sgd", learning_rate=0.01, weight_decay=5e-4, schedule="cosine", label_smoothing=0.1)
def build_medium(input_shape, num_classes, **kwargs):
    return build_vgg_family(input_shape, num_classes, widths=(48, 96, 192, 384), dense_units=384, name="medium", **kwargs)


@register_model("medium64", "`medium` on the face upscaled to 64x64 inside the net (1.8x the cost; `medium` weights fit)",
                optimizer="sgd", learning_rate=0.01, weight_decay=5e-4, schedule="cosine", label_smoothing=0.1)
def build_medium64(input_shape, num_classes, **kwargs):
    return build_vgg_family(input_shape, num_classes, widths=(48, 96, 192, 384), dense_units=384, name="medium64",
                            upscale=64, **kwargs)


@register_model("compact", "VGG-style at quarter width (32-256), fast on a CPU",
                optimizer="adamw", learning_rate=2e-3, weight_decay=0.05, schedule="cosine", label_smoothing=0.1)
def build_compact(input_shape, num_classes, **kwargs):
    return build_vgg_family(input_shape, num_classes, widths=(32, 64, 128, 256), name="compact", **kwargs)
