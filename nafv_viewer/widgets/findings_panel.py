"""Findings list of the review: select, accept, reject, delete, link CC/MLO, undo/redo.

:class:`ReviewController` is the one place the GUI changes a review: it
applies a :mod:`core_model.review.model` command through a ``ReviewSession`` (which
saves at once) and puts it on a ``QUndoStack``, so every change, whichever
widget made it (this list, the assessment panel, the contour editor), is
undone in one order. Widgets only bind to the controller's signals, with a
guard flag against update loops.
"""

from __future__ import annotations

from PySide6.QtCore import QEvent, QItemSelectionModel, QObject, Qt, Signal
from PySide6.QtGui import QKeySequence, QUndoCommand, QUndoStack
from PySide6.QtWidgets import (
    QAbstractItemView,
    QComboBox,
    QFormLayout,
    QHBoxLayout,
    QHeaderView,
    QLabel,
    QPushButton,
    QTableWidget,
    QTableWidgetItem,
    QVBoxLayout,
    QWidget,
)

from core_model.domain.errors import NafvError
from core_model.review.model import (
    ACCEPTED,
    CONFIRMED,
    EDITED,
    PROPOSED,
    REJECTED,
    Command,
    DeleteFinding,
    Link,
    Review,
    ReviewSession,
    SetDescriptor,
    Unlink,
    accept,
    reject,
)

from core_model.review.lexicon import FIELD_NAMES, FIELDS, describe, stray_terms, terms_of
from core_model.review.signoff import SignoffCommand
from nafv_viewer.widgets.theme import style_as_page

NOT_GIVEN = "—"
# Keys the list keeps for itself while it has the focus.
LIST_KEYS = (Qt.Key.Key_Up, Qt.Key.Key_Down, Qt.Key.Key_Home, Qt.Key.Key_End, Qt.Key.Key_PageUp, Qt.Key.Key_PageDown)
# Text marks as well as colour, so the list reads the same in grey or for colour-blind readers.
STATE_TEXT = {PROPOSED: "? proposed", ACCEPTED: "✓ accepted", EDITED: "✎ edited", REJECTED: "✗ rejected"}


class _KeepKeys(QObject):
    """A focused choice box keeps its navigation keys (arrows, Home/End, letters to jump to a term):
    the window's one-letter and arrow shortcuts must not take them while the reader fills a field."""

    def eventFilter(self, obj, event):  # noqa: N802 - Qt's name
        if event.type() == QEvent.Type.ShortcutOverride and event.modifiers() in (
                Qt.KeyboardModifier.NoModifier, Qt.KeyboardModifier.ShiftModifier, Qt.KeyboardModifier.KeypadModifier):
            key = Qt.Key(event.key())
            if key in LIST_KEYS or key in (Qt.Key.Key_Left, Qt.Key.Key_Right, Qt.Key.Key_Space) or \
                    (event.text() and event.text().isprintable()):
                event.accept()
                return True
        return False


def keep_keys(widget) -> None:
    """Let ``widget`` (a combo box) keep its keys while it has the focus (see :class:`_KeepKeys`)."""
    f = _KeepKeys(widget)
    widget.installEventFilter(f)


class _UndoEntry(QUndoCommand):
    """Wraps one review command.

    ``_skip`` makes the next redo/undo a no-op: the first redo (the controller
    already applied the command) and the step that puts the stack index back
    after a failed save (the review was already rolled back).
    """

    def __init__(self, controller: "ReviewController", cmd: Command):
        super().__init__(cmd.text)
        self._controller, self._cmd, self._skip = controller, cmd, True

    def redo(self) -> None:
        if self._skip:
            self._skip = False
            return
        self._controller._run(self, lambda: self._controller.session.apply(self._cmd, "redo"))

    def undo(self) -> None:
        if self._skip:
            self._skip = False
            return
        self._controller._run(self, lambda: self._controller.session.revert(self._cmd))


class ReviewController(QObject):
    """Applies review commands (saved at once) and keeps them on a QUndoStack.

    Undo and redo go through :meth:`undo` / :meth:`redo`, never the stack
    directly: when a save fails the session rolls the review back, and the
    stack index must then be put back too, or the next redo would apply a
    command twice (e.g. insert a vertex again) and corrupt the contour.
    """

    changed = Signal(str)  # "do" / "undo" / "redo" / "reload" (the file's content replaced the review)
    selection_changed = Signal(str)  # finding id, "" for none
    error = Signal(str)  # a message for the reader (save failed, invalid edit)
    notice = Signal(str)  # a save merged another viewer's changes in: what they were

    def __init__(self, session: ReviewSession, parent: QObject | None = None):
        super().__init__(parent)
        self.session = session
        self.stack = QUndoStack(self)
        self.selected: str = ""
        self.last_error = ""
        self._failed: tuple[_UndoEntry, str] | None = None
        self._reloaded = False
        session.subscribe(self._on_commit)

    def _on_commit(self, review: Review, cmd: Command, how: str) -> None:
        self._reloaded = self._reloaded or how == "reload"
        if how != "reload" and self.selected in review.renamed_ids:
            self.selected = review.renamed_ids[self.selected]  # renumbered by a merge: still the same contour
        self.changed.emit(how)
        if self.selected and self.selected not in review.findings:
            self.select("")  # deleted in the other viewer
        if how != "reload" and review.merge_note:
            self.notice.emit(review.merge_note[:1].upper() + review.merge_note[1:])

    def _drop_history_if_reloaded(self) -> None:
        # The commands on the stack describe a review that is no longer on disk: undoing them
        # would write the other viewer's work away.
        if self._reloaded:
            self._reloaded = False
            self.stack.clear()

    @property
    def review(self) -> Review:
        return self.session.review

    def push(self, cmd: Command) -> bool:
        """Apply ``cmd`` and make it undoable; False (and ``error``) when it cannot be done."""
        try:
            self.session.apply(cmd)
        except NafvError as err:
            self._drop_history_if_reloaded()
            self.last_error = str(err)
            self.error.emit(str(err))
            return False
        if isinstance(cmd, SignoffCommand):
            # A signature is not undone, and the edits before it are now part of what was signed.
            self.stack.clear()
        else:
            self.stack.push(_UndoEntry(self, cmd))
        return True

    def _run(self, entry: _UndoEntry, fn) -> None:
        try:
            fn()
        except NafvError as err:  # e.g. the disk is full: the session rolled the change back
            self._failed = (entry, str(err))

    def _step(self, move, what: str) -> bool:
        index = self.stack.index()
        self._failed = None
        move()
        if self._failed is None:
            return self.stack.index() != index
        entry, message = self._failed
        self._failed = None
        entry._skip = True  # the review is as before the step: move the index back without re-running it
        self.stack.setIndex(index)
        self._drop_history_if_reloaded()
        self.error.emit(f"{message} — the {what} was not done; the review is unchanged")
        return False

    def undo(self) -> bool:
        """Undo the last change; False when there was none or saving failed (the review is then unchanged)."""
        return self._step(self.stack.undo, "undo")

    def redo(self) -> bool:
        return self._step(self.stack.redo, "redo")

    def select(self, fid: str) -> None:
        fid = fid if fid in self.review.findings else ""
        if fid != self.selected:
            self.selected = fid
            self.selection_changed.emit(fid)

    # the actions a button, a key or the contour editor triggers
    def accept_selected(self) -> bool:
        return bool(self.selected) and self.push(accept(self.selected))

    def reject_selected(self) -> bool:
        return bool(self.selected) and self.push(reject(self.selected))

    def delete_selected(self) -> bool:
        fid = self.selected
        ok = bool(fid) and self.push(DeleteFinding(fid))
        if ok:
            self.select("")
        return ok


class FindingsPanel(QWidget):
    """Table of findings with Accept (A), Reject (R), Delete (Del), Link and Unlink; Undo/Redo keys."""

    COLUMNS = ("#", "Side", "View", "State", "AI score", "Linked")

    def __init__(self, controller: ReviewController, parent: QWidget | None = None):
        super().__init__(parent)
        self.controller = controller
        self._updating = False  # guard: refreshing the table must not feed back into the controller
        self._from_table = False  # the selection change comes from the list itself

        self.table = QTableWidget(0, len(self.COLUMNS), self)
        self.table.setHorizontalHeaderLabels(self.COLUMNS)
        self.table.setSelectionBehavior(QAbstractItemView.SelectionBehavior.SelectRows)
        self.table.setSelectionMode(QAbstractItemView.SelectionMode.ExtendedSelection)
        self.table.setEditTriggers(QAbstractItemView.EditTrigger.NoEditTriggers)
        self.table.verticalHeader().setVisible(False)
        header = self.table.horizontalHeader()
        header.setSectionResizeMode(QHeaderView.ResizeMode.ResizeToContents)
        # the state column takes what is left (and elides), so "Linked" is never cut off the right edge
        header.setSectionResizeMode(self.COLUMNS.index("State"), QHeaderView.ResizeMode.Stretch)
        header.setMinimumSectionSize(24)

        self.accept_btn = QPushButton("Accept (A)")
        self.reject_btn = QPushButton("Reject (R)")
        self.delete_btn = QPushButton("Delete")
        self.link_btn = QPushButton("Link CC+MLO")
        self.unlink_btn = QPushButton("Unlink")
        self.undo_btn = QPushButton("Undo")
        self.redo_btn = QPushButton("Redo")
        self.message = QLabel("")
        self.message.setWordWrap(True)

        # the selected lesion's lexicon terms (shared with its linked other view): the type, then only the
        # fields that type takes (hidden rows are out of the Tab chain, the others keep the panel's order)
        self.descriptors: dict[str, QComboBox] = {}
        self._terms = terms = QFormLayout()
        for name in FIELDS:
            combo = QComboBox(self)
            combo.addItems([NOT_GIVEN, *terms_of(name, None)])
            combo.currentTextChanged.connect(lambda v, n=name: self._set_descriptor(n, v))
            keep_keys(combo)
            terms.addRow(FIELD_NAMES[name].capitalize(), combo)
            self.descriptors[name] = combo
        combos = list(self.descriptors.values())
        for a, b in zip(combos, combos[1:]):
            QWidget.setTabOrder(a, b)
        # terms an older review stored that the finding's type does not take: shown, kept until dropped
        self.stray_note = QLabel("")
        self.stray_note.setWordWrap(True)
        self.drop_stray_btn = QPushButton("Drop these terms", self)
        self.drop_stray_btn.clicked.connect(self.drop_stray_terms)
        terms.addRow(self.stray_note)
        terms.addRow(self.drop_stray_btn)
        QWidget.setTabOrder(combos[-1], self.drop_stray_btn)

        row1, row2 = QHBoxLayout(), QHBoxLayout()
        for b in (self.accept_btn, self.reject_btn, self.delete_btn):
            row1.addWidget(b)
        for b in (self.link_btn, self.unlink_btn, self.undo_btn, self.redo_btn):
            row2.addWidget(b)
        lay = QVBoxLayout(self)
        lay.addWidget(self.table)
        lay.addLayout(terms)
        lay.addLayout(row1)
        lay.addLayout(row2)
        lay.addWidget(self.message)

        self.accept_btn.clicked.connect(controller.accept_selected)
        self.reject_btn.clicked.connect(controller.reject_selected)
        self.delete_btn.clicked.connect(controller.delete_selected)
        self.link_btn.clicked.connect(self.link_selected)
        self.unlink_btn.clicked.connect(self.unlink_selected)
        self.undo_btn.clicked.connect(controller.undo)
        self.redo_btn.clicked.connect(controller.redo)
        # Keys on the list itself (A, R, Delete, Undo, Redo): the main window may add global
        # actions from controller.stack.createUndoAction without both firing.
        self.table.installEventFilter(self)

        style_as_page(self)
        self.table.itemSelectionChanged.connect(self._on_table_selection)
        controller.changed.connect(lambda _how: self.refresh())
        controller.selection_changed.connect(self._show_selection)
        controller.error.connect(self.message.setText)
        controller.notice.connect(self.message.setText)
        controller.stack.canUndoChanged.connect(self.undo_btn.setEnabled)
        controller.stack.canRedoChanged.connect(self.redo_btn.setEnabled)
        self.undo_btn.setEnabled(False)
        self.redo_btn.setEnabled(False)
        self.refresh()

    def eventFilter(self, obj, event):  # noqa: N802 - Qt's name
        if obj is self.table and event.type() == QEvent.Type.ShortcutOverride and Qt.Key(event.key()) in LIST_KEYS \
                and event.modifiers() in (Qt.KeyboardModifier.NoModifier, Qt.KeyboardModifier.ShiftModifier,
                                          Qt.KeyboardModifier.KeypadModifier):
            # With the list focused, the arrows move its selection: the window's window/level and
            # pan shortcuts on the same keys must not take them.
            event.accept()
            return True
        if obj is self.table and event.type() == QEvent.Type.KeyPress:
            if event.matches(QKeySequence.StandardKey.Undo):
                self.controller.undo()
                return True
            if event.matches(QKeySequence.StandardKey.Redo):
                self.controller.redo()
                return True
            if event.modifiers() in (Qt.KeyboardModifier.NoModifier, Qt.KeyboardModifier.KeypadModifier):
                action = {Qt.Key.Key_A: self.controller.accept_selected, Qt.Key.Key_R: self.controller.reject_selected,
                          Qt.Key.Key_Delete: self.controller.delete_selected}.get(Qt.Key(event.key()))
                if action is not None:
                    action()
                    return True
        return super().eventFilter(obj, event)

    # ---- controller -> widget
    def refresh(self) -> None:
        review = self.controller.review
        self._updating = True
        try:
            self.table.setRowCount(len(review.findings))
            for row, f in enumerate(review.findings.values()):
                cells = (
                    f.id,
                    f.side,
                    f.view,
                    STATE_TEXT[f.state] + (" (reader)" if f.origin == "reader" else ""),
                    "—" if f.ai_score is None else f"{f.ai_score:.2f}",
                    f.link or "",
                )
                for col, text in enumerate(cells):
                    item = QTableWidgetItem(text)
                    item.setData(Qt.ItemDataRole.UserRole, f.id)
                    if f.state in CONFIRMED:
                        font = item.font()
                        font.setBold(True)
                        item.setFont(font)
                    self.table.setItem(row, col, item)
            self._show_selection(self.controller.selected)
            self._show_descriptors()
        finally:
            self._updating = False
        self.message.setText("")

    def _show_selection(self, fid: str) -> None:
        was, self._updating = self._updating, True
        try:
            ids = list(self.controller.review.findings)
            if self._from_table and fid in self.selected_ids():
                pass  # the reader's own (possibly two-row, for linking) selection in the list stays
            elif fid in ids:
                # Exactly this row, whatever modifier keys are down (selectRow would add to the
                # selection while Ctrl is held, e.g. right after Ctrl+Z).
                row = ids.index(fid)
                model = self.table.selectionModel()
                flags = QItemSelectionModel.SelectionFlag.ClearAndSelect | QItemSelectionModel.SelectionFlag.Rows
                model.select(self.table.model().index(row, 0), flags)
                model.setCurrentIndex(self.table.model().index(row, 0), QItemSelectionModel.SelectionFlag.NoUpdate)
                self.table.scrollToItem(self.table.item(row, 0))
            else:
                self.table.clearSelection()
        finally:
            self._updating = was
        has = bool(fid)
        for b in (self.accept_btn, self.reject_btn, self.delete_btn, self.unlink_btn):
            b.setEnabled(has)
        self._show_descriptors()

    def _show_descriptors(self) -> None:
        f = self.controller.review.findings.get(self.controller.selected)
        kind = f.descriptors.get("type") if f is not None else None
        was, self._updating = self._updating, True
        try:
            for name, combo in self.descriptors.items():
                choices = [NOT_GIVEN, *terms_of(name, kind)]
                self._terms.setRowVisible(combo, len(choices) > 1)
                if [combo.itemText(i) for i in range(combo.count())] != choices:
                    combo.clear()
                    combo.addItems(choices)
                combo.setEnabled(f is not None)
                value = f.descriptors.get(name) if f is not None else None
                combo.setCurrentIndex(choices.index(value) if value in choices else 0)
            stray = stray_terms(f.descriptors) if f is not None else {}
            if stray:
                self.stray_note.setText(f"From an earlier review, {'not used for ' + kind if kind else 'without a type'}: "
                                        f"{', '.join(describe(stray))}. Kept in the file until dropped"
                                        + ("." if kind else "; choosing a type keeps those it takes."))
            self._terms.setRowVisible(self.stray_note, bool(stray))
            self._terms.setRowVisible(self.drop_stray_btn, bool(stray))
        finally:
            self._updating = was

    def _set_descriptor(self, name: str, text: str) -> None:
        fid = self.controller.selected
        f = self.controller.review.findings.get(fid)
        value = None if text == NOT_GIVEN else text
        if self._updating or f is None or f.descriptors.get(name) == value:
            return
        cmd = SetDescriptor(fid, name, value)
        if not self.controller.push(cmd):
            self._show_descriptors()
        elif "dropped" in cmd.text:  # a type change removed terms: say which (one undo brings them back)
            self.message.setText(cmd.text[:1].upper() + cmd.text[1:] + ".")

    def drop_stray_terms(self) -> bool:
        """Remove the selected finding's terms that its type does not take (one undoable change)."""
        fid = self.controller.selected
        f = self.controller.review.findings.get(fid)
        if f is None or not stray_terms(f.descriptors):
            return False
        cmd = SetDescriptor(fid, "type", f.descriptors.get("type"))
        ok = self.controller.push(cmd)
        if ok:
            self.message.setText(cmd.text[:1].upper() + cmd.text[1:] + ".")
        return ok

    # ---- widget -> controller
    def selected_ids(self) -> list[str]:
        rows = sorted({i.row() for i in self.table.selectedIndexes()})
        return [self.table.item(r, 0).data(Qt.ItemDataRole.UserRole) for r in rows if self.table.item(r, 0)]

    def _on_table_selection(self) -> None:
        if self._updating:
            return
        ids = self.selected_ids()
        current = self.table.currentRow()
        cur_id = self.table.item(current, 0).data(Qt.ItemDataRole.UserRole) if self.table.item(current, 0) else ""
        self._from_table = True
        try:
            self.controller.select(cur_id if cur_id in ids else (ids[-1] if ids else ""))
        finally:
            self._from_table = False

    def link_selected(self) -> bool:
        ids = self.selected_ids()
        if len(ids) != 2:
            self.message.setText("Select one CC and one MLO finding of the same breast to link them.")
            return False
        return self.controller.push(Link(ids[0], ids[1]))

    def unlink_selected(self) -> bool:
        fid = self.controller.selected
        return bool(fid) and self.controller.push(Unlink(fid))
