"""Model registry and architectures (importing this package imports Keras)."""

import os

# Keras picks its backend once, at its first import, and defaults to TensorFlow, which ferkit does not
# install: a plain `import ferkit.models` must land on torch too, not only the CLI (training/backend.py).
os.environ.setdefault("KERAS_BACKEND", "torch")
os.environ.setdefault("OMP_WAIT_POLICY", "ACTIVE")  # before torch loads: 10x faster on 2 cores

from . import seed, vgg  # noqa: E402, F401  (registers the families)
from .registry import ModelSpec, create_model, get_spec, list_models, register_model  # noqa: E402

__all__ = ["ModelSpec", "create_model", "get_spec", "list_models", "register_model"]
