"""ferkit: facial expression recognition, from training to live video."""

import os

# Cap decoded image size before OpenCV loads (it reads this once): a small PNG can declare a
# gigapixel image, and a decompression bomb must fail as a bad upload, not exhaust memory.
os.environ.setdefault("OPENCV_IO_MAX_IMAGE_PIXELS", str(64_000_000))

__version__ = "0.1.0"
