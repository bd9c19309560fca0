"""Process environment Keras and torch read once, at their first import: set before either loads."""

from __future__ import annotations

import os


def keras_defaults() -> None:
    """Keras on torch (its own default, TensorFlow, is not installed) and OpenMP threads that spin
    (with the default passive policy training ran ~10x slower on 2-core machines); a value the user
    set wins."""
    os.environ.setdefault("KERAS_BACKEND", "torch")
    os.environ.setdefault("OMP_WAIT_POLICY", "ACTIVE")
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
