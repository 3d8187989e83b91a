"""Work-around for a reference-count bug of PySide6 6.12 under Python < 3.12.

``SignalInstance.emit`` returns ``True`` without taking a reference, so every
emit (pyqtgraph emits on every mouse move and redraw) drops one reference to
``True``. After a few thousand emits the interpreter deallocates ``True`` and
aborts ("Fatal Python error: bool_dealloc"), often at exit, sometimes in the
middle of a reading session. Python 3.12+ makes ``True``/``False`` immortal,
which is exactly the fix; here we do the same on older interpreters, only when
a probe shows the leak. Remove once PySide6 is fixed.
"""

from __future__ import annotations

import ctypes
import sys

_PIN = 1 << 40  # never reached by decrements in a process lifetime
_applied = False


def emit_leaks_true() -> bool:
    from PySide6.QtCore import QObject, Signal

    class _Probe(QObject):
        ping = Signal()

    probe = _Probe()
    before = sys.getrefcount(True)
    for _ in range(16):
        probe.ping.emit()
    return before - sys.getrefcount(True) >= 16


def pin_bools_if_needed() -> bool:
    """Make True/False effectively immortal when this PySide6 leaks references to them."""
    global _applied
    if _applied or sys.version_info >= (3, 12) or sys.implementation.name != "cpython":
        return _applied
    if emit_leaks_true():
        for obj in (True, False):
            ctypes.c_ssize_t.from_address(id(obj)).value += _PIN
        _applied = True
    return _applied
