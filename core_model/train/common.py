"""Shared training plumbing: seeding, DDP under torchrun, patient-level splits, logs.

Used by the segmentation and classification trainers so both behave the same:
deterministic from a seed, split by patient (never by image), runnable under
``torchrun`` with DistributedDataParallel (gloo on CPU, nccl on CUDA), and
leaving a metrics CSV, a learning-curve PNG and the resolved config in RUN_DIR.
"""

from __future__ import annotations

import csv
import os
import random
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterable, Sequence

import numpy as np
import torch
import torch.distributed as dist

from core_model.io.atomic import atomic_path, write_text
from core_model.io.jsonsafe import dumps


def seed_everything(seed: int) -> torch.Generator:
    random.seed(seed)
    np.random.seed(seed % (2**32))
    torch.manual_seed(seed)
    g = torch.Generator()
    g.manual_seed(seed)
    return g


@dataclass
class DistInfo:
    rank: int = 0
    world_size: int = 1
    local_rank: int = 0

    @property
    def enabled(self) -> bool:
        return self.world_size > 1

    @property
    def is_main(self) -> bool:
        return self.rank == 0


def init_distributed(device: torch.device) -> DistInfo:
    """Join the process group torchrun set up (env RANK/WORLD_SIZE); no-op otherwise."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world <= 1:
        return DistInfo()
    if not dist.is_initialized():
        backend = "nccl" if device.type == "cuda" else "gloo"
        dist.init_process_group(backend=backend)
    info = DistInfo(rank=dist.get_rank(), world_size=dist.get_world_size(), local_rank=int(os.environ.get("LOCAL_RANK", "0")))
    if device.type == "cuda":
        torch.cuda.set_device(info.local_rank)
    return info


def cleanup_distributed() -> None:
    if dist.is_available() and dist.is_initialized():
        dist.destroy_process_group()


def _collective_device() -> torch.device:
    # NCCL reduces only CUDA tensors; gloo takes CPU ones.
    if dist.get_backend() == "nccl":
        return torch.device("cuda", torch.cuda.current_device())
    return torch.device("cpu")


def all_reduce_sum(t: torch.Tensor) -> torch.Tensor:
    """Sum of ``t`` over all ranks (on any backend), returned on the CPU."""
    t = t.to(_collective_device())
    dist.all_reduce(t, op=dist.ReduceOp.SUM)
    return t.cpu()


def all_reduce_mean(values: Sequence[float], info: DistInfo) -> list[float]:
    if not info.enabled:
        return list(values)
    t = all_reduce_sum(torch.tensor(list(values), dtype=torch.float64))
    return (t / info.world_size).tolist()


def all_reduce_min_int(value: int, info: DistInfo) -> int:
    """The smallest ``value`` of all ranks, so that every rank takes the same decision."""
    if not info.enabled:
        return int(value)
    t = torch.tensor([int(value)], dtype=torch.int64).to(_collective_device())
    dist.all_reduce(t, op=dist.ReduceOp.MIN)
    return int(t.item())


def patient_split(patients: Iterable[str], fractions: Sequence[float], seed: int,
                  forced: dict[str, int] | None = None) -> list[list[str]]:
    """Split patient ids into len(fractions) disjoint groups, deterministically.

    ``forced`` pins given patients to a group (e.g. the bundled demo patient to
    validation, so the demo never shows a training image).
    """
    forced = dict(forced or {})
    rest = sorted(set(patients) - set(forced))
    rng = random.Random(seed)
    rng.shuffle(rest)
    n = len(rest) + len(forced)
    groups: list[list[str]] = [[] for _ in fractions]
    for pid, g in forced.items():
        groups[g].append(pid)
    targets = [round(f * n) for f in fractions]
    i = 0
    for g, target in enumerate(targets):
        while len(groups[g]) < target and i < len(rest):
            groups[g].append(rest[i])
            i += 1
    groups[0].extend(rest[i:])
    return [sorted(g) for g in groups]


def patient_kfold(patients: Iterable[str], k: int, seed: int) -> list[tuple[list[str], list[str], list[str]]]:
    """k folds of (train, val, test) patient lists.

    Each fold's test set is one k-th of the patients (every patient is tested
    exactly once); validation is the next two k-ths and training the rest —
    with k=10 this is the paper's 7:2:1.
    """
    ids = sorted(set(patients))
    if k < 3 or len(ids) < k:
        raise ValueError(f"k-fold needs k >= 3 and at least k patients (k={k}, patients={len(ids)})")
    rng = random.Random(seed)
    rng.shuffle(ids)
    chunks = [ids[i::k] for i in range(k)]
    n_val = max(1, round(0.2 * k))
    folds = []
    for f in range(k):
        test = chunks[f]
        val = [p for j in range(1, n_val + 1) for p in chunks[(f + j) % k]]
        train = [p for j in range(n_val + 1, k) for p in chunks[(f + j) % k]]
        folds.append((sorted(train), sorted(val), sorted(test)))
    return folds


class MetricsLog:
    """Append-only metrics CSV (one row per epoch) that survives resume."""

    def __init__(self, path: str | Path):
        self.path = Path(path)

    def rows(self) -> list[dict[str, str]]:
        if not self.path.is_file():
            return []
        with open(self.path, newline="") as f:
            return list(csv.DictReader(f))

    def truncate_after(self, epoch: int) -> None:
        """On resume, drop rows past the checkpointed epoch so the log matches the state."""
        rows = [r for r in self.rows() if int(r["epoch"]) <= epoch]
        if not rows:
            self.path.unlink(missing_ok=True)
            return
        with atomic_path(self.path) as tmp, open(tmp, "w", newline="") as f:
            w = csv.DictWriter(f, fieldnames=list(rows[0]))
            w.writeheader()
            w.writerows(rows)

    def append(self, row: dict[str, Any]) -> None:
        new = not self.path.is_file()
        with open(self.path, "a", newline="") as f:
            w = csv.DictWriter(f, fieldnames=list(row))
            if new:
                w.writeheader()
            w.writerow({k: (f"{v:.6g}" if isinstance(v, float) else v) for k, v in row.items()})


def plot_curves(csv_path: str | Path, png_path: str | Path, keys: Sequence[str], title: str) -> None:
    """Learning curves from the metrics CSV (matplotlib, Agg backend, no window)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rows = MetricsLog(csv_path).rows()
    if not rows:
        return
    epochs = [int(r["epoch"]) for r in rows]
    fig, ax = plt.subplots(figsize=(6, 4), dpi=100)
    for k in keys:
        if k in rows[0]:
            ax.plot(epochs, [float(r[k]) for r in rows], label=k)
    ax.set_xlabel("epoch")
    ax.set_title(title)
    ax.grid(alpha=0.3)
    ax.legend()
    fig.tight_layout()
    fig.savefig(png_path)
    plt.close(fig)


def write_json(path: str | Path, obj: Any) -> None:
    """Configs, metrics and summaries; a metric that could not be computed is null, with a warning."""
    write_text(path, dumps(obj, label=str(path), indent=2, default=str) + "\n")
