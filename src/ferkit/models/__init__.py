"""Model registry and architectures (importing this package imports Keras)."""

from ..kerasenv import keras_defaults

keras_defaults()  # a plain `import ferkit.models` must land on torch too, not only the CLI's setup_keras

from . import resnet, seed, vgg  # noqa: E402, F401  (registers the families)
from .registry import ModelSpec, create_model, get_spec, list_models, register_model  # noqa: E402

__all__ = ["ModelSpec", "create_model", "get_spec", "list_models", "register_model"]
