"""The strip of images whose slot the files do not say, and dropping them onto a view.

A study can hold images without a side or view in any tag, description or
file name (:attr:`core_model.domain.study.Study.unassigned`). They wait here as
thumbnails; the reader drags one onto a view panel, and
:class:`UnassignedPlacement` turns the drop into the review command
:class:`core_model.review.model.AssignImage` (saved at once, undoable with the
review's undo), then hangs the image in that panel. Undo and redo, or a
review reloaded from disk, go through :meth:`UnassignedPlacement.sync`, which
makes the strip and the panels show what the study holds.
"""

from __future__ import annotations

from typing import Any, Callable

import numpy as np
from PySide6.QtCore import QByteArray, QEvent, QMimeData, QObject, QSize, Qt, Signal
from PySide6.QtGui import QIcon, QImage, QPixmap
from PySide6.QtWidgets import QLabel, QListView, QListWidget, QListWidgetItem, QMenu, QVBoxLayout, QWidget

from core_model.domain.study import VIEW_KEYS, UnassignedImage
from core_model.review.model import AssignImage
from nafv_viewer.display import build_display_image
from nafv_viewer.hanging import view_flips
from nafv_viewer.widgets.theme import style

MIME = "application/x-nafv-unassigned-image"  # payload: the image's SOP Instance UID (UTF-8)
THUMB = 96  # pixels on the long side
UID_ROLE = Qt.ItemDataRole.UserRole
DROP_HINT = "drag one here from the images without a view, under the views"


def thumbnail(image: UnassignedImage, size: int = THUMB) -> QPixmap:
    """A greyscale thumbnail in the file's window (robust min/max when it has none)."""
    px = image.pixels
    step = max(1, int(np.ceil(max(px.shape) / size)))
    small = px[::step, ::step].astype(np.float32)
    if image.window is not None and image.window[1] > 0:
        lo, hi = image.window[0] - image.window[1] / 2, image.window[0] + image.window[1] / 2
    else:
        lo, hi = (float(v) for v in np.percentile(small, [0.5, 99.5]))
    grey = np.clip((small - lo) * (255.0 / max(hi - lo, 1e-6)), 0, 255).astype(np.uint8)
    grey = np.ascontiguousarray(grey)
    h, w = grey.shape
    qimg = QImage(grey.data, w, h, w, QImage.Format.Format_Grayscale8).copy()  # own the bytes
    return QPixmap.fromImage(qimg)


class _ThumbList(QListWidget):
    """The thumbnails; a drag carries the image's SOP Instance UID."""

    def mimeTypes(self) -> list[str]:
        return [MIME]

    def mimeData(self, items) -> QMimeData:
        data = QMimeData()
        if items:
            data.setData(MIME, QByteArray(str(items[0].data(UID_ROLE)).encode("utf-8")))
        return data


class UnassignedStrip(QWidget):
    """Thumbnails of the unassigned images, each draggable onto a view panel; hidden when there are none.

    A right-click on a thumbnail offers the same placement as a menu (``place_requested(uid, key)``),
    for readers who do not drag.
    """

    place_requested = Signal(str, str)  # SOP Instance UID, view key

    def __init__(self, parent: QWidget | None = None):
        super().__init__(parent)
        self.title = QLabel("Images without a view in their files: drag each onto the view it shows")
        style(self.title, "unassigned_title")
        self.list = _ThumbList()
        self.list.setViewMode(QListView.ViewMode.IconMode)
        self.list.setFlow(QListView.Flow.LeftToRight)
        self.list.setWrapping(False)
        self.list.setIconSize(QSize(THUMB, THUMB))
        self.list.setFixedHeight(THUMB + 36)
        self.list.setDragEnabled(True)
        self.list.setDragDropMode(QListWidget.DragDropMode.DragOnly)
        style(self.list, "unassigned_list")
        self.list.setContextMenuPolicy(Qt.ContextMenuPolicy.CustomContextMenu)
        self.list.customContextMenuRequested.connect(self._menu_at)
        lay = QVBoxLayout(self)
        lay.setContentsMargins(0, 2, 0, 0)
        lay.setSpacing(0)
        lay.addWidget(self.title)
        lay.addWidget(self.list)
        self.hide()

    def show_images(self, images: list[UnassignedImage]) -> None:
        self.list.clear()
        for image in images:
            item = QListWidgetItem(QIcon(thumbnail(image)), f"{image.source.name} ({image.energy.upper()})")
            item.setData(UID_ROLE, image.uid)
            item.setToolTip(f"{image.source}\n{image.reason[:1].upper()}{image.reason[1:]}.\n"
                            "Drag onto the view this image shows.")
            self.list.addItem(item)
        self.setVisible(bool(images))

    def uids(self) -> list[str]:
        return [self.list.item(i).data(UID_ROLE) for i in range(self.list.count())]

    def count(self) -> int:
        return self.list.count()

    def place_menu(self, row: int) -> QMenu:
        """The menu of views to put the thumbnail in ``row`` on."""
        uid = self.list.item(row).data(UID_ROLE)
        menu = QMenu(self)
        for key in VIEW_KEYS:
            act = menu.addAction(f"Place on {key.replace('_', '-')}")
            act.triggered.connect(lambda _=False, k=key: self.place_requested.emit(uid, k))
        return menu

    def _menu_at(self, pos) -> None:
        item = self.list.itemAt(pos)
        if item is not None:
            self.place_menu(self.list.row(item)).popup(self.list.viewport().mapToGlobal(pos))

    def drag_data(self, row: int) -> QMimeData:
        """What dragging the thumbnail in ``row`` carries."""
        return self.list.mimeData([self.list.item(row)])


def dropped_uid(mime: QMimeData) -> str | None:
    return bytes(mime.data(MIME).data()).decode("utf-8") if mime is not None and mime.hasFormat(MIME) else None


class _PanelDrops(QObject):
    """Event filter that takes strip drops on one view panel (and the widgets that cover it)."""

    def __init__(self, panel: Any, on_drop: Callable[[str, str, str | None], None]):
        super().__init__(panel)
        self.panel, self.on_drop = panel, on_drop

    def eventFilter(self, obj: QObject, event: QEvent) -> bool:
        kind = event.type()
        if kind not in (QEvent.Type.DragEnter, QEvent.Type.DragMove, QEvent.Type.Drop):
            return False
        uid = dropped_uid(event.mimeData())
        if uid is None:
            # e.g. a folder dropped to open it: the window's business. Accepting drops here would
            # otherwise stop it short of the window, so it is handed on.
            top = self.panel.window()
            if top is self.panel or not event.mimeData().hasUrls():
                return False
            (top.dropEvent if kind == QEvent.Type.Drop else top.dragEnterEvent)(event)
            return event.isAccepted()
        event.setDropAction(Qt.DropAction.MoveAction)
        event.accept()
        if kind == QEvent.Type.Drop:
            self.on_drop(uid, self.panel.key, self.panel.fixed_energy)
        return True


class UnassignedPlacement(QObject):
    """Wires the strip, the view panels and the review: a drop places the image, undo takes it back."""

    def __init__(self, window: Any, strip: UnassignedStrip):
        super().__init__(window)
        self.window, self.strip = window, strip
        self._hung: dict[tuple[str, str], object] = {}  # slot -> source of the placed image shown there
        for panel in window.grid.all_panels():
            drops = _PanelDrops(panel, self.place)
            for w in (panel, panel.graphics.viewport(), panel.empty_label):
                w.setAcceptDrops(True)
                w.installEventFilter(drops)
        window.review_flow.review_opened.connect(self._on_review_opened)
        strip.place_requested.connect(self.place)

    def _on_review_opened(self, _review: Any) -> None:
        # Undo, redo and a reload from another viewer all arrive as the controller's "changed".
        self.window.review_flow.controller.changed.connect(self.sync)

    def show_study(self, study: Any) -> None:
        """A newly opened study: its waiting images in the strip (placed ones are hung by the loader)."""
        self._hung = {slot: study.images[slot].source for _, slot in study.assigned.values() if slot in study.images}
        self.strip.show_images(list(study.unassigned))
        if study.unassigned:
            for key, energy in study.missing():
                reason = f"No {energy.upper()} image of this view yet: {DROP_HINT}."
                self.window.grid.panels4[key].set_missing(energy, reason)
                self.window.grid.panels8[(key, energy)].set_missing(energy, reason)

    def place(self, uid: str, key: str, energy: str | None = None) -> bool:
        """Put image ``uid`` on view ``key`` (``energy``: an 8-up panel's; else the image's own). False if refused."""
        w = self.window
        controller = w.review_flow.controller
        if w.study is None or controller is None or w.review_flow.study is not w.study:
            w.statusBar().showMessage("The study is still opening: place the image once it is on screen", 8000)
            return False
        if not controller.push(AssignImage(uid, key, w.study, energy)):
            return False  # the controller said why in the status bar
        # the controller's "changed" has run sync(): the image hangs in its panel
        w.statusBar().showMessage(f"Image placed on {key.replace('_', '-')} (undo with Ctrl+Z); "
                                  "it is hung there whenever this study opens", 8000)
        return True

    def sync(self, *_args) -> None:
        """Make the strip and the panels show the placements the study now holds (after undo, redo, reload)."""
        study = self.window.study
        if study is None:
            return
        review = self.window.review_flow.controller.review if self.window.review_flow.controller else None
        if review is not None:
            # A reload from disk (another viewer) may add placements this study has not made yet.
            study.apply_assignments(review.assignments)
            for uid in [u for u in study.assigned if u not in review.assignments]:
                study.unassign(uid)
        placed = {slot: study.images[slot] for _, slot in study.assigned.values() if slot in study.images}
        for slot in [s for s in self._hung if s not in placed]:
            key, energy = slot
            reason = f"No {energy.upper()} image of this view yet: {DROP_HINT}."
            self.window.grid.panels4[key].set_missing(energy, reason)
            self.window.grid.panels8[(key, energy)].set_missing(energy, reason)
            del self._hung[slot]
        for slot, image in placed.items():
            if self._hung.get(slot) is image.source:
                continue
            key, energy = slot
            self.window.grid.add_image(build_display_image(image, key, flips=view_flips(study, key)[energy]))
            self._hung[slot] = image.source
        if [u.uid for u in study.unassigned] != self.strip.uids():
            self.strip.show_images(list(study.unassigned))
