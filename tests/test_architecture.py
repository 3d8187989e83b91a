"""The model core never imports Qt or the viewer (one direction of dependency)."""

import ast
from pathlib import Path

FORBIDDEN = ("PySide6", "PyQt5", "PyQt6", "pyqtgraph", "nafv_viewer", "pytestqt")
CORE = Path(__file__).resolve().parents[1] / "core_model"


def test_core_model_never_imports_qt_or_viewer():
    offenders = []
    files = list(CORE.rglob("*.py"))
    assert len(files) > 5
    for path in files:
        tree = ast.parse(path.read_text(), filename=str(path))
        for node in ast.walk(tree):
            names = []
            if isinstance(node, ast.Import):
                names = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom) and node.module:
                names = [node.module]
            for n in names:
                if n.split(".")[0] in FORBIDDEN:
                    offenders.append(f"{path.relative_to(CORE.parent)}:{node.lineno} imports {n}")
    assert offenders == []
