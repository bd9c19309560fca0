"""One registry of model families by name, timm-style: create_model("vgg") builds any of them.

Every builder has the same signature, builder(input_shape, num_classes, **kwargs) -> keras.Model,
takes raw pixels (0..255, shape (N, 48, 48, 1)) and ends in a softmax, so every model is
interchangeable for training, export and inference. Each entry also carries the optimizer
settings it was designed with.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable

from ..errors import ModelError
from ..labels import IMAGE_SIZE, NUM_CLASSES


@dataclass(frozen=True)
class ModelSpec:
    name: str
    builder: Callable
    description: str
    optimizer: str = "adam"  # adam | adamw | sgd
    learning_rate: float = 1e-3
    weight_decay: float = 0.0
    schedule: str = "plateau"  # plateau | cosine
    label_smoothing: float = 0.0
    defaults: dict = field(default_factory=dict)


_REGISTRY: dict[str, ModelSpec] = {}


def register_model(name: str, description: str, **training_defaults):
    def decorator(builder: Callable) -> Callable:
        _REGISTRY[name] = ModelSpec(name=name, builder=builder, description=description, **training_defaults)
        return builder
    return decorator


def list_models() -> list[str]:
    return sorted(_REGISTRY)


def get_spec(name: str) -> ModelSpec:
    try:
        return _REGISTRY[name]
    except KeyError:
        raise ModelError(f"unknown model {name!r} (available: {', '.join(list_models())})") from None


def create_model(name: str, input_shape=(IMAGE_SIZE, IMAGE_SIZE, 1), num_classes: int = NUM_CLASSES, **kwargs):
    return get_spec(name).builder(input_shape=input_shape, num_classes=num_classes, **kwargs)
