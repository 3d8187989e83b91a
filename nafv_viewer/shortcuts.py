"""The reading window's keyboard shortcuts and mouse gestures: one table for the menus, the keys and F1.

Each :class:`Shortcut` names its menu, key, what it does in the reader's
words, and the command it runs on the window. The window builds its actions
from :data:`SHORTCUTS`; the F1 help lists :func:`help_rows`, the same table,
so the help cannot drift from the keys.
"""

from __future__ import annotations

from typing import Any, Callable, NamedTuple


class Shortcut(NamedTuple):
    menu: str  # file, view, analysis, review, help
    key: str  # as QKeySequence reads it
    description: str
    command: Callable[[Any], Any]  # called with the main window


MENUS = {"file": "&File", "view": "&View", "analysis": "&Analysis", "review": "&Review", "help": "&Help"}


def _set_layout(name: str) -> Callable[[Any], None]:
    return lambda w: setattr(w.state, "layout", name)


def _toggle(flag: str) -> Callable[[Any], None]:
    return lambda w: w.state.toggle(flag)


def _window(dlevel: float, dwidth: float) -> Callable[[Any], None]:
    return lambda w: w.state.adjust_window(w.state.energy, dlevel, dwidth)


def _review(fn: Callable[[Any], Any]) -> Callable[[Any], Any]:
    return lambda w: fn(w.review_flow)


def _delete_selected(flow: Any) -> None:
    if flow.controller is not None:
        flow.controller.delete_selected()


def _toggle_rejected(w: Any) -> None:
    w.editor.set_show_rejected(not w.editor.show_rejected)


SHORTCUTS: list[Shortcut] = [
    Shortcut("file", "Ctrl+O", "Open a study folder…", lambda w: w.open_dialog()),
    Shortcut("view", "E", "Switch energy LE ↔ RC (geometry kept)", lambda w: w.state.toggle_energy()),
    Shortcut("view", "L", "Next layout (4-up, 8-up, 1-up)", lambda w: w.state.cycle_layout()),
    Shortcut("view", "4", "4-up layout", _set_layout("4up")),
    Shortcut("view", "8", "8-up layout (LE and RC side by side)", _set_layout("8up")),
    Shortcut("view", "1", "1-up layout (active view)", _set_layout("1up")),
    Shortcut("view", "Tab", "Next view (active view for 1-up)", lambda w: w.next_view()),
    Shortcut("view", "Y", "Sync zoom/pan across views on/off", _toggle("sync")),
    Shortcut("view", "I", "Invert grey levels", _toggle("invert")),
    Shortcut("view", "Home", "Reset zoom, pan, window/level and invert", lambda w: w.reset_view()),
    Shortcut("view", "M", "Magnifier on/off", _toggle("magnifier")),
    Shortcut("view", "B", "Blink LE/RC of each view", lambda w: w.toggle_compare("blink")),
    Shortcut("view", "W", "Swipe LE/RC (divider follows the cursor)", lambda w: w.toggle_compare("swipe")),
    Shortcut("view", "Ctrl+H", "Mirror the active view left-right (if it is hung wrongly)", lambda w: w.flip_active(True)),
    Shortcut("view", "Ctrl+V", "Flip the active view top-bottom (if it is hung wrongly)", lambda w: w.flip_active(False)),
    Shortcut("view", "+", "Zoom in", lambda w: w.zoom(0.8)),
    Shortcut("view", "-", "Zoom out", lambda w: w.zoom(1.25)),
    Shortcut("view", "Up", "Window level up (brighter)", _window(-0.05, 0.0)),
    Shortcut("view", "Down", "Window level down (darker)", _window(0.05, 0.0)),
    Shortcut("view", "Left", "Narrower window (more contrast)", _window(0.0, -0.25)),
    Shortcut("view", "Right", "Wider window (less contrast)", _window(0.0, 0.25)),
    Shortcut("view", "Shift+Left", "Pan left", lambda w: w.pan(-0.1, 0.0)),
    Shortcut("view", "Shift+Right", "Pan right", lambda w: w.pan(0.1, 0.0)),
    Shortcut("view", "Shift+Up", "Pan up", lambda w: w.pan(0.0, -0.1)),
    Shortcut("view", "Shift+Down", "Pan down", lambda w: w.pan(0.0, 0.1)),
    *(Shortcut("view", f"F{i + 5}", f"Window preset {i + 1} (per energy)", lambda w, i=i: w.preset(i)) for i in range(4)),
    Shortcut("analysis", "Ctrl+Return", "Run the AI analysis", lambda w: w.run_analysis()),
    Shortcut("analysis", "Esc", "Cancel the contour being drawn, else the running analysis", lambda w: w.escape()),
    Shortcut("analysis", "C", "Lesion contours on/off", _toggle("show_contours")),
    Shortcut("analysis", "H", "Heatmap on/off", _toggle("show_heatmap")),
    Shortcut("analysis", "]", "Heatmap more opaque", lambda w: w.change_opacity(0.1)),
    Shortcut("analysis", "[", "Heatmap more transparent", lambda w: w.change_opacity(-0.1)),
    Shortcut("review", "A", "Accept the selected finding", _review(lambda f: f.accept_selected())),
    Shortcut("review", "R", "Reject the selected finding", _review(lambda f: f.reject_selected())),
    Shortcut("review", "N", "Next finding: select it and zoom to it", _review(lambda f: f.step_finding(1))),
    Shortcut("review", "P", "Previous finding: select it and zoom to it", _review(lambda f: f.step_finding(-1))),
    Shortcut("review", "D", "Draw a new contour on a view (click its points)", lambda w: w.editor.start_draw()),
    Shortcut("review", "Return", "Close the contour being drawn", lambda w: w.editor.finish_draw()),
    Shortcut("review", "Delete", "Delete the selected finding", _review(_delete_selected)),
    Shortcut("review", "Ctrl+Z", "Undo the last review change", _review(lambda f: f.undo())),
    Shortcut("review", "Ctrl+Shift+Z", "Redo", _review(lambda f: f.redo())),
    Shortcut("review", "Shift+C", "Rejected contours shown faint / hidden", _toggle_rejected),
    Shortcut("review", "Ctrl+Shift+F", "Finalise (sign) the review, or the open addendum: it is then locked",
             _review(lambda f: f.finalise())),
    Shortcut("review", "Ctrl+Shift+A", "Open an addendum to change a finalised review…", _review(lambda f: f.start_addendum())),
    Shortcut("file", "Ctrl+P", "Export the PDF report…", _review(lambda f: f.export("pdf"))),
    Shortcut("file", "Ctrl+Shift+S", "Export DICOM SEG of accepted/edited contours…", _review(lambda f: f.export("seg"))),
    Shortcut("file", "Ctrl+J", "Export the review as JSON…", _review(lambda f: f.export("json"))),
    Shortcut("file", "Ctrl+Shift+E", "Export all (PDF, DICOM SEG, JSON)…", _review(lambda f: f.export("all"))),
    Shortcut("help", "F1", "Keyboard shortcuts", lambda w: w.show_shortcuts()),
    Shortcut("file", "Ctrl+Q", "Quit", lambda w: w.close()),
]

# Mouse gestures: in the F1 help after the keys; no action of their own.
MOUSE_ROWS: list[tuple[str, str]] = [
    ("Right-drag / Ctrl+left-drag", "Window/level: left-right = width, up-down = level"),
    ("Left-drag / wheel", "Pan / zoom at the cursor"),
    ("Click a view", "Make it the active view"),
    ("Click a contour", "Select the finding (the findings list follows)"),
    ("Drag a square handle", "Move that vertex of the selected contour"),
    ("Shift+click", "Add a vertex to the selected contour on its nearest side"),
    ("Shift+click a contour on the other view", "Link it with the selected one (same lesion in CC and MLO)"),
    ("Ctrl+click / right-click a handle", "Remove that vertex"),
    ("D, clicks, Enter / double-click", "Draw a finding the AI missed; Esc cancels"),
    ("Findings list: Up / Down", "Move the selection (the list must have the focus)"),
    ("Findings list: A / R / Delete", "Accept / reject / delete; Link CC+MLO with two rows selected"),
]


def help_rows() -> list[tuple[str, str]]:
    """(key or gesture, what it does) for every shortcut, then the mouse gestures: what F1 lists."""
    return [(s.key, s.description) for s in SHORTCUTS] + MOUSE_ROWS
