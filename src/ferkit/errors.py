"""Errors that reach the user as one clear line (the CLI turns them into exit code 2)."""


class FerkitError(Exception):
    """Base class: anything the user can fix (bad file, bad option, missing model)."""


class DataError(FerkitError):
    """A data file is missing, malformed or empty."""


class ModelError(FerkitError):
    """A model file or name cannot be loaded."""


class MediaError(FerkitError):
    """An image or video cannot be read or written."""
