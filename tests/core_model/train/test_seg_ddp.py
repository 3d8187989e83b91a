"""`nafv-train seg` under torchrun: two CPU processes, gloo, DistributedDataParallel."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest


@pytest.mark.slow
def test_torchrun_two_processes_one_epoch(cdd_test_dir, tmp_path):
    out = tmp_path / "ddp"
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2",
           "-m", "core_model.train.cli", "seg", "--data", str(cdd_test_dir), "--out", str(out),
           "--arch", "nafv_seg_tiny", "--epochs", "1", "--batch-size", "1", "--threads", "1", "--no-progress"]
    r = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr[-3000:]
    cfg = json.loads((out / "config.json").read_text())
    assert cfg["world_size"] == 2
    card = json.loads((out / "best.json").read_text())
    assert card["training"]["world_size"] == 2 and 0.0 <= card["metrics"]["val_dice"] <= 1.0
    assert len((out / "metrics.csv").read_text().splitlines()) == 2  # one row, written by rank 0 only
