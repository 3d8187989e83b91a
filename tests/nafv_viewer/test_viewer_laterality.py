"""A laterality tag the image contradicts is shown to the reader in the side panel."""

from __future__ import annotations

import numpy as np
from PIL import Image

from core_model.io import write_mg_dicom
from core_model.io.naming import parse_cdd_cesm_name


def test_side_panel_shows_a_contradicted_laterality_tag(make_window, qtbot, tmp_path, demo_dir):
    for f in sorted(demo_dir.glob("P66_*.jpg")):
        info = parse_cdd_cesm_name(f)
        source = f
        if (info.side, info.view, info.energy) == ("L", "CC", "le"):
            source = demo_dir / "P66_R_DM_CC.jpg"  # the right CC image, tagged left
        px = np.asarray(Image.open(source).convert("L").resize((200, 256), Image.BILINEAR))
        write_mg_dicom(tmp_path / f"{f.stem}.dcm", px, side=info.side, view=info.view, energy=info.energy,
                       patient_id="P66")
    w = make_window()
    with qtbot.waitSignal(w.study_ready, timeout=10000):
        w.open_study(tmp_path)
    text = w.side.warnings_label.text().replace("\u200b", "")  # break opportunities in long paths
    assert "P66_L_DM_CC.dcm: ImageLaterality says left breast" in text and "check which breast this is" in text
    assert "Skipped" not in text
