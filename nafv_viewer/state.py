"""Qt-free view state of the reading window; widgets bind to its change events.

Everything the reader can toggle lives here (layout, energy, sync, window/level
per energy, invert, overlays, compare mode), so the logic is testable and
scriptable without a window. Setting an attribute to a new value emits
``(name, value)`` to every listener; setting the same value emits nothing,
which keeps widget <-> state bindings free of update loops.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable

from core_model.domain.study import ENERGIES

LAYOUTS = ("4up", "8up", "1up")
COMPARE_MODES = ("off", "blink", "swipe")

# Window presets per energy as (centre, width) in units of each image's display
# range (0 = its dark end, 1 = its bright end, the file's VOI window when it has
# one). LE reads like a mammogram; RC has a dark background and the enhancement
# sits in the upper part of the range.
PRESETS: dict[str, dict[str, tuple[float, float]]] = {
    "le": {"Full range": (0.5, 1.0), "Dense breast": (0.65, 0.6), "Soft tissue": (0.45, 0.7), "High contrast": (0.55, 0.4)},
    "rc": {"Full range": (0.5, 1.0), "Enhancement": (0.6, 0.6), "Subtle enhancement": (0.45, 0.45), "Strong enhancement": (0.75, 0.5)},
}
DEFAULT_PRESET = "Full range"
MIN_WIDTH = 0.01


@dataclass(frozen=True)
class Window:
    center: float
    width: float

    def bounds(self) -> tuple[float, float]:
        return self.center - self.width / 2.0, self.center + self.width / 2.0


class ViewerState:
    """The reader's choices; listeners get ``callback(name, value)`` on every change."""

    def __init__(self) -> None:
        self._listeners: list[Callable[[str, Any], None]] = []
        self.layout = "4up"
        self.energy = "le"
        self.sync = True
        self.invert = False
        self.windows = {e: Window(*PRESETS[e][DEFAULT_PRESET]) for e in ENERGIES}
        self.show_contours = True
        self.show_heatmap = True
        self.heatmap_opacity = 0.45
        self.magnifier = False
        self.compare = "off"
        self.active_view = "R_CC"  # the view 1-up, blink and swipe act on
        self.swipe_position = 0.5  # fraction of the image width showing LE (left part)
        self.auto_analyze = False

    # -- events ------------------------------------------------------------
    def subscribe(self, callback: Callable[[str, Any], None]) -> None:
        self._listeners.append(callback)

    def _set(self, name: str, value: Any) -> None:
        if getattr(self, name, object()) == value:
            return
        object.__setattr__(self, name, value)
        for cb in list(self._listeners):
            cb(name, value)

    def __setattr__(self, name: str, value: Any) -> None:
        if name.startswith("_") or "_listeners" not in self.__dict__:
            object.__setattr__(self, name, value)
            return
        self._validate(name, value)
        self._set(name, value)

    @staticmethod
    def _validate(name: str, value: Any) -> None:
        if name == "layout" and value not in LAYOUTS:
            raise ValueError(f"layout must be one of {LAYOUTS}")
        if name == "energy" and value not in ENERGIES:
            raise ValueError(f"energy must be one of {ENERGIES}")
        if name == "compare" and value not in COMPARE_MODES:
            raise ValueError(f"compare must be one of {COMPARE_MODES}")

    # -- actions (the keyboard shortcuts call these) --------------------------
    def toggle_energy(self) -> None:
        self.energy = "rc" if self.energy == "le" else "le"

    def cycle_layout(self) -> None:
        self.layout = LAYOUTS[(LAYOUTS.index(self.layout) + 1) % len(LAYOUTS)]

    @property
    def window(self) -> Window:
        """Window of the energy currently shown."""
        return self.windows[self.energy]

    def set_window(self, energy: str, center: float, width: float) -> None:
        w = Window(float(min(2.0, max(-1.0, center))), float(min(4.0, max(MIN_WIDTH, width))))
        if self.windows.get(energy) == w:
            return
        windows = dict(self.windows)
        windows[energy] = w
        self._set("windows", windows)

    def adjust_window(self, energy: str, d_center: float, d_width: float) -> None:
        """Relative change, as a drag produces it (width scales multiplicatively)."""
        w = self.windows[energy]
        self.set_window(energy, w.center + d_center, w.width * (2.0**d_width))

    def apply_preset(self, name: str, energy: str | None = None) -> None:
        energy = energy or self.energy
        if name not in PRESETS[energy]:
            raise ValueError(f"no {energy.upper()} preset called {name!r}; have {list(PRESETS[energy])}")
        self.set_window(energy, *PRESETS[energy][name])

    def reset_display(self) -> None:
        """Reset window/level of both energies and invert (zoom is reset by the grid)."""
        for e in ENERGIES:
            self.apply_preset(DEFAULT_PRESET, e)
        self.invert = False
        self.compare = "off"

    def toggle(self, name: str) -> None:
        self.__setattr__(name, not getattr(self, name))
