"""A DICOM study in the window: preview of the first view, hanging from PatientOrientation tags."""

import numpy as np
import pytest
from PIL import Image

from core_model.io import write_mg_dicom
from core_model.io.naming import parse_cdd_cesm_name


@pytest.fixture(scope="module")
def dicom_study(tmp_path_factory, demo_dir):
    """The demo study as 16-bit DICOM; R-CC LE stored mirrored (chest wall on the left), tags saying so."""
    out = tmp_path_factory.mktemp("dicom")
    for f in sorted(demo_dir.glob("*.jpg")):
        info = parse_cdd_cesm_name(f)
        px = np.asarray(Image.open(f).convert("L")).astype(np.uint16) * 257
        if (info.side, info.view, info.energy) == ("R", "CC", "le"):
            px = px[:, ::-1]
        write_mg_dicom(out / f"{f.stem}.dcm", px, side=info.side, view=info.view, energy=info.energy, patient_id="P66", pixel_spacing_mm=0.5)
    return out


def test_dicom_study_preview_then_all_views_hung_by_tags(make_window, qtbot, dicom_study):
    w = make_window()
    with qtbot.waitSignal(w.study_ready, timeout=20000):
        w.open_study(dicom_study)
    assert len(w.study) == 8
    p = w.grid.panels4["R_CC"]
    img = p.current
    # R-CC LE was shown from its own file before the whole study was read, and kept.
    preview = w.studies.preview
    assert preview is not None and (preview.key, preview.energy) == ("R_CC", "le")
    assert img is preview and img.source == w.study.get("R_CC", "le").source
    assert img.flips.source == "tags" and img.flips.horizontal  # stored mirrored, tags say so
    # Displayed with the chest wall on the right, like the un-mirrored original.
    cols = (img.levels[0] > 20 * 257).mean(axis=0)
    assert cols[int(img.tissue_box[2]) - 3] > 0.5 > cols[int(img.tissue_box[0]) + 3]
    assert img.raw.dtype == np.uint16
    # Cursor values are the stored 16-bit values of the original pixel (flip undone).
    scene = p.vb.mapViewToScene(p.vb.mapToView(p.vb.rect().center()))
    view_pt = p.vb.mapSceneToView(scene)
    col, row = img.flips.pixel_at(view_pt.x(), view_pt.y(), img.shape)
    assert img.value_at(col, row) == float(img.raw[row, col])
    # Hovering there reads out the position in pixels and millimetres and the stored value.
    p._on_mouse_moved(scene)
    expected = f"R-CC  LE  x={col} y={row} ({col * 0.5:.1f}, {row * 0.5:.1f} mm)  value={img.raw[row, col]:g}"
    assert w.cursor_label.text() == expected
    assert all(q.has_image for q in w.grid.panels4.values())
