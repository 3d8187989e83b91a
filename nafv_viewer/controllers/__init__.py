"""What the reading window does, apart from drawing: opening studies and running the analysis.

Each controller is a QObject with signals and no widgets, so it works (and is
tested) without a window; the main window connects widgets to it.
"""
