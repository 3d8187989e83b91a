"""One hung view (e.g. R-CC) in one energy: image, contours, heatmap, magnifier, cursor read-out.

The panel only draws: which energy, window, overlays and compare mode it shows
come from :class:`nafv_viewer.state.ViewerState`; the images come prepared
(:class:`nafv_viewer.display.DisplayImage`) from the loading job; the overlays
from a :class:`core_model.domain.analysis.ViewResult`. It draws the pyramid level that
matches the screen, cropped to the visible part (full resolution when zoomed in).
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np
import pyqtgraph as pg
from PySide6.QtCore import QPointF, QRectF, Qt, QTimer, Signal
from PySide6.QtGui import QImage, QPixmap
from PySide6.QtWidgets import QLabel, QVBoxLayout, QWidget

from core_model.domain.study import split_view_key
from nafv_viewer.display import DisplayImage
from nafv_viewer.level_loader import loader as level_loader
from nafv_viewer.state import ViewerState
from nafv_viewer.widgets.theme import ACCENT, CONTOUR, style

pg.setConfigOptions(imageAxisOrder="row-major", antialias=False)

_HEAT_LUT = None


# A finer level is asked for once the zoom has rested this long.
LEVEL_REQUEST_DELAY_MS = 120


def heat_lut() -> np.ndarray:
    """256x4 RGBA colour table: transparent for low values, so the mammogram shows through."""
    global _HEAT_LUT
    if _HEAT_LUT is None:
        rgb = pg.colormap.get("inferno").getLookupTable(0.0, 1.0, 256, alpha=False)
        alpha = np.clip(np.linspace(-0.15, 1.0, 256), 0, 1) * 255
        _HEAT_LUT = np.column_stack([rgb, alpha]).astype(np.uint8)
    return _HEAT_LUT


def view_title(key: str, energy: str) -> str:
    side, view = split_view_key(key)
    return f"{side}-{view}  {energy.upper()}"


class GreyImageItem(pg.ImageItem):
    """ImageItem whose rendered grey image is kept as RGB32.

    pyqtgraph renders windowed grey data as an 8-bit QImage; Qt's raster engine
    converts such an image to 32-bit on every paint, which made a pan or
    window/level frame of four panels cost about three times more.
    Converting once per render keeps paints to a plain scaled blit.
    """

    _SLOW_FORMATS = (QImage.Format.Format_Grayscale8, QImage.Format.Format_Indexed8)

    def render(self) -> None:
        super().render()
        if self.qimage is not None and self.qimage.format() in self._SLOW_FORMATS:
            self.qimage = self.qimage.convertToFormat(QImage.Format.Format_RGB32)


class ReadingViewBox(pg.ViewBox):
    """ViewBox where right-drag (or Ctrl+left-drag) sets window/level; left-drag pans, wheel zooms."""

    window_drag = Signal(float, float)
    drag_hook = None  # callable(ev) -> bool: True when the review editor takes a left-drag (vertex move)

    def mouseDragEvent(self, ev, axis=None):
        if (ev.button() == Qt.MouseButton.LeftButton and not ev.modifiers() & Qt.KeyboardModifier.ControlModifier
                and self.drag_hook is not None and self.drag_hook(ev)):
            ev.accept()
            return
        wl = ev.button() == Qt.MouseButton.RightButton or (
            ev.button() == Qt.MouseButton.LeftButton and ev.modifiers() & Qt.KeyboardModifier.ControlModifier
        )
        if wl:
            ev.accept()
            d = ev.screenPos() - ev.lastScreenPos()
            self.window_drag.emit(float(d.x()), float(d.y()))
        else:
            super().mouseDragEvent(ev, axis)


class Drawn(NamedTuple):
    """What a panel draws now: which image, at which pyramid level, over which part (image coordinates)."""

    image: DisplayImage
    level: int  # 0 = full resolution, k = 1/2**k
    rect: QRectF


class ViewPanel(QWidget):
    range_changed = Signal(object)  # self, after the reader zoomed or panned this panel
    window_drag = Signal(str, float, float)  # energy shown, dx, dy (screen pixels)
    cursor_info = Signal(str)
    activated = Signal(str)  # view key clicked

    def __init__(self, key: str, state: ViewerState, fixed_energy: str | None = None, parent: QWidget | None = None):
        super().__init__(parent)
        self.key = key
        self.side, self.view_name = split_view_key(key)
        self.state = state
        self.fixed_energy = fixed_energy
        self.images: dict[str, DisplayImage] = {}
        self.missing_reason: dict[str, str] = {}
        self.view_result = None
        self.blink_phase = False
        self._drawn = None
        self._swipe_key = None
        self._cursor_scene: QPointF | None = None
        self._fitted = True  # follows resizes until the reader zooms or pans

        self.graphics = pg.GraphicsView(self)
        self.graphics.setBackground("k")
        self.vb = ReadingViewBox(lockAspect=True, invertY=True, enableMenu=False)
        self.vb.setDefaultPadding(0.01)
        self.graphics.setCentralItem(self.vb)
        self.image_item = GreyImageItem(axisOrder="row-major")
        self.swipe_item = GreyImageItem(axisOrder="row-major")
        self.heat_item = pg.ImageItem(axisOrder="row-major")
        self.heat_item.setLookupTable(heat_lut())
        self.heat_item.setLevels([0, 255])
        self.swipe_line = pg.InfiniteLine(angle=90, pen=pg.mkPen(ACCENT, width=1))
        # Heatmap under the swipe image: it belongs to LE, and swipe shows RC right of the divider.
        for z, item in enumerate((self.image_item, self.heat_item, self.swipe_item, self.swipe_line)):
            item.setZValue(z)
            self.vb.addItem(item, ignoreBounds=item is not self.image_item)
        self.contour_items: list = []
        self.editor = None  # ReviewEditor: findings of the review drawn and edited here
        self.vb.drag_hook = lambda ev: self.editor is not None and self.editor.drag(self, ev)

        self.title = QLabel(self.graphics)
        self.set_active(False)
        self.title.move(4, 4)
        self.empty_label = QLabel(self)
        self.empty_label.setAlignment(Qt.AlignmentFlag.AlignCenter)
        self.empty_label.setWordWrap(True)
        style(self.empty_label, "view_empty")
        self.magnifier = QLabel(self.graphics)
        self.magnifier.setFixedSize(180, 180)
        style(self.magnifier, "magnifier")
        self.magnifier.hide()
        # A finer level being decoded for the zoom (JPEG 2000): said in the corner until it is drawn.
        self.level_label = QLabel(self.graphics)
        style(self.level_label, "level_note")
        self.level_label.hide()
        self._wanted_level: tuple[DisplayImage, int] | None = None
        self._level_timer = QTimer(self)
        self._level_timer.setSingleShot(True)
        self._level_timer.timeout.connect(self._request_wanted)
        levels = level_loader()
        levels.ready.connect(self._on_level_ready)
        levels.failed.connect(self._on_level_failed)

        lay = QVBoxLayout(self)
        lay.setContentsMargins(1, 1, 1, 1)
        lay.addWidget(self.graphics)
        lay.addWidget(self.empty_label)
        self.empty_label.hide()

        self.vb.sigRangeChanged.connect(self._on_range)
        self.vb.sigResized.connect(self._on_resized)
        self.vb.sigRangeChangedManually.connect(self._on_manual_range)
        self.vb.window_drag.connect(self._on_window_drag)
        self.graphics.scene().sigMouseMoved.connect(self._on_mouse_moved)
        self.graphics.scene().sigMouseClicked.connect(self._on_clicked)
        self.set_loading()

    def set_active(self, active: bool) -> None:
        """The active view (1-up, zoom keys) gets a highlighted title."""
        style(self.title, "view_title_active" if active else "view_title")

    # Slots return None on purpose: PySide mishandles the reference count of
    # values (e.g. the bool of Signal.emit) returned from Python slots.
    def _on_window_drag(self, dx: float, dy: float) -> None:
        self.window_drag.emit(self.shown_energy, dx, dy)

    def _on_clicked(self, ev=None, *_) -> None:
        self.activated.emit(self.key)
        if ev is not None and self.editor is not None and self.editor.click(self, ev):
            ev.accept()

    # -- what is shown ---------------------------------------------------------
    @property
    def base_energy(self) -> str:
        return self.fixed_energy or self.state.energy

    @property
    def shown_energy(self) -> str:
        e = self.base_energy
        if self.state.compare == "blink" and self.blink_phase:
            other = "rc" if e == "le" else "le"
            if other in self.images:
                return other
        return e

    @property
    def current(self) -> DisplayImage | None:
        return self.images.get(self.shown_energy)

    @property
    def has_image(self) -> bool:
        return self.current is not None

    def set_loading(self) -> None:
        self.images.clear()
        self.missing_reason.clear()
        self.view_result = None
        self._show_empty("Loading…")

    def set_missing(self, energy: str, reason: str) -> None:
        self.missing_reason[energy] = reason
        self.images.pop(energy, None)
        self.refresh()

    def set_image(self, image: DisplayImage) -> None:
        first = not self.images
        self.images[image.energy] = image
        self.missing_reason.pop(image.energy, None)
        if first:
            self._drawn = None
        self.refresh(reset_zoom=first)

    def set_view_result(self, view_result) -> None:
        self.view_result = view_result
        self.refresh_overlays()

    def _show_empty(self, text: str) -> None:
        self.graphics.hide()
        self.empty_label.setText(text)
        self.empty_label.show()

    def refresh(self, reset_zoom: bool = False) -> None:
        """Redraw after the image, energy or compare mode changed (geometry is kept)."""
        img = self.current
        energy = self.shown_energy
        if img is None:
            reason = self.missing_reason.get(energy)
            if reason is None:
                reason = "Loading…" if not self.missing_reason else f"No {energy.upper()} image of {self.key.replace('_', '-')}"
            self._show_empty(f"{view_title(self.key, energy)}\n\n{reason}")
            return
        self.empty_label.hide()
        self.graphics.show()
        suffix = "  (blink)" if energy != self.base_energy else ""
        if self.state.compare == "swipe" and len(self.images) == 2:
            suffix = f"  | {('rc' if energy == 'le' else 'le').upper()} right of the line"
        self.title.setText(view_title(self.key, energy) + suffix)
        self.title.adjustSize()
        self._drawn = None
        self._swipe_key = None
        if reset_zoom:
            self.reset_zoom()
        self.update_lod()
        self.refresh_levels()
        self.refresh_overlays()

    # -- geometry ----------------------------------------------------------------
    def image_size(self) -> tuple[int, int] | None:
        img = self.current or next(iter(self.images.values()), None)
        return None if img is None else img.shape

    def reset_zoom(self) -> None:
        """Fit the breast, aligned to its chest-wall edge so the pair's chest walls meet in the middle."""
        img = self.current or next(iter(self.images.values()), None)
        if img is None:
            return
        h, w = img.shape
        bx0, by0, bx1, by1 = img.tissue_box or (0.0, 0.0, float(w), float(h))
        bw, bh = bx1 - bx0, by1 - by0
        margin = 0.02 * max(bw, bh)
        vw, vh = float(self.vb.width()), float(self.vb.height())
        aspect = vw / vh if vw >= 2 and vh >= 2 else bw / bh
        span_h = max(bh, bw / aspect) + 2 * margin
        span_w = span_h * aspect
        # R images have their chest wall on the right, L on the left (hanging.py):
        # spare width goes to the nipple side, outward.
        x0 = bx1 + margin - span_w if self.side == "R" else bx0 - margin
        y0 = (by0 + by1 - span_h) / 2.0
        self.vb.setRange(xRange=(x0, x0 + span_w), yRange=(y0, y0 + span_h), padding=0)
        self._fitted = True

    def normalized_range(self) -> tuple[float, float, float, float] | None:
        """Visible box as fractions of the image, in display (hung) coordinates."""
        shape = self.image_size()
        if shape is None:
            return None
        h, w = shape
        r = self.vb.viewRect()
        return r.left() / w, r.top() / h, r.right() / w, r.bottom() / h

    def set_normalized_range(self, box: tuple[float, float, float, float]) -> None:
        shape = self.image_size()
        if shape is None:
            return
        h, w = shape
        x0, y0, x1, y1 = box
        self._fitted = False
        self.vb.setRange(xRange=(x0 * w, x1 * w), yRange=(y0 * h, y1 * h), padding=0)

    def _on_range(self, *_):
        self.update_lod()
        if self.state.compare == "swipe":
            self.update_swipe()  # the RC part is cropped to the view at full resolution

    def _on_resized(self, *_):
        if self._fitted:
            self.reset_zoom()
        self.update_lod()

    def _on_manual_range(self, *_):
        """The reader zoomed or panned here: stop following resizes, let the grid sync the others."""
        self._fitted = False
        self.range_changed.emit(self)

    @property
    def fitted(self) -> bool:
        """The view fits the breast and follows resizes (until the reader zooms or pans)."""
        return self._fitted

    def set_manual_range(self, box: tuple[float, float, float, float]) -> None:
        """Show ``box`` (fractions of the image) as if the reader had zoomed there: linked panels follow."""
        self.set_normalized_range(box)
        self._on_manual_range()

    def zoom_by(self, factor: float) -> None:
        self.vb.scaleBy((factor, factor))
        self._on_manual_range()

    def pan_by(self, fx: float, fy: float) -> None:
        """Move by a fraction of what is visible (as the reader's drag does: linked panels follow)."""
        r = self.vb.viewRect()
        self.vb.translateBy(x=fx * r.width(), y=fy * r.height())
        self._on_manual_range()

    def _screen_width(self) -> float:
        return float(self.vb.width()) * self.devicePixelRatioF()

    @property
    def drawn(self) -> Drawn | None:
        """The image, level and part on screen now (None before the first image is drawn)."""
        return self._drawn

    def redraw(self) -> None:
        """Pick the level and crop afresh (after the panel was shown again or resized by a relayout)."""
        self._drawn = None
        self.update_lod()

    def set_blink_phase(self, phase: bool) -> None:
        """Blink: True shows the other energy of this view (when it has one)."""
        self.blink_phase = phase
        self.refresh()

    def hide_magnifier(self) -> None:
        self.magnifier.hide()

    def update_lod(self) -> None:
        """Pick the pyramid level and crop for the visible part; no-op if the current one covers it."""
        img = self.current
        if img is None or not self.graphics.isVisible() and self._drawn is not None:
            return
        r = self.vb.viewRect()
        wanted = img.pick_level(r.width(), self._screen_width())
        level = img.available(wanted)  # the nearest decoded level until the wanted one is (worker thread)
        self._want(img, wanted if level != wanted else None)
        key = self._drawn
        if key is not None and key.image is img and key.level == level and key.rect.contains(r.intersected(QRectF(0, 0, img.shape[1], img.shape[0]))):
            return
        array, (sx, sy, sw, sh) = img.crop(level, r.left(), r.top(), r.right(), r.bottom())
        self.image_item.setImage(array, autoLevels=False, levels=self._levels(img))
        self.image_item.setRect(QRectF(sx, sy, sw, sh))
        self._drawn = Drawn(img, level, QRectF(sx, sy, sw, sh))
        self.update_swipe()

    def _want(self, img: DisplayImage, level: int | None) -> None:
        """Ask for ``level`` of ``img`` to be decoded off the GUI thread (None: nothing is missing).

        The request waits for the zoom to settle (:data:`LEVEL_REQUEST_DELAY_MS`): a
        wheel zoom passes through levels it does not stay at, and a panel being laid
        out has ranges it never shows.
        """
        self._wanted_level = None if level is None else (img, level)
        if level is None:
            self._level_timer.stop()
            self.level_label.hide()
            return
        self._level_timer.start(LEVEL_REQUEST_DELAY_MS)

    def _request_wanted(self) -> None:
        img = self.current
        if img is None or self._wanted_level is None or not self.graphics.isVisible():
            return
        r = self.vb.viewRect()
        level = img.pick_level(r.width(), self._screen_width())
        if img.available(level) == level:
            self._wanted_level = None
            self.update_lod()
            return
        self._wanted_level = (img, level)
        level_loader().request(img, level)
        self.level_label.setText("Decoding full resolution…" if level == 0 else f"Decoding 1/{1 << level} resolution…")
        self.level_label.adjustSize()
        self.level_label.move(4, max(4, self.graphics.height() - self.level_label.height() - 4))
        self.level_label.show()
        if img.levels[level] is not None:  # decoded between the check and the request
            self._on_level_ready(img, level)

    @property
    def decoding_level(self) -> bool:
        """A finer level is being decoded for the current zoom."""
        return self._wanted_level is not None

    def _on_level_ready(self, img, level: int) -> None:
        if self._wanted_level is not None and self._wanted_level[0] is img and img is self.current:
            self._drawn = None
            self.update_lod()
        elif any(img is i for i in self.images.values()):
            self._swipe_key = None
            self.update_swipe()

    def _on_level_failed(self, img, level: int, message: str) -> None:
        if self._wanted_level is not None and self._wanted_level[0] is img:
            self._wanted_level = None
            self.level_label.setText(f"Full resolution unavailable: {message.splitlines()[0] if message else ''}")
            self.level_label.adjustSize()
            self.level_label.show()

    # -- window / level -----------------------------------------------------------
    def _levels(self, img: DisplayImage) -> tuple[float, float]:
        w = self.state.windows[img.energy]
        lo, hi = img.levels_for(w.center, w.width)
        return (hi, lo) if self.state.invert else (lo, hi)

    def refresh_levels(self) -> None:
        img = self.current
        if img is None:
            return
        self.image_item.setLevels(self._levels(img))
        self.update_swipe(levels_only=True)
        self._update_magnifier()

    # -- compare: swipe ---------------------------------------------------------------
    def update_swipe(self, levels_only: bool = False) -> None:
        other_energy = "rc" if self.shown_energy == "le" else "le"
        other = self.images.get(other_energy)
        if self.state.compare != "swipe" or other is None or self.current is None:
            self.swipe_item.hide()
            self.swipe_line.hide()
            self._swipe_key = None
            return
        h, w = other.shape
        x = self.state.swipe_position * w
        if levels_only and self._swipe_key is not None:
            self.swipe_item.setLevels(self._levels(other))
            return
        level = self._drawn.level if self._drawn else len(other.levels) - 1
        level = other.available(min(level, len(other.levels) - 1))
        arr = other.levels[level]
        # The pixels right of the divider show the other energy (same geometry).
        lh, lw = arr.shape
        c0 = int(round(x * lw / w))
        if arr.size > 4 * 1024 * 1024:  # full-resolution level: keep it to the visible part
            r = self.vb.viewRect()
            r0, r1 = max(0, int(r.top() * lh / h)), min(lh, int(np.ceil(r.bottom() * lh / h)))
            c1 = min(lw, int(np.ceil(r.right() * lw / w)))
        else:
            r0, r1, c1 = 0, lh, lw
        if c1 <= c0 or r1 <= r0:
            self.swipe_item.hide()
        else:
            self.swipe_item.setImage(arr[r0:r1, c0:c1], autoLevels=False, levels=self._levels(other))
            self.swipe_item.setRect(QRectF(c0 * w / lw, r0 * h / lh, (c1 - c0) * w / lw, (r1 - r0) * h / lh))
            self.swipe_item.show()
        self.swipe_line.setValue(x)
        self.swipe_line.show()
        self._swipe_key = (level, c0)

    # -- overlays -------------------------------------------------------------------------
    def refresh_overlays(self) -> None:
        for item in self.contour_items:
            self.vb.removeItem(item)
        self.contour_items = []
        img = self.current
        vr = self.view_result
        if img is not None and self.state.show_contours and self.editor is not None and self.editor.active:
            # The review's findings (by state, editable) replace the raw AI contours.
            for it in self.editor.items_for(self):
                self.vb.addItem(it, ignoreBounds=True)
                self.contour_items.append(it)
        if img is None or vr is None:
            self.heat_item.hide()
            return
        if self.state.show_contours and (self.editor is None or not self.editor.active):
            for i, lesion in enumerate(vr.lesions):
                pts = img.flips.to_display(np.asarray(lesion.polygon, dtype=float), img.shape)
                if len(pts) < 2:
                    continue
                pts = np.vstack([pts, pts[:1]])
                curve = pg.PlotCurveItem(pts[:, 0], pts[:, 1], pen=pg.mkPen(CONTOUR, width=2))
                curve.setZValue(5)
                label = pg.TextItem(f"{i + 1}", color=CONTOUR, anchor=(0.5, 1.0))
                label.setPos(float(pts[:, 0].mean()), float(pts[:, 1].min()))
                label.setZValue(6)
                for it in (curve, label):
                    self.vb.addItem(it, ignoreBounds=True)
                    self.contour_items.append(it)
        heat = vr.heatmap
        if self.state.show_heatmap and heat is not None and self.shown_energy == "le":
            self.heat_item.setImage(self._heat_rgba_source(heat, img), autoLevels=False, levels=[0, 255])
            h, w = img.shape
            self.heat_item.setRect(QRectF(0, 0, w, h))
            self.heat_item.setOpacity(self.state.heatmap_opacity)
            self.heat_item.show()
        else:
            self.heat_item.hide()

    def _heat_rgba_source(self, heat: np.ndarray, img: DisplayImage) -> np.ndarray:
        # Heatmaps are smooth: 1024 px on the long side is plenty and keeps redraws cheap.
        step = max(1, int(np.ceil(max(heat.shape) / 1024)))
        small = img.flips.apply(np.asarray(heat))[::step, ::step]
        return np.clip(small * 255.0, 0, 255).astype(np.uint8)

    def set_heatmap_opacity(self, value: float) -> None:
        self.heat_item.setOpacity(value)

    @property
    def contour_count(self) -> int:
        return sum(isinstance(i, pg.PlotCurveItem) for i in self.contour_items)

    @property
    def heatmap_visible(self) -> bool:
        return self.heat_item.isVisible() and self.heat_item.image is not None

    # -- cursor: read-out and magnifier ---------------------------------------------------------
    def _on_mouse_moved(self, scene_pos) -> None:
        img = self.current
        if img is None:
            return
        p = self.vb.mapSceneToView(scene_pos)
        self._cursor_scene = p
        if self.state.compare == "swipe":
            self.state.swipe_position = float(min(1.0, max(0.0, p.x() / img.shape[1])))
        px = img.flips.pixel_at(p.x(), p.y(), img.shape)
        if px is None:
            self.cursor_info.emit(f"{view_title(self.key, img.energy)}  outside the image")
        else:
            col, row = px
            mm = ""
            if img.spacing_mm:
                mm = f" ({col * img.spacing_mm[1]:.1f}, {row * img.spacing_mm[0]:.1f} mm)"
            self.cursor_info.emit(f"{view_title(self.key, img.energy)}  x={col} y={row}{mm}  value={img.value_at(col, row):g}")
        self._update_magnifier(scene_pos)

    def _update_magnifier(self, scene_pos=None) -> None:
        img = self.current
        if not self.state.magnifier or img is None or self._cursor_scene is None:
            self.magnifier.hide()
            return
        p = self._cursor_scene
        half = 30  # 60x60 full-resolution pixels shown 3x
        h, w = img.shape
        cx, cy = int(p.x()), int(p.y())
        x0, y0 = max(0, cx - half), max(0, cy - half)
        x1, y1 = min(w, cx + half), min(h, cy + half)
        if x1 <= x0 or y1 <= y0:
            self.magnifier.hide()
            return
        win = self.state.windows[img.energy]
        k = img.available(0)  # full resolution once decoded; until then the finest level there is
        lv = img.levels[k]
        fy, fx = lv.shape[0] / h, lv.shape[1] / w
        part = lv[int(y0 * fy):max(int(y0 * fy) + 1, int(np.ceil(y1 * fy))), int(x0 * fx):max(int(x0 * fx) + 1, int(np.ceil(x1 * fx)))]
        crop = np.ascontiguousarray(img.windowed_uint8(part, win.center, win.width, self.state.invert))
        qimg = QImage(crop.data, crop.shape[1], crop.shape[0], crop.strides[0], QImage.Format.Format_Grayscale8)
        pix = QPixmap.fromImage(qimg.copy()).scaled(
            self.magnifier.size(), Qt.AspectRatioMode.KeepAspectRatio, Qt.TransformationMode.FastTransformation
        )
        self.magnifier.setPixmap(pix)
        if scene_pos is not None:
            view_pt = self.graphics.mapFromScene(scene_pos)
            x = view_pt.x() + 20
            if x + self.magnifier.width() > self.graphics.width():
                x = view_pt.x() - 20 - self.magnifier.width()
            y = min(max(0, view_pt.y() - self.magnifier.height() // 2), max(0, self.graphics.height() - self.magnifier.height()))
            self.magnifier.move(int(x), int(y))
        self.magnifier.show()
        self.magnifier.raise_()
