"""A study's output folder is replaced whole or not at all, and the reader's own files in it stay."""

from __future__ import annotations

import os

import pytest

from core_model.domain.errors import NafvError
from core_model.io import result_dir
from core_model.io.result_dir import is_result_entry, staged_result_dir


def _tree(folder):
    return {str(p.relative_to(folder)): (p.read_bytes() if p.is_file() else None) for p in sorted(folder.rglob("*"))}


def _previous(folder, extra: bool):
    folder.mkdir()
    (folder / "analysis.json").write_text("old")
    (folder / "L_CC_mask.png").write_text("old mask")
    (folder / "P1_report_seg").mkdir()
    (folder / "P1_report_seg" / "L_CC_seg.dcm").write_text("old seg")
    if extra:
        (folder / "notes.txt").write_text("the reader's")


@pytest.mark.parametrize("name, ours", [
    ("analysis.json", True), ("R_MLO_overlay.png", True), ("report.pdf", True), ("P12_report.json", True),
    ("P12_report_seg", True), ("analysis.json.tmp", True), (".report.pdf.tmp", True), (".P12_report.json.4242.tmp", True),
    ("notes.txt", False), ("images", False), ("P12_L_CM_CC.jpg", False), (".x.abc.partial", False), ("L_CC.png", False),
])
def test_result_entries(name, ours):
    assert is_result_entry(name) is ours


@pytest.mark.parametrize("extra", [False, True], ids=["result-only", "with-reader-files"])
def test_success_replaces_the_previous_result(tmp_path, extra):
    target = tmp_path / "out"
    _previous(target, extra)
    with staged_result_dir(target) as stage:
        (stage / "analysis.json").write_text("new")
    want = {"analysis.json": b"new", **({"notes.txt": b"the reader's"} if extra else {})}
    assert _tree(target) == want
    assert os.listdir(tmp_path) == ["out"]


@pytest.mark.parametrize("extra", [False, True], ids=["result-only", "with-reader-files"])
def test_a_failing_rename_puts_everything_back(tmp_path, monkeypatch, extra):
    target = tmp_path / "out"
    _previous(target, extra)
    before = _tree(target)
    real, calls = os.rename, []

    def rename(src, dst):
        calls.append(src)
        if len(calls) == 2:  # after the first entry (or folder) moved
            raise OSError(5, "Input/output error")
        real(src, dst)

    monkeypatch.setattr(result_dir.os, "rename", rename)
    with pytest.raises(NafvError, match="Input/output error"):
        with staged_result_dir(target) as stage:
            (stage / "analysis.json").write_text("new")
            (stage / "L_CC_mask.png").write_text("new mask")
    assert _tree(target) == before
    assert os.listdir(tmp_path) == ["out"]


def test_target_that_is_a_file_is_a_clear_error(tmp_path):
    (tmp_path / "out").write_text("x")
    with pytest.raises(NafvError, match="not a folder"):
        with staged_result_dir(tmp_path / "out") as stage:
            (stage / "analysis.json").write_text("new")
    assert sorted(os.listdir(tmp_path)) == ["out"]
