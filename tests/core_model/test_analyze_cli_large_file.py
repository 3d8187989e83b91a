"""nafv-analyze on a study folder holding a 2 GB damaged file: the seven good images are analysed, quickly."""

from __future__ import annotations

import json
import os
import resource
import subprocess
import sys
from pathlib import Path

import pytest

from tests.study_files import seven_images_and_a_huge_file

REPO = Path(__file__).resolve().parents[2]


@pytest.mark.slow
def test_a_2gb_sparse_file_beside_seven_images(tmp_path, demo_dir, weights):
    study = tmp_path / "study"
    big = seven_images_and_a_huge_file(study, demo_dir)
    out = tmp_path / "out"
    cmd = [sys.executable, "-m", "core_model.cli.analyze", str(study), "--out", str(out),
           "--weights-seg", str(weights["seg"]), "--weights-cls", str(weights["cls"]),
           "--device", "cpu", "--threads", "1", "--no-explain"]
    # CPU time of the child, so other jobs on the machine cannot fail the test; parsing the 2 GB
    # file the old way cost minutes of CPU
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    r = subprocess.run(cmd, cwd=REPO, env=dict(os.environ), capture_output=True, text=True, timeout=300)
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = (after.ru_utime + after.ru_stime) - (before.ru_utime + before.ru_stime)
    assert r.returncode == 0, r.stderr
    assert cpu < 10.0, f"took {cpu:.1f} CPU-s"
    assert str(big) in r.stderr  # the big file is named where the reader looks
    doc = json.loads((out / "analysis.json").read_text())
    assert any(str(big) in w for w in doc["warnings"])
    # Seven images loaded; L-MLO has no RC, so three views are segmented from six of them.
    analysed = {k for k, v in doc["views"].items() if v["analysed"]}
    assert analysed == {"R_CC", "L_CC", "R_MLO"}
    assert any(w.startswith("L_MLO: not segmented") for w in doc["warnings"])
