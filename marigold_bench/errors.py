"""Errors a user can act on. The CLI prints their message (no traceback) and exits with code 2."""


class BenchError(Exception):
    """Base class of every error the suite reports as a clear message."""


class DataRootError(BenchError):
    """A data root is missing or does not have the expected layout."""


class SplitNotFoundError(BenchError):
    """A split file could not be found or failed its checksum."""


class SampleError(BenchError):
    """One sample could not be read (missing or corrupt file); the message names the file."""

    def __init__(self, message: str, path: str | None = None):
        super().__init__(message)
        self.path = path


class PredictionError(BenchError):
    """A prediction cannot be scored (wrong shape, NaN/inf, missing)."""


class CacheMismatchError(BenchError):
    """A run directory's cache was made with other settings."""
