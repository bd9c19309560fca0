"""Keras set-up: the torch backend, CPU threading that works on small machines, precision."""

from __future__ import annotations

from ..kerasenv import keras_defaults


def setup_keras(precision: str | None = "float32"):
    """Import Keras on the torch backend with `precision` as the global dtype policy (None: leave
    the policy as it is).

    OMP_WAIT_POLICY=ACTIVE must be set before torch loads: with the default passive policy
    training ran ~10x slower on 2-core machines. ferkit's own layers (e.g. `medium64`'s Upscale) are
    registered too, so that model_from_json reads any ferkit model.json.
    """
    keras_defaults()
    import keras

    from ..models import layers  # noqa: F401  (registers ferkit's serializable layers)

    if precision:
        keras.config.set_dtype_policy(precision)
    return keras
