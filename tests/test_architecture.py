"""The layers of the code point one way: the contract below is checked on every import statement.

``core_model`` is split into packages, each allowed to import only the packages
listed for it (lower layers). The viewer sits on top and never reaches into
training or the command-line entry points; the model core never imports Qt or
the viewer. Imports inside functions count too: a lazy import is still a
dependency.
"""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

QT_OR_VIEWER = ("PySide6", "PyQt5", "PyQt6", "pyqtgraph", "pytestqt", "nafv_viewer")

# package -> the core_model packages it may import (besides itself)
LAYERS: dict[str, set[str]] = {
    "domain": set(),
    "imaging": {"domain"},
    "io": {"domain", "imaging"},
    "transforms": {"domain", "imaging"},
    "review": {"domain", "imaging", "io"},
    "losses": {"domain"},
    "models": {"domain", "io", "transforms"},
    "synth": {"domain", "imaging", "io"},
    "inference": {"domain", "imaging", "io", "transforms", "models"},
    "export": {"domain", "imaging", "io", "review"},
    "train": {"domain", "imaging", "io", "transforms", "models", "losses", "synth", "inference"},
    "cli": {"domain", "imaging", "io", "transforms", "review", "models", "losses", "synth", "inference",
            "export", "train"},
}
# the viewer uses the core as a library: never its trainers or command lines
VIEWER_MAY_NOT = {"train", "cli"}


def _imports(path: Path) -> list[tuple[int, str]]:
    tree = ast.parse(path.read_text(), filename=str(path))
    out = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            out += [(node.lineno, a.name) for a in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            if node.module == "core_model":  # from core_model import x: x is the package
                out += [(node.lineno, f"core_model.{a.name}") for a in node.names]
            else:
                out.append((node.lineno, node.module))
    return out


def layer_violations(root: Path) -> list[str]:
    """Every import under ``root`` (a checkout: core_model/ and nafv_viewer/) that breaks the contract."""
    bad = []
    core = root / "core_model"
    for path in sorted(core.rglob("*.py")):
        rel = path.relative_to(core)
        own = rel.parts[0] if len(rel.parts) > 1 else None
        for line, name in _imports(path):
            where = f"{path.relative_to(root)}:{line} imports {name}"
            if name.split(".")[0] in QT_OR_VIEWER:
                bad.append(where + " (the model core never imports Qt or the viewer)")
                continue
            parts = name.split(".")
            if parts[0] != "core_model" or len(parts) < 2:
                continue
            target = parts[1]
            if target == "__version__" or target == own:
                continue
            if own is None:
                bad.append(where + " (core_model/__init__ holds only the version)")
            elif own not in LAYERS:
                bad.append(where + f" (package {own} is not in the layer contract)")
            elif target not in LAYERS[own]:
                bad.append(where + f" ({own} may import only {', '.join(sorted(LAYERS[own])) or 'nothing'})")
    for path in sorted((root / "nafv_viewer").rglob("*.py")):
        for line, name in _imports(path):
            parts = name.split(".")
            if parts[0] == "core_model" and len(parts) > 1 and parts[1] in VIEWER_MAY_NOT:
                bad.append(f"{path.relative_to(root)}:{line} imports {name} (the viewer never uses {parts[1]})")
    return bad


def test_every_import_follows_the_layers():
    assert (ROOT / "core_model" / "inference").is_dir() and (ROOT / "nafv_viewer").is_dir()
    assert layer_violations(ROOT) == []


def test_every_core_package_is_in_the_contract():
    packages = {p.parent.name for p in (ROOT / "core_model").glob("*/__init__.py")}
    assert packages == set(LAYERS)
    assert {p.name for p in (ROOT / "core_model").glob("*.py")} == {"__init__.py"}


def _tree(tmp_path: Path, files: dict[str, str]) -> Path:
    for rel, text in {"core_model/__init__.py": "", "nafv_viewer/__init__.py": "", **files}.items():
        p = tmp_path / rel
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_text(text)
    return tmp_path


def test_a_wrong_import_is_caught(tmp_path):
    root = _tree(tmp_path, {
        "core_model/export/__init__.py": "",
        "core_model/export/pdf.py": "from core_model.review.model import Review\n"
                                    "def f():\n    from core_model.inference.analyzer import Analyzer\n",
        "core_model/review/model.py": "import PySide6.QtCore\n",
        "core_model/domain/study.py": "from core_model import train\n",
        "nafv_viewer/app.py": "from core_model.train.seg import main\nfrom core_model.inference import explain\n",
    })
    bad = layer_violations(root)
    assert len(bad) == 4, bad
    assert bad[0].startswith("core_model/domain/study.py:1 imports core_model.train (domain may import only nothing")
    assert "core_model/export/pdf.py:3 imports core_model.inference.analyzer" in bad[1]
    assert "core_model/review/model.py:1 imports PySide6.QtCore (the model core never imports Qt" in bad[2]
    assert bad[3] == "nafv_viewer/app.py:1 imports core_model.train.seg (the viewer never uses train)"


def test_the_readme_layout_names_every_core_package():
    readme = (ROOT / "README.md").read_text()
    block = readme.split("## Repository layout", 1)[1].split("```")[1].splitlines()
    listed: dict[str, set[str]] = {}  # top folder -> the folders indented under it
    top = None
    for line in block:
        name = line.strip().split()[0] if line.strip() else ""
        if line and not line.startswith(" "):
            top = name.rstrip("/")
            listed[top] = set()
        elif line.startswith("  ") and not line.startswith("   ") and name.endswith("/"):
            listed[top].add(name.rstrip("/"))
    assert listed["core_model"] == set(LAYERS)
    for top, subs in listed.items():
        assert (ROOT / top).is_dir(), top
        for sub in subs:
            assert (ROOT / top / sub).is_dir(), f"{top}/{sub}"
