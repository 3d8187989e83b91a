"""Finer pyramid levels decoded in worker threads when the zoom asks for them.

A panel that wants a level its image has not decoded yet (a JPEG 2000 image
zoomed in, see :meth:`nafv_viewer.display.DisplayImage.ensure`) asks
:func:`request`; the decode runs in a small thread pool, never on the GUI
thread, and ``LEVELS.ready(image, level)`` (or ``failed(image, level,
message)``) arrives in the GUI thread when it is done. A level asked for twice
is decoded once.
"""

from __future__ import annotations

import threading
from concurrent.futures import ThreadPoolExecutor

from PySide6.QtCore import QObject, Signal

from core_model.domain.errors import NafvError
from nafv_viewer.display import DisplayImage


class LevelLoader(QObject):
    ready = Signal(object, int)
    failed = Signal(object, int, str)

    def __init__(self, workers: int = 2):
        super().__init__()
        self._pool = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="nafv-level")
        self._pending: set[tuple[int, int]] = set()
        self._lock = threading.Lock()

    def pending(self, image: DisplayImage, level: int) -> bool:
        with self._lock:
            return (id(image), level) in self._pending

    def request(self, image: DisplayImage, level: int) -> bool:
        """Start decoding ``level`` of ``image`` unless it is decoded or under way; True when started."""
        if image.levels[level] is not None:
            return False
        key = (id(image), level)
        with self._lock:
            if key in self._pending:
                return False
            self._pending.add(key)
        self._pool.submit(self._work, image, level, key)
        return True

    def _work(self, image: DisplayImage, level: int, key) -> None:
        try:
            image.ensure(level)
        except NafvError as err:
            message = str(err)
        except Exception as err:  # noqa: BLE001 - the coarser level stays on screen; the reader is told why
            message = f"{type(err).__name__}: {err}"
        else:
            message = None
        with self._lock:
            self._pending.discard(key)
        if message is None:
            self.ready.emit(image, level)
        else:
            self.failed.emit(image, level, message)


_LOADER: LevelLoader | None = None


def loader() -> LevelLoader:
    """The process's level loader (made in the GUI thread on first use)."""
    global _LOADER
    if _LOADER is None:
        _LOADER = LevelLoader()
    return _LOADER
