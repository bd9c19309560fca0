"""Model registry and architectures (importing this package imports Keras)."""

from . import seed, vgg  # noqa: F401  (registers the families)
from .registry import ModelSpec, create_model, get_spec, list_models, register_model

__all__ = ["ModelSpec", "create_model", "get_spec", "list_models", "register_model"]
