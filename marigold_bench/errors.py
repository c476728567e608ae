"""Errors a user can act on. The CLI prints their message (no traceback) and exits with code 2.

All of them live here, so that a caller can catch one kind wherever it is raised (e.g. a
`CheckpointError` from loading and from converting a base model is the same class)."""


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


class OtherSamplesError(CacheMismatchError):
    """A run directory holds predictions (or results) of another benchmark or split than the run
    asked to go there: sample ids may coincide, the images do not."""


class CheckpointError(BenchError):
    """A checkpoint cannot be found, lacks a component, or is not shaped like a Marigold or SD-v2
    checkpoint."""


class InputImageError(BenchError):
    """An input image cannot be read or has a layout/value range the predictor cannot use."""


class InferenceSettingsError(BenchError):
    """An inference setting is invalid or unavailable on this machine (e.g. ``--device cuda``)."""


class DownloadError(BenchError):
    """A download failed or its checksum did not match."""


class TrainConfigError(BenchError):
    """The training configuration file is missing, malformed or inconsistent."""


class TrainingDataError(BenchError):
    """Training data cannot provide a batch (e.g. no sample with valid depth)."""


class TrainingError(BenchError):
    """Training stopped: the loss diverged, or a resume/output problem the user can fix."""


class ResumeMismatchError(TrainingError):
    """The checkpoint was made with another configuration."""


class ArchiveChecksumError(DataRootError):
    """A data archive no longer has the sha256 recorded beside it when it was downloaded."""


class UndefinedAlignmentError(BenchError):
    """An evaluation protocol does not define the asked alignment in the asked fit space (e.g.
    MoGe has no scale-only fit of disparity); a sensitivity table marks such a row instead."""


class FrameError(BenchError, ValueError):
    """A camera frame for surface normals that the suite does not know (see
    :mod:`marigold_bench.frames`), or normals whose last axis is not 3 components."""


class DiskFullError(BenchError):
    """The disk (or quota) holding a run directory is full: nothing more can be written there
    until space is freed; a rerun of the same command then resumes from the cache."""


class DamagedEntryError(PredictionError):
    """A stored prediction fails its checksum (a write that never reached the disk, or a kill
    while writing it): it is predicted again by ``run`` and reported, never scored, elsewhere."""


class LauncherError(BenchError):
    """A leaderboard launcher cannot start: submitit is missing, or a launcher setting or flag is
    wrong (e.g. a Slurm flag given with ``--launcher local``)."""


class MissingPackageError(CheckpointError):
    """A model family needs a package that is not installed (and not a dependency of the suite,
    e.g. MoGe, which is not on PyPI); the message names the command that installs it."""
