"""NaFV Viewer: the CEM reading window (PySide6 + pyqtgraph) on top of core_model."""

from nafv_viewer.qt_compat import pin_bools_if_needed

# Before any Qt call of the viewer: see qt_compat (a no-op where PySide6 does not leak).
pin_bools_if_needed()
