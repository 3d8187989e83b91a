"""A file is written whole or not at all, and a failed write leaves the old one and no debris."""

from __future__ import annotations

import pytest

from core_model.io.atomic import atomic_path, write_bytes, write_text


def test_write_replaces_the_whole_file(tmp_path):
    target = tmp_path / "sub" / "report.json"
    write_text(target, "first version, long")
    write_text(target, "second")
    assert target.read_text() == "second"
    write_bytes(target, b"\x00\x01", durable=False)
    assert target.read_bytes() == b"\x00\x01"
    assert sorted(p.name for p in target.parent.iterdir()) == ["report.json"]


def test_a_failed_write_keeps_the_old_file_and_leaves_no_temporary(tmp_path):
    target = tmp_path / "review.json"
    write_text(target, "reader's work")
    with pytest.raises(RuntimeError):
        with atomic_path(target) as tmp:
            tmp.write_text("half of the new")
            raise RuntimeError("disk full")
    assert target.read_text() == "reader's work"
    assert [p.name for p in tmp_path.iterdir()] == ["review.json"]


def test_nothing_written_inside_the_block_is_an_error_and_changes_nothing(tmp_path):
    target = tmp_path / "a.pdf"
    with pytest.raises(FileNotFoundError):
        with atomic_path(target):
            pass
    assert list(tmp_path.iterdir()) == []


def test_a_private_file_is_private_from_the_first_byte(tmp_path):
    target = tmp_path / "review.json"
    with atomic_path(target, mode=0o600) as tmp:
        assert tmp.stat().st_mode & 0o777 == 0o600
        tmp.write_text("patient data")
    assert target.stat().st_mode & 0o777 == 0o600 and target.read_text() == "patient data"
