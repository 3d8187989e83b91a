"""`nafv-train seg` under torchrun: two CPU processes, gloo, DistributedDataParallel."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest


@pytest.mark.slow
def test_torchrun_two_processes_one_epoch(cdd_test_dir, tmp_path):
    """Also the time budget under DDP: both ranks must agree to stop after epoch 1 of 3 (else they hang)."""
    out = tmp_path / "ddp"
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2",
           "-m", "core_model.cli.train", "seg", "--data", str(cdd_test_dir), "--out", str(out),
           "--arch", "nafv_seg_tiny", "--epochs", "3", "--max-minutes", "0.0001", "--batch-size", "1", "--threads", "1",
           "--no-progress"]
    r = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr[-3000:]
    cfg = json.loads((out / "config.json").read_text())
    assert cfg["world_size"] == 2
    card = json.loads((out / "best.json").read_text())
    assert card["training"]["world_size"] == 2 and 0.0 <= card["metrics"]["val_dice"] <= 1.0
    assert card["epochs_planned"] == 1 and card["epochs_requested"] == 3
    assert len((out / "metrics.csv").read_text().splitlines()) == 2  # one row, written by rank 0 only


@pytest.mark.slow
def test_ranks_that_disagree_take_the_smallest_plan(tmp_path):
    """The time-budget decision is reduced to one value on every rank, here from ranks proposing 7 and 4."""
    script = tmp_path / "agree.py"
    script.write_text(
        "import json, os, sys, torch.distributed as dist\n"
        "from core_model.train.common import DistInfo, all_reduce_mean, all_reduce_min_int\n"
        "dist.init_process_group('gloo')\n"
        "r = dist.get_rank()\n"
        "info = DistInfo(rank=r, world_size=2)\n"
        "out = {'min': all_reduce_min_int(7 if r == 0 else 4, info), 'mean': all_reduce_mean([r * 2.0], info)}\n"
        f"open(os.path.join({str(tmp_path)!r}, f'rank{{r}}.json'), 'w').write(json.dumps(out))\n"
        "dist.destroy_process_group()\n")
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(Path(__file__).resolve().parents[3])}
    r = subprocess.run([sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2", str(script)],
                       env=env, capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr[-3000:]
    for rank in (0, 1):
        got = json.loads((tmp_path / f"rank{rank}.json").read_text())
        assert got == {"min": 4, "mean": [1.0]}
