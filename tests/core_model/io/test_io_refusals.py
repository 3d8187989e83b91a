"""Files that would hang the loader or mislead the reader are refused quickly, with a message naming the cause."""

from __future__ import annotations

import os
import time

import numpy as np
import pydicom
import pytest
from PIL import Image

from core_model.domain.errors import StudyLoadError
from core_model.domain.study import file_safe_id
from core_model.io import list_patients, load_study, write_mg_dicom
from tests.study_files import GIB, set_raw_ds

MIB = 1024**2


def _warning_for(study, name: str) -> str:
    hits = [w for w in study.warnings if name in w]
    assert len(hits) == 1, study.warnings
    return hits[0]


def _sparse(path, size: int, head: bytes) -> None:
    """``head`` followed by zeros up to ``size`` bytes, without writing the zeros (a sparse file)."""
    with open(path, "r+b" if path.exists() else "wb") as fh:
        fh.seek(0)
        fh.write(head)
        fh.truncate(size)


@pytest.fixture
def seven_and_a_slot(dicom_study):
    """The eight-image study with L-MLO RC removed: seven good images and a free slot."""
    folder, images = dicom_study
    (folder / "P66_L_MLO_rc.dcm").unlink()
    return folder, images


# An element (0008,0010) of length 0, explicit VR: what a header of junk parses as, 8 bytes at a time.
EMPTY_ELEMENT = b"\x08\x00\x10\x00SH\x00\x00"


@pytest.mark.parametrize("size", [2 * GIB, 64 * MIB], ids=["2GiB", "64MiB"])
@pytest.mark.parametrize("kind", ["zeros", "empty_elements", "valid_header"])
def test_huge_sparse_dicom_is_refused_quickly(seven_and_a_slot, demo_small, kind, size):
    folder, images = seven_and_a_slot
    big = folder / "big.dcm"
    if kind == "zeros":
        _sparse(big, size, b"\0" * 128 + b"DICM")  # a preamble, then nothing but zeros
    elif kind == "empty_elements":
        _sparse(big, size, b"\0" * 128 + b"DICM" + EMPTY_ELEMENT * (MIB // 2))  # 4 MiB of them, then zeros
    else:
        # A real L-MLO RC file (the free slot) padded with zeros after its pixel data.
        write_mg_dicom(big, demo_small[("L", "MLO", "rc")], side="L", view="MLO", energy="rc", patient_id="P66")
        _sparse(big, size, big.read_bytes())
    # CPU time, not wall time: other jobs on the machine must not fail the test; parsing the old
    # way cost about 0.4 CPU-s per MB (over 20 s for the 64 MiB file, minutes for 2 GiB)
    t0 = time.process_time()
    assert list_patients(folder) == ["P66"]
    study = load_study(folder)
    elapsed = time.process_time() - t0
    assert elapsed < 5.0, f"took {elapsed:.1f} CPU-s"
    assert len(study) == 7 and not study.has("L_MLO", "rc")
    msg = _warning_for(study, "big.dcm")
    assert msg.startswith(f"{big}: skipped") and "damaged or truncated" not in msg
    if size == 2 * GIB:
        assert "the file is 2.0 GB" in msg
    elif kind == "zeros":
        assert "only zeros where the header should be" in msg
    elif kind == "empty_elements":
        assert "header runs past 2.0 MB without reaching the image" in msg
    else:
        assert "the file is 64.0 MB" in msg and "256 x 200" in msg


def test_large_private_data_before_the_pixels_still_loads(tmp_path, demo_small):
    # Vendors keep big private blocks in the header: they are skipped unread, not counted against the header cap.
    path = write_mg_dicom(tmp_path / "L_CC.dcm", demo_small[("L", "CC", "le")], side="L", view="CC", energy="le",
                          patient_id="P66")
    ds = pydicom.dcmread(path)
    block = ds.private_block(0x0029, "NAFV TEST", create=True)
    block.add_new(0x10, "OB", bytes(range(256)) * (12 * 4096))  # 12 MiB
    ds.save_as(path)
    study = load_study(tmp_path)
    assert study.warnings == [] and np.array_equal(study.get("L_CC", "le").pixels, demo_small[("L", "CC", "le")])


@pytest.mark.parametrize("victim, slope, said", [
    ("P66_R_CC_le.dcm", b"0 ", "RescaleSlope is 0"),
    ("P66_R_MLO_rc.dcm", b"two ", "skipped, its RescaleSlope value 'two' is not a number"),
])
def test_a_bad_rescale_slope_skips_only_that_file_naming_the_tag(dicom_study, victim, slope, said):
    folder, _ = dicom_study
    path = folder / victim
    set_raw_ds(path, "RescaleSlope", slope)
    set_raw_ds(path, "RescaleIntercept", b"0 ")
    study = load_study(folder)
    key, energy = victim[4:-7], victim[-6:-4]
    assert len(study) == 7 and not study.has(key, energy)
    msg = _warning_for(study, victim)
    assert msg.startswith(f"{path}: skipped") and said in msg


@pytest.mark.parametrize("bad", [np.nan, np.inf, -np.inf])
def test_non_finite_pixels_are_refused(tmp_path, demo_small, bad):
    good = demo_small[("L", "CC", "le")].astype(np.float32)
    Image.fromarray(good).save(tmp_path / "L_CC_LE.tif")
    px = demo_small[("L", "CC", "rc")].astype(np.float32)
    px[10, 20] = bad
    Image.fromarray(px).save(tmp_path / "L_CC_RC.tif")
    study = load_study(tmp_path)
    assert list(study.images) == [("L_CC", "le")]
    msg = _warning_for(study, "L_CC_RC.tif")
    assert msg.startswith(f"{tmp_path / 'L_CC_RC.tif'}: skipped") and "not a number" in msg
    (tmp_path / "L_CC_LE.tif").unlink()
    with pytest.raises(StudyLoadError, match="not a number"):
        load_study(tmp_path)


def test_multi_valued_patient_id_is_joined(tmp_path, demo_small, write_study):
    write_study(tmp_path, {k: v for k, v in demo_small.items() if k[0] == "L"}, patient_id="A12")
    for f in tmp_path.glob("*.dcm"):
        ds = pydicom.dcmread(f)
        ds.PatientID = ["A12", "OTHER-7"]
        ds.save_as(f)
    assert list_patients(tmp_path) == ["A12\\OTHER-7"]
    study = load_study(tmp_path)
    assert study.patient_id == "A12\\OTHER-7" and len(study) == 4
    assert load_study(tmp_path, patient="A12\\OTHER-7").patient_id == "A12\\OTHER-7"


@pytest.mark.parametrize("pid, expected", [
    ("P12", "P12"),
    ("A12\\OTHER-7", "A12_OTHER-7"),
    ("../../etc", "etc"),
    ("", "study"),
    ("Müller Anna", "M_ller_Anna"),
])
def test_file_safe_id(pid, expected):
    assert file_safe_id(pid) == expected


def test_file_safe_id_caps_long_ids_and_keeps_them_apart():
    a, b = "X" * 299 + "A", "X" * 299 + "B"
    sa, sb = file_safe_id(a), file_safe_id(b)
    assert len(sa) <= 64 and len(sb) <= 64 and sa != sb
    assert sa.startswith("XXXX") and file_safe_id(a) == sa  # stable


@pytest.mark.filterwarnings("ignore:The value length")  # pydicom's note that LO holds 64 characters
def test_long_patient_id_loads_and_gives_a_short_safe_name(tmp_path, demo_small, write_study):
    pid = "P" + "1234567890" * 30  # 301 characters
    write_study(tmp_path, {k: v for k, v in demo_small.items() if k[0] == "R"}, patient_id=pid[:64])
    for f in tmp_path.glob("*.dcm"):  # LO holds 64 characters; modalities still write longer ones
        ds = pydicom.dcmread(f)
        ds.PatientID = pid
        ds.save_as(f)
    study = load_study(tmp_path)
    assert study.patient_id == pid and len(study) == 4
    assert len(file_safe_id(study.patient_id)) <= 64


def test_unreadable_subfolder_is_named(tmp_path, demo_small, write_study, monkeypatch):
    write_study(tmp_path / "a", {k: v for k, v in demo_small.items() if k[0] == "L"})
    (tmp_path / "locked").mkdir()
    real_scandir = os.scandir

    def scandir(path="."):
        if os.fspath(path) == os.fspath(tmp_path / "locked"):
            raise PermissionError(13, "Permission denied", os.fspath(path))
        return real_scandir(path)

    monkeypatch.setattr(os, "scandir", scandir)
    study = load_study(tmp_path)
    assert len(study) == 4
    msg = _warning_for(study, "locked")
    assert msg == f"{tmp_path / 'locked'}: skipped, the folder cannot be read (permission denied)"


@pytest.mark.parametrize("name", ["P66_L_CC_rc.dcm", "P66_L_CC_rc"])
def test_unreadable_dicom_file_says_permission_denied(tmp_path, demo_small, write_study, monkeypatch, name):
    paths = write_study(tmp_path, {k: v for k, v in demo_small.items() if k[0] == "L"})
    victim = tmp_path / name
    paths[("L", "CC", "rc")].rename(victim)
    _deny(monkeypatch, victim)
    study = load_study(tmp_path)
    assert len(study) == 3 and not study.has("L_CC", "rc")
    msg = _warning_for(study, name)
    assert msg == f"{victim}: skipped, the file cannot be read (permission denied)"


def test_unreadable_image_file_says_permission_denied(tmp_path, cdd_test_dir, monkeypatch):
    import shutil

    for f in (cdd_test_dir / "images").glob("P12_*.jpg"):
        shutil.copy(f, tmp_path / f.name)
    victim = tmp_path / "P12_L_CM_CC.jpg"
    _deny(monkeypatch, victim)
    study = load_study(tmp_path)
    assert len(study) == 3
    assert _warning_for(study, "P12_L_CM_CC.jpg") == f"{victim}: skipped, the file cannot be read (permission denied)"


def _deny(monkeypatch, victim) -> None:
    """Make every open of ``victim`` fail as for a file the user may not read (tests run as root)."""
    import builtins
    import io

    real_open, real_io_open = builtins.open, io.open

    def guard(opener):
        def _open(file, *args, **kwargs):
            if isinstance(file, (str, os.PathLike)) and os.fspath(file) == os.fspath(victim):
                raise PermissionError(13, "Permission denied", os.fspath(file))
            return opener(file, *args, **kwargs)
        return _open

    monkeypatch.setattr(builtins, "open", guard(real_open))
    monkeypatch.setattr(io, "open", guard(real_io_open))
    real_fileio = io.FileIO

    class FileIO(real_fileio):
        def __init__(self, file, *args, **kwargs):
            if isinstance(file, (str, os.PathLike)) and os.fspath(file) == os.fspath(victim):
                raise PermissionError(13, "Permission denied", os.fspath(file))
            super().__init__(file, *args, **kwargs)

    monkeypatch.setattr(io, "FileIO", FileIO)
