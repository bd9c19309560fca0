"""ferkit: facial expression recognition, from training to live video."""

__version__ = "0.1.0"
