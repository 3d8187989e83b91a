"""Work-around for reference-count bugs of PySide6 6.12 under Python < 3.12.

PySide6 6.12 hands back ``None`` from every void C++ method (``hide()``,
``setText()``, ``setRect()``, ...) and ``True`` from ``SignalInstance.emit``
without taking a reference: correct on Python 3.12+, where these objects are
immortal, wrong on 3.11. Each such call drops one reference; after some
thousands of calls (a few minutes of reading: pyqtgraph calls them on every
mouse move and redraw) the interpreter deallocates ``None`` or ``True`` and
aborts ("Fatal Python error: none_dealloc" / "bool_dealloc"). We do what 3.12
does: make ``None``, ``True`` and ``False`` effectively immortal.

It is applied once, on ``import nafv_viewer`` (every viewer module is inside
that package, so it runs before any Qt call of ours), and again, idempotently,
by the ``nafv-viewer`` entry point. It is a no-op where the leak cannot or does
not happen: Python 3.12+ (immortal singletons), other interpreters (no
reference counts to patch), and any PySide6 whose probe
(:func:`leaks_singletons`) shows no lost references; patching refcounts that
are correct would be harmless but is not done without cause. Remove once
PySide6 is fixed.
"""

from __future__ import annotations

import ctypes
import sys

_PIN = 1 << 40  # never reached by decrements in a process lifetime
_applied = False


def leaks_singletons() -> bool:
    """True when void calls or emits on this PySide6 drop references to None / True."""
    from PySide6.QtCore import QObject, Signal

    class _Probe(QObject):
        ping = Signal()

    probe = _Probe()
    n = 16
    none0, true0 = sys.getrefcount(None), sys.getrefcount(True)
    for _ in range(n):
        probe.ping.emit()  # returns True
        probe.setObjectName("probe")  # void: returns None
    return none0 - sys.getrefcount(None) >= n or true0 - sys.getrefcount(True) >= n


def pin_bools_if_needed() -> bool:
    """Make None/True/False effectively immortal when this PySide6 leaks references to them."""
    global _applied
    if _applied or sys.version_info >= (3, 12) or sys.implementation.name != "cpython":
        return _applied
    if leaks_singletons():
        for obj in (None, True, False):
            # ob_refcnt is the first field of every CPython object.
            ctypes.c_ssize_t.from_address(id(obj)).value += _PIN
        _applied = True
    return _applied
