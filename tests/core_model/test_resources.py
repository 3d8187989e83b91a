"""One home for bundled paths and the clinical-use notice, importable without torch."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]


def test_paths_and_notice_import_without_torch():
    code = ("import sys; import core_model.domain.resources as r, core_model.domain.notice as n, core_model.cli.demo_report; "
            "assert 'torch' not in sys.modules, 'torch imported'; "
            "print(r.DEMO_DIR); print(r.DEFAULT_SEG_WEIGHTS.is_file()); print(n.NOT_FOR_CLINICAL_USE)")
    out = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    demo, seg_exists, notice = out.stdout.splitlines()
    assert Path(demo) == REPO / "resources" / "demo" and seg_exists == "True"
    assert "not for clinical use" in notice


def test_every_module_uses_the_same_constants():
    from core_model.domain import notice, resources
    from core_model.inference import analyzer as analyze
    from core_model.models import checkpoint
    from core_model.export import common
    from core_model.cli import demo_report as demo

    assert analyze.DEFAULT_SEG_WEIGHTS is resources.DEFAULT_SEG_WEIGHTS is demo.DEFAULT_SEG_WEIGHTS
    assert analyze.DEFAULT_CLS_WEIGHTS is resources.DEFAULT_CLS_WEIGHTS
    assert demo.DEMO_DIR is resources.DEMO_DIR and demo.DEMO_MASKS is resources.DEMO_MASKS
    assert checkpoint.NOT_FOR_CLINICAL_USE is notice.NOT_FOR_CLINICAL_USE is common.NOT_FOR_CLINICAL_USE
    assert resources.resources_dir() == REPO / "resources"


def test_loose_names_and_slot_hints_agree():
    from core_model.io.naming import parse_loose_name, slot_hints

    for name in ("left_cc_low_energy.png", "RMLO_LE.tiff", "right mlo subtracted.jpeg", "L-CC-recombined.tif"):
        info = parse_loose_name(name)
        sides, views, energies = slot_hints(Path(name).stem)
        assert (info.side, info.view, info.energy) == (sides.pop(), views.pop(), energies.pop())
    # Words slot_hints knows (the spelled-out view) now work in file names too.
    info = parse_loose_name("left cranio-caudal recombined.png")
    assert (info.side, info.view, info.energy) == ("L", "CC", "rc")
    assert parse_loose_name("L_CC_low.png").energy == "le"
    assert parse_loose_name("L_R_CC_LE.png") is None
