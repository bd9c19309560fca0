"""Package data: the bundled classifier models (models/) and the face detector (detectors/).

Read them through `ferkit.config.default_models_dir()` / `bundled_detector_path()`, which use
importlib.resources, so an installed wheel finds them without a source checkout.
"""
