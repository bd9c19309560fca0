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
