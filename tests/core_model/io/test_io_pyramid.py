"""Resolution levels: a JPEG 2000 file decodes a reduced level directly, equal to the full decode downsampled."""

from __future__ import annotations

import threading
from pathlib import Path

import numpy as np
import pydicom
import pytest
from PIL import Image
from scipy import ndimage

from core_model.domain.study import StudyImage
from core_model.io import load_study
from core_model.io.dicom import classify, load_slot, read_header
from core_model.io.dicom_write import write_mg_dicom
from core_model.io.pyramid import ImagePyramid, LevelledStudyImage, half, level_shape, pixels_for

J2K = "1.2.840.10008.1.2.4.90"


@pytest.fixture(scope="module")
def demo_12bit(demo_dir) -> np.ndarray:
    """The demo's right CC low-energy image at 1024 x 832, spread over 12 bits (a real breast, not noise)."""
    with Image.open(Path(demo_dir) / "P66_R_DM_CC.jpg") as im:
        small = np.asarray(im.convert("F").resize((832, 1024), Image.BILINEAR), dtype=np.float32)
    return np.clip(small * 16 + 7, 0, 4095).astype(np.uint16)


def _write(tmp_path: Path, px: np.ndarray, name: str = "r_cc.dcm", **kw) -> Path:
    return write_mg_dicom(tmp_path / name, px, side="R", view="CC", energy="le", patient_id="P66",
                          pixel_spacing_mm=0.07, **kw)


def _load(path: Path) -> StudyImage:
    return load_slot(classify(path, read_header(path)))


def test_j2k_loads_levelled_and_full_level_is_lossless(tmp_path, demo_12bit):
    path = _write(tmp_path, demo_12bit, transfer_syntax=J2K)
    image = _load(path)
    assert isinstance(image, LevelledStudyImage)
    assert image.shape == demo_12bit.shape
    # only a reduced level is decoded on open; the full resolution waits until something reads it
    assert not image.pyramid.decoded(0)
    assert image.pyramid.native >= 3
    np.testing.assert_array_equal(image.pixels, demo_12bit)  # lossless, the same values pydicom gives
    np.testing.assert_array_equal(image.pixels, pydicom.dcmread(path).pixel_array)


@pytest.mark.parametrize("k", [1, 2, 3])
def test_j2k_reduced_level_matches_full_decode_downsampled(tmp_path, demo_12bit, k):
    image = _load(_write(tmp_path, demo_12bit, transfer_syntax=J2K))
    reduced = image.pyramid.level(k)  # straight from the code stream
    assert reduced.shape == level_shape(demo_12bit.shape, k) == (1024 >> k, 832 >> k)
    # JPEG 2000's low-pass band samples every 2**k-th pixel; a block mean is centred (2**k - 1) / 2
    # pixels further on: shift the full decode by that much, then block-average it to the level
    s = (2 ** k - 1) / 2
    down = ndimage.shift(demo_12bit.astype(np.float64), (s, s), order=1, mode="nearest")
    for _ in range(k):
        down = half(down)
    top = float(demo_12bit.max())
    diff = reduced.astype(np.float64) - down
    # the wavelet filter is sharper than a block mean; on a real breast they agree to a fraction of a percent
    assert abs(diff.mean()) / top < 0.001
    assert np.abs(diff).mean() / top < 0.01
    assert np.corrcoef(reduced.ravel().astype(np.float64), down.ravel())[0, 1] > 0.99
    assert not image.pyramid.decoded(0)


def test_uncompressed_levels_are_block_means_and_equal_values(tmp_path, demo_12bit):
    image = _load(_write(tmp_path, demo_12bit))
    assert not isinstance(image, LevelledStudyImage)
    px, scale = pixels_for(image, 256)
    assert px.shape == (256, 208) and scale == pytest.approx(0.25)
    np.testing.assert_array_equal(px, half(half(demo_12bit)))


def test_monochrome1_and_window_same_at_every_level(tmp_path, demo_12bit):
    plain = _load(_write(tmp_path, demo_12bit, name="m2.dcm", window=(2000.0, 3000.0), transfer_syntax=J2K))
    inv = _load(_write(tmp_path, demo_12bit, name="m1.dcm", window=(2000.0, 3000.0),
                       photometric="MONOCHROME1", transfer_syntax=J2K))
    assert inv.window == plain.window
    np.testing.assert_array_equal(inv.pixels, plain.pixels)
    # the stored values are inverted before coding: the levels agree up to the integer rounding of two lifting steps per level
    np.testing.assert_allclose(inv.pyramid.level(2).astype(float), plain.pyramid.level(2).astype(float), atol=6)


def test_odd_sized_j2k_halves_past_the_levels_pillow_cannot_size(tmp_path, demo_12bit):
    odd = demo_12bit[:1001, :777]
    image = _load(_write(tmp_path, odd, transfer_syntax=J2K))
    for k in range(image.pyramid.n_levels):
        assert image.pyramid.level(k).shape == level_shape(odd.shape, k)
    np.testing.assert_array_equal(image.pixels, odd)


def test_truncated_code_stream_costs_that_file_with_a_message(tmp_path, demo_12bit):
    from pydicom.encaps import encapsulate, generate_frames

    from core_model.domain.errors import StudyLoadError

    path = _write(tmp_path, demo_12bit, transfer_syntax=J2K)
    ds = pydicom.dcmread(path)
    frame = next(generate_frames(ds.PixelData, number_of_frames=1))
    ds.PixelData = encapsulate([frame[: len(frame) // 3]])  # a transfer cut a third of the way
    ds.save_as(path)
    try:
        image = _load(path)
    except StudyLoadError as err:  # the coarse level already sits past the cut
        assert "cannot be decoded" in str(err)
        return
    # the coarse levels come first in the code stream and survive; the full level fails cleanly
    with pytest.raises(StudyLoadError, match="cannot be decoded"):
        _ = image.pixels


def test_levels_decode_once_across_threads(demo_12bit):
    calls = []

    def decode(k):
        calls.append(k)
        return demo_12bit if k == 0 else half(demo_12bit)

    p = ImagePyramid(demo_12bit.shape, decode, native=1)
    out = []
    threads = [threading.Thread(target=lambda: out.append(p.level(0))) for _ in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert calls == [0] and all(o is out[0] for o in out)
    assert p.level(3).shape == level_shape(demo_12bit.shape, 3)
    assert calls == [0, 1]  # level 3 halved from level 1, the decoder's coarsest


def test_j2k_study_opens_without_full_decode(tmp_path, demo_dir):
    from core_model.io.naming import parse_cdd_cesm_name

    for f in sorted(Path(demo_dir).glob("P66_*.jpg")):
        info = parse_cdd_cesm_name(f)
        with Image.open(f) as im:
            px = (np.asarray(im.convert("L").resize((832, 1024)), dtype=np.uint16) * 16).astype(np.uint16)
        write_mg_dicom(tmp_path / f"{f.stem}.dcm", px, side=info.side, view=info.view, energy=info.energy,
                       patient_id="P66", transfer_syntax=J2K)
    study = load_study(tmp_path)
    assert len(study) == 8
    assert all(isinstance(im, LevelledStudyImage) and not im.pyramid.decoded(0) for im in study.images.values())
