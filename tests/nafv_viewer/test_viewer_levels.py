"""A JPEG 2000 study opens from a reduced level; zooming in decodes full resolution off the GUI thread."""

from __future__ import annotations

import threading
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from core_model.io.dicom_write import write_mg_dicom
from core_model.io.naming import parse_cdd_cesm_name
from tests.model_files import tiny_weights

J2K = "1.2.840.10008.1.2.4.90"
ROWS, COLS = 2048, 1664


@pytest.fixture(scope="module")
def j2k_study(demo_dir, tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("j2k-view")
    for f in sorted(Path(demo_dir).glob("P66_*.jpg")):
        info = parse_cdd_cesm_name(f)
        with Image.open(f) as im:
            big = np.asarray(im.convert("F").resize((COLS, ROWS), Image.BILINEAR), dtype=np.float32) * 16
        write_mg_dicom(folder / f"{f.stem}.dcm", np.clip(big, 0, 4095).astype(np.uint16), side=info.side,
                       view=info.view, energy=info.energy, patient_id="P66", pixel_spacing_mm=0.07,
                       transfer_syntax=J2K)
    return folder


def test_opens_from_a_level_and_zoom_decodes_full_resolution_off_the_gui_thread(make_window, qtbot, j2k_study):
    w = make_window()
    with qtbot.waitSignal(w.study_ready, timeout=60000):
        w.open_study(j2k_study)
    panels = w.grid.visible_panels()
    assert len(panels) == 4 and all(p.has_image for p in panels)
    for p in panels:
        img = p.current
        assert img.pyramid is not None and img.levels[0] is None  # full resolution not decoded to open
        assert not img.pyramid.decoded(0)
        assert p.drawn.level >= 1 and p.drawn.image is img
        assert p.image_item.image.shape[1] < p.drawn.rect.width()  # fewer pixels drawn than the part covers

    p = w.grid.panels4["R_CC"]
    img = p.current
    threads = []
    decode = img.pyramid._decode
    img.pyramid._decode = lambda k: (threads.append(threading.current_thread()), decode(k))[1]
    # zoom to about one image pixel per screen pixel: full resolution wanted
    p.set_manual_range((0.4, 0.4, 0.4 + p.vb.width() / COLS, 0.4 + p.vb.height() / ROWS))
    assert p.decoding_level
    assert p.drawn.level >= 1  # meanwhile the coarser level stays on screen
    qtbot.waitUntil(lambda: p.level_label.isVisible() or p.drawn.level == 0, timeout=10000)
    assert "Decoding full resolution" in p.level_label.text()  # said while it decodes
    qtbot.waitUntil(lambda: p.drawn is not None and p.drawn.level == 0, timeout=30000)
    assert threads and all(t is not threading.main_thread() for t in threads)
    assert not p.decoding_level and not p.level_label.isVisible()
    # the full-resolution pixels drawn are the file's, in reading position
    full = img.flips.apply(img.pyramid.level(0))
    on_screen = p.image_item.mapRectToParent(p.image_item.boundingRect())  # where the drawn pixels lie, in image coordinates
    sx, sy, sw, sh = (int(round(v)) for v in on_screen.getRect())
    np.testing.assert_array_equal(p.image_item.image, full[sy:sy + sh, sx:sx + sw])
    # only what is shown is decoded: the recombined images behind the low-energy ones stay at screen size
    hidden = [q.images[e] for q in panels for e in q.images if e != q.shown_energy]
    assert hidden and all(not d.pyramid.decoded(0) for d in hidden)


def test_warm_up_loads_the_weights_once_and_the_first_analysis_reuses_them(make_window, qtbot, demo_dir, tmp_path):
    from core_model.inference.analyzer import Analyzer

    paths = tiny_weights(tmp_path)
    made = []

    def factory():
        made.append(Analyzer(paths["seg"], paths["cls"], device="cpu", num_threads=1))
        return made[-1]

    w = make_window()
    w.analyses.analyzer_factory = factory
    w.warm_analysis().join(120)
    assert len(made) == 1 and w.analyses.analyzer is made[0]
    with qtbot.waitSignal(w.study_ready, timeout=10000):
        w.open_study(demo_dir)
    with qtbot.waitSignal(w.analysis_finished, timeout=60000) as blocker:
        w.run_analysis()
    assert len(made) == 1  # the weights were loaded once, by the warm-up
    assert blocker.args[0].views  # a real analysis of the demo, not of the warm-up study
    assert blocker.args[0].affected_side in ("L", "R", None)
