"""NaFV Viewer: the CEM reading window (PySide6 + pyqtgraph) on top of core_model."""

from nafv_viewer.qt_compat import pin_bools_if_needed

pin_bools_if_needed()
