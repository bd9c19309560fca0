"""Inference: the classifier runtime, the per-frame pipeline and the smoother (no Keras, no torch)."""
