"""The reading window's dark theme: one style sheet for the window, its panels and its dialogs.

Reading rooms are dim; a white panel or a message box with pale text beside
dark images is both glaring and unreadable. Everything the window opens
(tabs, forms, tables, message boxes, dialogs) inherits this sheet, so no
widget falls back to the platform's light palette.
"""

TEXT = "#e2e2e2"
MUTED = "#a8a8a8"
BG = "#202020"
PANEL = "#262626"
FIELD = "#303030"
BORDER = "#555555"
SELECTION = "#2f5f8f"

DARK_QSS = f"""
QMainWindow, QScrollArea, QScrollArea > QWidget > QWidget, QTabWidget > QWidget, QStackedWidget > QWidget,
QDialog, QMessageBox, QInputDialog {{ background: {BG}; color: {TEXT}; }}
QWidget {{ color: {TEXT}; }}
QWidget#reviewPage {{ background: {BG}; }}
QLabel, QCheckBox, QRadioButton, QGroupBox {{ color: {TEXT}; background: transparent; }}
QCheckBox::indicator {{ width: 12px; height: 12px; border: 1px solid #9a9a9a; border-radius: 2px; background: {FIELD}; }}
QCheckBox::indicator:checked {{ background: #4a90d9; border-color: #8cc0f0; }}
QGroupBox {{ border: 1px solid {BORDER}; border-radius: 3px; margin-top: 1.2em; padding-top: 0.3em; }}
QGroupBox::title {{ subcontrol-origin: margin; left: 8px; padding: 0 3px; }}
QTabWidget::pane {{ border: 1px solid {BORDER}; background: {BG}; }}
QTabBar::tab {{ background: {PANEL}; color: {MUTED}; padding: 4px 12px; border: 1px solid {BORDER}; border-bottom: none; }}
QTabBar::tab:selected {{ background: {BG}; color: {TEXT}; }}
QComboBox, QLineEdit, QPlainTextEdit, QTextEdit, QSpinBox, QDoubleSpinBox {{
    background: {FIELD}; color: {TEXT}; border: 1px solid {BORDER}; border-radius: 2px; padding: 2px 4px;
    selection-background-color: {SELECTION}; }}
QComboBox QAbstractItemView {{ background: {FIELD}; color: {TEXT}; selection-background-color: {SELECTION}; }}
QPushButton {{ background: #3a3a3a; color: {TEXT}; border: 1px solid {BORDER}; border-radius: 3px; padding: 3px 10px; }}
QPushButton:hover {{ background: #454545; }}
QPushButton:disabled {{ color: #777777; background: #2c2c2c; }}
QTableWidget, QTableView {{ background: {PANEL}; alternate-background-color: #2b2b2b; color: {TEXT};
    gridline-color: #3a3a3a; selection-background-color: {SELECTION}; selection-color: #ffffff; }}
QHeaderView::section {{ background: #333333; color: {TEXT}; border: 0; border-right: 1px solid {BORDER}; padding: 3px 4px; }}
QMenuBar, QMenu {{ background: {PANEL}; color: {TEXT}; }}
QMenu::item:selected, QMenuBar::item:selected {{ background: {SELECTION}; }}
QStatusBar {{ background: {PANEL}; color: {TEXT}; }}
QProgressBar {{ background: {FIELD}; color: {TEXT}; border: 1px solid {BORDER}; text-align: center; }}
QToolTip {{ background: #333333; color: {TEXT}; border: 1px solid {BORDER}; }}
"""


def style_as_page(widget) -> None:
    """Let a plain QWidget subclass (a tab's page) paint the theme's background: without the attribute,
    Qt draws no style-sheet background for it and the platform's white shows through."""
    from PySide6.QtCore import Qt

    widget.setObjectName("reviewPage")
    widget.setAttribute(Qt.WidgetAttribute.WA_StyledBackground, True)


# Colours with a meaning of their own, used beyond the sheet (rich text, overlays).
WARNING = "#d08000"
ACCENT = (0, 200, 255)  # the swipe divider, the magnifier's frame, the decoding note
CONTOUR = (255, 210, 0)  # the analysis' lesion contours

# Single widgets whose look says what they are; applied with :func:`style` so a panel shown on its
# own (a test, a dialog) looks as it does in the window.
ROLES = {
    "study_warnings": f"color: {WARNING};",
    "clinical_notice": "color: #ffffff; background: #a01010; padding: 4px; font-weight: bold;",
    "caution": "color: #000000; background: #e0a000; padding: 4px; font-weight: bold;",
    "model_identity": "color: #808080; font-size: 11px;",
    "view_empty": "color: #b0b0b0; background: #181818; border: 1px dashed #555; font-size: 13px;",
    "view_title": "color: #f0f0f0; background: rgba(0,0,0,140); padding: 2px 5px; font-weight: bold;",
    "view_title_active": "color: #f0f0f0; background: rgba(0,120,200,200); padding: 2px 5px; font-weight: bold;",
    "magnifier": "border: 2px solid #00c8ff;",
    "level_note": "color: #00c8ff; background: rgba(0, 0, 0, 160); padding: 2px;",
    "unassigned_title": "color: #e0b050; font-weight: bold; padding: 2px 4px;",
    "unassigned_list": f"QListWidget {{ background: {PANEL}; color: #dddddd; border: 1px solid {BORDER}; }}",
}


def style(widget, role: str) -> None:
    """Give ``widget`` the look of ``role`` (a key of :data:`ROLES`)."""
    widget.setStyleSheet(ROLES[role])
