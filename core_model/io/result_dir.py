"""A study's output folder, written whole or not at all.

Everything a run writes for one study (``analysis.json``, the PNGs, the
report) goes first into a hidden ``.NAME.*.partial`` folder beside the target
and is then renamed into place. The writes that can fail (a full disk, a
file-system error) all happen before the rename, so a failure leaves the
previous result exactly as it was, or nothing: never one patient's
``analysis.json`` beside another's masks. A run killed outright can leave a
``.partial`` folder behind; it is never mistaken for a result.

When the target also holds files that are not results (the reader's notes,
even the study itself, when ``--out`` is the study folder), only the result
entries are swapped, one rename each, and the rest stays where it is.
"""

from __future__ import annotations

import os
import re
import shutil
import tempfile
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator

from core_model.domain.errors import NafvError

# What a run writes into a study folder (core_model.io.analysis_json and
# core_model.export.bundle), with the temporary names of those writers. A
# previous result is whatever matches, so a rerun also drops files the new run
# does not write (heatmaps of a run with Grad-CAM, another patient's report).
_RESULT = (r"analysis\.json|[LR]_(?:CC|MLO)_(?:mask|probability|heatmap|overlay)\.png"
           r"|(?:[A-Za-z0-9._-]{1,81}_)?report(?:\.pdf|\.json|_seg)")
RESULT_NAME = re.compile(rf"\.?(?:{_RESULT})(?:\.\d+)?(?:\.tmp)?")


def is_result_entry(name: str) -> bool:
    return RESULT_NAME.fullmatch(name) is not None


@contextmanager
def staged_result_dir(target: str | Path) -> Iterator[Path]:
    """Yield an empty folder to write one study's results into; on leaving, it becomes ``target``.

    On an exception the staged folder is removed and ``target`` is untouched.
    """
    target = Path(target)
    if target.is_symlink():  # stage beside the real folder: a rename cannot cross file systems
        target = target.resolve()
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
        stage = Path(tempfile.mkdtemp(prefix=f".{target.name[:40]}.", suffix=".partial", dir=target.parent))
    except OSError as exc:
        raise NafvError(f"cannot create the output folder ({exc.strerror or exc})", target) from None
    try:
        yield stage
        _put_in_place(stage, target)
    except BaseException:
        shutil.rmtree(stage, ignore_errors=True)
        raise


def _put_in_place(stage: Path, target: Path) -> None:
    """Rename ``stage`` to ``target``: renames only, which need no disk space and do not fail half-written."""
    try:
        if not target.exists() and not target.is_symlink():
            os.rename(stage, target)
            return
        if not target.is_dir():
            raise NafvError("exists and is not a folder; choose another output folder", target)
        new = {p.name for p in stage.iterdir()}
        entries = [p.name for p in target.iterdir()]
        ours = [n for n in entries if is_result_entry(n) or n in new]
        old = stage.with_name(stage.name[: -len(".partial")] + ".old")
        if len(ours) == len(entries):  # a previous result and nothing else: swap the folder whole
            os.rename(target, old)
            try:
                os.rename(stage, target)
            except OSError:
                os.rename(old, target)
                raise
            shutil.rmtree(old, ignore_errors=True)
            return
        _swap_entries(stage, target, old, ours, sorted(new))
    except OSError as exc:
        raise NafvError(f"cannot put the results in place ({exc.strerror or exc})", target) from None


def _swap_entries(stage: Path, target: Path, old: Path, ours: list[str], new: list[str]) -> None:
    """Swap only our entries of ``target``; on a failure put back what was moved."""
    old.mkdir()
    out_moved: list[str] = []
    in_moved: list[str] = []
    try:
        for n in ours:
            os.rename(target / n, old / n)
            out_moved.append(n)
        for n in new:
            os.rename(stage / n, target / n)
            in_moved.append(n)
    except OSError:
        try:
            for n in in_moved:
                os.rename(target / n, stage / n)
            for n in out_moved:
                os.rename(old / n, target / n)
        except OSError:
            pass  # nothing more can be done; the previous result is still in the .old folder beside it
        else:
            old.rmdir()
        raise
    shutil.rmtree(old, ignore_errors=True)
    stage.rmdir()
