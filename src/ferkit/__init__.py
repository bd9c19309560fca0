"""ferkit: facial expression recognition, from training to live video."""

import os

# Cap decoded image size before OpenCV loads (it reads this once): a small PNG can declare a
# gigapixel image, and a decompression bomb must fail as a bad upload, not exhaust memory.
MAX_IMAGE_PIXELS = 64_000_000
os.environ.setdefault("OPENCV_IO_MAX_IMAGE_PIXELS", str(MAX_IMAGE_PIXELS))
# onnxruntime (1.32) otherwise writes a device id and a usage database under ~/.cache and a file in
# $TMPDIR at every model load: files nobody asked for. It reads this once, when it is imported.
os.environ.setdefault("ORT_DISABLE_TELEMETRY", "1")

__version__ = "0.1.0"

# The Python API at the top level, imported on first use (PEP 562): `import ferkit` stays free of OpenCV and
# ONNX Runtime, so the two switches above are set before either loads.
_LAZY = {
    "Config": "ferkit.config",
    "PipelineConfig": "ferkit.config",
    "DetectorConfig": "ferkit.config",
    "Pipeline": "ferkit.inference.pipeline",
    "Face": "ferkit.inference.pipeline",
    "FacialExpressionModel": "ferkit.inference.classifier",
    "read_image": "ferkit.inference.images",
    "analyse": "ferkit.quick",
    "analyse_video": "ferkit.quick",
    "CLASS_NAMES": "ferkit.labels",
}
__all__ = sorted(_LAZY)


def __getattr__(name: str):
    if name not in _LAZY:
        raise AttributeError(f"module 'ferkit' has no attribute {name!r}")
    import importlib

    value = getattr(importlib.import_module(_LAZY[name]), name)
    globals()[name] = value  # found once; later lookups skip this function
    return value


def __dir__():
    return sorted(set(globals()) | set(_LAZY))
