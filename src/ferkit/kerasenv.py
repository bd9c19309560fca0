"""Process environment Keras and torch read once, at their first import: set before either loads."""

from __future__ import annotations

import os


def keras_defaults() -> None:
    """Keras on torch (its own default, TensorFlow, is not installed) and OpenMP threads that spin
    (with the default passive policy training ran ~10x slower on 2-core machines); a value the user
    set wins."""
    os.environ.setdefault("KERAS_BACKEND", "torch")
    os.environ.setdefault("OMP_WAIT_POLICY", "ACTIVE")
    # ...but not forever: under ACTIVE libgomp spins 30 billion rounds between parallel regions, so
    # ONNX Runtime called inside training (a consistent teacher) shared two cores with a spinning
    # thread: 562 ms a batch against 280 ms; 100,000 rounds keep the training step's speed (229 vs 233 ms).
    os.environ.setdefault("GOMP_SPINCOUNT", "100000")
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
