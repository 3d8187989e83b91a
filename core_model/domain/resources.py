"""Where the bundled files are: demo study, its masks, the default weights (no torch import).

One place for these paths so the analyzer, the demo export and the viewer
agree. ``resources/`` is looked for beside the source tree (a repository
checkout, editable install) and then as an installed ``nafv_resources``
package (a wheel that ships the resources); the checkout wins when both exist.
"""

from __future__ import annotations

import importlib.util
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[2]


def resources_dir() -> Path:
    """The folder holding ``demo/``, ``demo_masks/`` and ``weights/`` (the checkout's when present)."""
    here = REPO_ROOT / "resources"
    if here.is_dir():
        return here
    spec = importlib.util.find_spec("nafv_resources")
    if spec is not None and spec.submodule_search_locations:
        return Path(next(iter(spec.submodule_search_locations)))
    return here  # missing files are then reported by whoever needs them, naming this path


RESOURCES = resources_dir()
DEMO_DIR = RESOURCES / "demo"
DEMO_MASKS = RESOURCES / "demo_masks"
DEFAULT_SEG_WEIGHTS = RESOURCES / "weights" / "segmentation" / "nafv_seg.safetensors"
DEFAULT_CLS_WEIGHTS = RESOURCES / "weights" / "classifier" / "nafv_cls.safetensors"
