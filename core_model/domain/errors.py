"""The one exception type a user can meet, with a message a radiologist understands.

The CLI prints ``str(err)`` and exits 2; the viewer shows it in a dialog. Neither
shows a traceback for these.
"""

from __future__ import annotations

from pathlib import Path


class NafvError(Exception):
    """A problem the user can act on (bad input, missing weights, ...)."""

    def __init__(self, message: str, path: str | Path | None = None):
        self.path = Path(path) if path is not None else None
        self.reason = message
        super().__init__(f"{self.path}: {message}" if self.path is not None else message)


class StudyLoadError(NafvError):
    """A study (or one of its files) could not be read."""


class ModelLoadError(NafvError):
    """Weights or a model card are missing, corrupted or do not match the architecture."""


class Cancelled(NafvError):
    """Long work stopped because the user asked for it."""

    def __init__(self, message: str = "cancelled by the user"):
        super().__init__(message)


def os_error_words(err: OSError) -> str:
    """Why the system refused a file or folder, in words ("permission denied"), never "damaged".

    An OSError with an errno comes from the operating system (no permission, a
    vanished network drive, ...); the file itself may be fine.
    """
    if isinstance(err, PermissionError):
        return "permission denied"
    if err.errno is not None and err.strerror:
        return err.strerror[:1].lower() + err.strerror[1:]
    return str(err)
