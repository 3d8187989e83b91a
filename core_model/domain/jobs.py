"""Progress and cancellation for long work, usable from a CLI or a GUI worker thread."""

from __future__ import annotations

import threading
from typing import Callable, Optional

from core_model.domain.errors import Cancelled

# progress(stage, fraction): stage is a short human label ("segmentation"),
# fraction the overall completion in [0, 1].
ProgressCallback = Callable[[str, float], None]


class CancelToken:
    """Set from any thread; long work calls :meth:`check` between steps (at most ~1 s apart)."""

    def __init__(self) -> None:
        self._event = threading.Event()

    def cancel(self) -> None:
        self._event.set()

    @property
    def cancelled(self) -> bool:
        return self._event.is_set()

    def check(self) -> None:
        if self._event.is_set():
            raise Cancelled()


def report(progress: Optional[ProgressCallback], stage: str, fraction: float) -> None:
    if progress is not None:
        progress(stage, min(1.0, max(0.0, float(fraction))))
