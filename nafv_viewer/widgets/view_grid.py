"""The hanging: panels laid out 4-up (R-CC | L-CC over R-MLO | L-MLO), 8-up (LE pairs | RC pairs) or 1-up.

The grid routes state changes to the panels and keeps their geometry linked:
panels of the same view (LE and RC) always share zoom/pan; with sync on, all
views do, mirrored between right and left so that zooming toward one chest
wall zooms toward the other.
"""

from __future__ import annotations

from typing import Any

from PySide6.QtCore import QTimer
from PySide6.QtWidgets import QGridLayout, QStackedWidget, QWidget

from core_model.domain.study import ENERGY_NAMES, VIEW_KEYS, Study
from nafv_viewer.display import DisplayImage
from nafv_viewer.hanging import mirrored
from nafv_viewer.state import ViewerState
from nafv_viewer.widgets.view_panel import ViewPanel

BLINK_MS = 600
# Window/level drag sensitivity: screen pixels per unit of the display range.
WL_PIXELS_PER_UNIT = 400.0


class ViewGrid(QStackedWidget):
    def __init__(self, state: ViewerState, parent: QWidget | None = None):
        super().__init__(parent)
        self.state = state
        self._syncing = False
        self.analysis = None

        # 4-up / 1-up page: one panel per view, showing the current energy.
        self.page4 = QWidget()
        g4 = QGridLayout(self.page4)
        g4.setContentsMargins(0, 0, 0, 0)
        g4.setSpacing(2)
        self.panels4: dict[str, ViewPanel] = {}
        for i, key in enumerate(VIEW_KEYS):
            p = ViewPanel(key, state)
            self.panels4[key] = p
            g4.addWidget(p, i // 2, i % 2)
        # 8-up page: each mirrored pair in LE then RC, CC row over MLO row.
        self.page8 = QWidget()
        g8 = QGridLayout(self.page8)
        g8.setContentsMargins(0, 0, 0, 0)
        g8.setSpacing(2)
        self.panels8: dict[tuple[str, str], ViewPanel] = {}
        for i, key in enumerate(VIEW_KEYS):
            for j, energy in enumerate(("le", "rc")):
                p = ViewPanel(key, state, fixed_energy=energy)
                self.panels8[(key, energy)] = p
                g8.addWidget(p, i // 2, j * 2 + i % 2)
        self.addWidget(self.page4)
        self.addWidget(self.page8)

        for p in self.all_panels():
            p.range_changed.connect(self._on_range_changed)
            p.window_drag.connect(self._on_window_drag)
            p.activated.connect(self._on_activated)

        self.blink_timer = QTimer(self)
        self.blink_timer.setInterval(BLINK_MS)
        self.blink_timer.timeout.connect(self._blink)
        state.subscribe(self._on_state)
        self._apply_layout()
        self._mark_active()

    # -- panels ---------------------------------------------------------------
    def all_panels(self) -> list[ViewPanel]:
        return list(self.panels4.values()) + list(self.panels8.values())

    def visible_panels(self) -> list[ViewPanel]:
        if self.state.layout == "8up":
            return list(self.panels8.values())
        if self.state.layout == "1up":
            return [self.panels4[self.state.active_view]]
        return list(self.panels4.values())

    def panels_of(self, key: str) -> list[ViewPanel]:
        """Every panel of view ``key`` (its 4-up panel and both 8-up ones), shown or not."""
        return [p for p in self.all_panels() if p.key == key]

    def shown_image(self, key: str, energy: str) -> DisplayImage | None:
        """The image of slot (``key``, ``energy``) as hung on screen now, or None when it has none."""
        return self.panels8[(key, energy)].images.get(energy)

    def panel(self, key: str, energy: str | None = None) -> ViewPanel:
        """The panel showing ``key`` in the current layout (``energy`` picks the 8-up one)."""
        if self.state.layout == "8up":
            return self.panels8[(key, energy or self.state.energy)]
        return self.panels4[key]

    # -- study feed -------------------------------------------------------------
    def begin_study(self, study: Study | None, keep: DisplayImage | None = None) -> None:
        """Empty every panel for ``study`` (``keep``: a preview already shown, left in place)."""
        self.analysis = None
        for p in self.all_panels():
            if keep is not None and p.images.get(keep.energy) is keep and len(p.images) == 1:
                p.view_result = None
                continue
            p.set_loading()
        if study is None:
            return
        for key in VIEW_KEYS:
            for energy in ("le", "rc"):
                if not study.has(key, energy):
                    side, view = key.split("_")
                    reason = f"Not in this study: no {ENERGY_NAMES[energy]} ({energy.upper()}) image of the {side}-{view} view was found."
                    self.panels4[key].set_missing(energy, reason)
                    self.panels8[(key, energy)].set_missing(energy, reason)

    def add_image(self, image: DisplayImage) -> None:
        """Show ``image`` (new, or replacing the same slot's image) in its 4-up and 8-up panels."""
        self.panels4[image.key].set_image(image)
        self.panels8[(image.key, image.energy)].set_image(image)
        if self.analysis is not None:
            vr = self.analysis.views.get(image.key)
            self.panels4[image.key].set_view_result(vr)
            self.panels8[(image.key, image.energy)].set_view_result(vr)

    def set_analysis(self, analysis: Any) -> None:
        self.analysis = analysis
        for p in self.all_panels():
            p.set_view_result(None if analysis is None else analysis.views.get(p.key))

    # -- geometry -----------------------------------------------------------------
    def reset_zoom(self, key: str | None = None) -> None:
        """Fit every panel again (``key``: only that view's panels)."""
        self._syncing = True
        try:
            for p in self.all_panels() if key is None else self.panels_of(key):
                p.reset_zoom()
        finally:
            self._syncing = False

    def _on_range_changed(self, src: ViewPanel) -> None:
        if self._syncing:
            return
        box = src.normalized_range()
        if box is None:
            return
        self._syncing = True
        try:
            for p in self.all_panels():
                if p is src or not p.images:
                    continue
                if p.key != src.key and not self.state.sync:
                    continue
                x0, y0, x1, y1 = box
                if mirrored(p.side, src.side):
                    x0, x1 = 1.0 - x1, 1.0 - x0
                p.set_normalized_range((x0, y0, x1, y1))
        finally:
            self._syncing = False

    def _on_window_drag(self, energy: str, dx: float, dy: float) -> None:
        # Right/left changes the width (contrast), down/up moves the level (darker/brighter).
        self.state.adjust_window(energy, dy / WL_PIXELS_PER_UNIT, dx / (WL_PIXELS_PER_UNIT / 2))

    def _on_activated(self, key: str) -> None:
        self.state.active_view = key

    def _blink(self) -> None:
        for p in self.visible_panels():
            p.set_blink_phase(not p.blink_phase)

    # -- state -> panels ------------------------------------------------------------
    def _apply_layout(self) -> None:
        layout = self.state.layout
        self.setCurrentWidget(self.page8 if layout == "8up" else self.page4)
        for key, p in self.panels4.items():
            p.setVisible(layout != "1up" or key == self.state.active_view)
        for p in self.visible_panels():
            p.redraw()

    def _mark_active(self) -> None:
        for p in self.all_panels():
            p.set_active(p.key == self.state.active_view)

    def _on_state(self, name: str, value: Any) -> None:
        if name == "active_view":
            self._mark_active()
        if name == "layout" or (name == "active_view" and self.state.layout == "1up"):
            self._apply_layout()
        elif name == "energy":
            for p in self.panels4.values():
                p.refresh()
        elif name in ("windows", "invert"):
            for p in self.all_panels():
                p.refresh_levels()
        elif name in ("show_contours", "show_heatmap"):
            for p in self.all_panels():
                p.refresh_overlays()
        elif name == "heatmap_opacity":
            for p in self.all_panels():
                p.set_heatmap_opacity(value)
        elif name == "compare":
            if value == "blink":
                self.blink_timer.start()
            else:
                self.blink_timer.stop()
            for p in self.all_panels():
                p.set_blink_phase(False)
        elif name == "swipe_position":
            for p in self.visible_panels():
                p.update_swipe()
        elif name == "magnifier" and not value:
            for p in self.all_panels():
                p.hide_magnifier()
