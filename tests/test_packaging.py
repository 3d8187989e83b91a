"""The wheel carries every package and the bundled resources the code opens by default."""

from __future__ import annotations

import tomllib
from pathlib import Path

from core_model.domain import resources

ROOT = Path(__file__).resolve().parents[1]


def _setuptools() -> dict:
    return tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))["tool"]["setuptools"]


def test_every_python_package_is_listed_for_the_wheel():
    found = {str(p.parent.relative_to(ROOT)).replace("/", ".")
             for top in ("core_model", "nafv_viewer") for p in (ROOT / top).rglob("__init__.py")}
    listed = set(_setuptools()["packages"])
    assert found - listed == set(), "add these packages to [tool.setuptools] packages in pyproject.toml"


def test_default_weights_cards_and_demo_are_package_data():
    cfg = _setuptools()
    assert cfg["package-dir"]["nafv_resources"] == "resources"
    globs = cfg["package-data"]["nafv_resources"]
    needed = [resources.DEFAULT_SEG_WEIGHTS, resources.DEFAULT_SEG_WEIGHTS.with_suffix(".json"),
              resources.DEFAULT_CLS_WEIGHTS, resources.DEFAULT_CLS_WEIGHTS.with_suffix(".json"),
              *sorted(resources.DEMO_DIR.iterdir()), *sorted(resources.DEMO_MASKS.iterdir())]
    assert len(needed) == 4 + 9 + 8
    # setuptools expands each glob within its folder (no recursion), as Path.glob does
    shipped = {f for g in globs for f in (ROOT / "resources").glob(g) if f.is_file()}
    missing = [p.relative_to(ROOT).as_posix() for p in needed if p not in shipped]
    assert all(p.is_file() for p in needed) and missing == []
