"""The one training loop: epochs, seeded shuffling, DDP shards, resume, best model, early stop, log.

Every trainer (``nafv-train seg``, the classifier head of ``nafv-train cls`` and
its backbone fine-tune) hands :func:`fit` its model, optimizer and two
functions, and the loop does the rest the same way for all of them:

- ``train_epoch(epoch, indices, generator) -> dict`` runs the steps of one
  epoch over ``indices`` (this process's share of the training samples, in
  this epoch's order) and returns the training figures for the log;
  ``generator`` is the epoch's seeded generator, for any further draw.
- ``validate(epoch) -> dict`` returns the validation figures; ``metric`` names
  the one that decides the best model (higher is better), ``tie_break`` one
  that decides ties (lower is better).

Order: epoch ``e`` (1-based) shuffles with a generator seeded by
:func:`epoch_seed` ``(seed, e)``, identical on every process and in a resumed
run, so a run is reproducible from its seed whatever its interruptions.

Resume files in ``run_dir`` (one format for every trainer): ``state.json``
(epoch, planned epochs, best value and epoch, epochs without a gain, epoch
times, plus what the trainer adds), ``last.safetensors`` (weights after the
last epoch), ``last_optim.safetensors`` (every optimizer state tensor, no
pickle) and the best weights (``best_name``). The metrics CSV gets one row per
epoch and is cut back to the checkpointed epoch on resume.
"""

from __future__ import annotations

import hashlib
import json
import math
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Sequence

import torch
from safetensors.torch import load_file, save_file

from core_model.domain.errors import NafvError
from core_model.io.atomic import atomic_path
from core_model.train.common import DistInfo, MetricsLog, plot_curves, write_json

STATE_NAME = "state.json"
LAST_NAME = "last.safetensors"
OPTIM_NAME = "last_optim.safetensors"
TIE = 1e-9  # metric values closer than this are a tie (AUCs of small folds often are)


def epoch_seed(seed: int, epoch: int) -> int:
    """The seed of everything random in one epoch (order, augmentation, sampled inputs)."""
    return seed * 1_000_003 + epoch


def epoch_generator(seed: int, epoch: int) -> torch.Generator:
    g = torch.Generator()
    g.manual_seed(epoch_seed(seed, epoch))
    return g


def shard(order: Sequence[int], dist: DistInfo) -> list[int]:
    """This process's share of an epoch's sample order.

    Rule: pad, do not drop. The order is repeated until it divides evenly, so
    every process takes the same number of steps (DDP's gradient all-reduce
    needs every process in every step) and every sample is seen every epoch:
    on data sets of a few hundred breasts, dropping the remainder would leave
    up to world_size - 1 cases unseen per epoch, while padding repeats as many.
    """
    order = list(order)
    if dist.world_size <= 1 or not order:
        return order
    per_rank = -(-len(order) // dist.world_size)
    padded = (order * (dist.world_size + 1))[: per_rank * dist.world_size]
    return padded[dist.rank::dist.world_size]


def save_weights(model: torch.nn.Module, path: Path) -> None:
    """The model's state dict as safetensors, written whole or not at all."""
    with atomic_path(path) as tmp:
        save_file({k: v.detach().contiguous().cpu() for k, v in model.state_dict().items()}, str(tmp))


def save_optimizer(opt: torch.optim.Optimizer, path: Path) -> None:
    """Every per-parameter state tensor (SGD momentum; AdamW moments and step) as safetensors, no pickle."""
    tensors = {}
    for gi, group in enumerate(opt.param_groups):
        for pi, p in enumerate(group["params"]):
            for name, value in opt.state.get(p, {}).items():
                t = value if torch.is_tensor(value) else torch.tensor(float(value))
                tensors[f"{gi}.{pi}.{name}"] = t.detach().contiguous().cpu()
    with atomic_path(path) as tmp:
        save_file(tensors, str(tmp))


def load_optimizer(opt: torch.optim.Optimizer, path: Path) -> None:
    tensors = load_file(str(path))
    for gi, group in enumerate(opt.param_groups):
        for pi, p in enumerate(group["params"]):
            prefix = f"{gi}.{pi}."
            for key, t in tensors.items():
                if key.startswith(prefix):
                    name = key[len(prefix):]
                    # AdamW keeps its step count on the CPU; everything else lives beside the parameter
                    opt.state[p][name] = t if name == "step" else t.to(p.device)


def _sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def read_state(run_dir: str | Path) -> dict[str, Any]:
    """The resume state of a run folder; a user error when there is none."""
    path = Path(run_dir) / STATE_NAME
    if not path.is_file():
        raise NafvError("nothing to resume: no state.json in the run folder", run_dir)
    return json.loads(path.read_text(encoding="utf-8"))


def planned_epochs(state: dict[str, Any], requested: int) -> int:
    """Epochs a resumed run plans: the same command again keeps the plan a re-planning cut (so a
    schedule does not jump back); a different ``--epochs`` is a deliberate new plan."""
    if state.get("epochs_requested") == requested and state.get("epochs_planned"):
        return int(state["epochs_planned"])
    return requested


@dataclass
class EpochRecord:
    """What one epoch gave, as the callbacks and the log see it."""

    epoch: int
    epochs: int  # planned, after any re-planning
    train: dict[str, Any]
    val: dict[str, Any]
    seconds: float
    improved: bool
    best: float | None
    best_epoch: int
    best_metrics: dict[str, Any] = field(default_factory=dict)
    epoch_times: list[float] = field(default_factory=list)


@dataclass
class LoopResult:
    best: float | None  # None: no metric, or it could never be computed
    best_epoch: int
    best_metrics: dict[str, Any]
    epochs_run: int
    epochs_planned: int
    stopped_early: bool
    epoch_times: list[float]


def _value(x: Any) -> float:
    """A metric for comparison: one that could not be computed (None, NaN) ranks below every real one."""
    return -math.inf if x is None or (isinstance(x, float) and math.isnan(x)) else float(x)


def _lower(x: Any) -> float:
    """A tie-breaker (lower is better): one that could not be computed ranks above every real one."""
    return math.inf if x is None or (isinstance(x, float) and math.isnan(x)) else float(x)


def _finite_or_none(x: float) -> float | None:
    return x if math.isfinite(x) else None


def fit(model: torch.nn.Module, optimizer: torch.optim.Optimizer, n_train: int,
        train_epoch: Callable[[int, list[int], torch.Generator], dict[str, Any]],
        validate: Callable[[int], dict[str, Any]] | None, *, epochs: int, seed: int,
        run_dir: str | Path | None = None, dist: DistInfo | None = None,
        metric: str | None = None, tie_break: str | None = None, patience: int | None = None,
        resume: bool = False, start_metrics: dict[str, Any] | None = None, restore_best: bool = True,
        write_weights: Callable[[Path, str, EpochRecord], None] | None = None,
        best_name: str = "best.safetensors", log_name: str = "metrics.csv",
        state_extra: Callable[[], dict[str, Any]] | None = None,
        replan: Callable[[int, int, list[float]], int] | None = None,
        describe: Callable[[EpochRecord], str] | None = None,
        curves: tuple[Sequence[str], str] | None = None, curves_each_epoch: bool = False) -> LoopResult:
    """Train ``model`` for up to ``epochs`` epochs over ``n_train`` samples; see the module docstring.

    ``patience``: stop after that many epochs without a gain in ``metric``.
    ``resume``: continue from the files in ``run_dir`` (a user error when there are none).
    ``start_metrics``: validation figures of the starting weights (epoch 0), the score to beat.
    ``write_weights(path, role, record)``: writes the weights ("best" / "last") with whatever the
    trainer adds (a model card); default: the bare state dict. ``replan(epoch, planned,
    whole_epoch_seconds)``: a new planned epoch count (e.g. a time budget), the same on every process.
    ``describe(record)``: the line printed after each epoch (none when not given).
    ``restore_best``: leave the best weights in ``model`` at the end.
    """
    dist = dist or DistInfo()
    run_dir = Path(run_dir) if run_dir is not None else None
    main = dist.is_main and run_dir is not None
    if resume and run_dir is None:
        raise ValueError("resume needs a run folder")
    write = write_weights or (lambda path, role, record: save_weights(model, path))
    log = MetricsLog(run_dir / log_name) if run_dir is not None else None
    if main:
        run_dir.mkdir(parents=True, exist_ok=True)

    planned, start = epochs, 1
    best, best_loss, best_epoch, bad = -math.inf, math.inf, 0, 0
    best_metrics: dict[str, Any] = {}
    times: list[float] = []
    best_state = None
    if start_metrics is not None and metric:
        best, best_epoch, best_metrics = _value(start_metrics.get(metric)), 0, dict(start_metrics)
        best_loss = _lower(start_metrics.get(tie_break)) if tie_break else math.inf
        best_state = {k: v.detach().clone().cpu() for k, v in model.state_dict().items()}
    if resume:
        st = read_state(run_dir)
        for name, digest in (st.get("files_sha256") or {}).items():
            if not (run_dir / name).is_file() or _sha256(run_dir / name) != digest:
                raise NafvError(f"cannot resume: {name} is not the file state.json was saved with (the run was "
                                f"stopped while saving epoch {int(st['epoch']) + 1}); continuing would repeat that "
                                "epoch on weights already trained on it. Start again, or start a new run from "
                                "best.safetensors", run_dir)
        model.load_state_dict(load_file(str(run_dir / LAST_NAME)))
        load_optimizer(optimizer, run_dir / OPTIM_NAME)
        start = int(st["epoch"]) + 1
        best = -math.inf if st.get("best") is None else float(st["best"])
        best_loss = math.inf if st.get("best_tie_break") is None else float(st["best_tie_break"])
        best_epoch, bad = int(st.get("best_epoch", 0)), int(st.get("bad_epochs", 0))
        best_metrics, times = dict(st.get("best_metrics") or {}), list(st.get("epoch_times", []))
        planned = planned_epochs(st, epochs)
        best_path = run_dir / best_name
        best_state = load_file(str(best_path)) if best_path.is_file() else None
        if dist.is_main:
            log.truncate_after(int(st["epoch"]))

    stopped = bool(patience) and bad >= patience  # resumed after an early stop: nothing left to train
    epoch, starts = start, []
    while not stopped and epoch <= planned:
        t0 = time.time()
        starts.append(t0)
        g = epoch_generator(seed, epoch)
        order = torch.randperm(n_train, generator=g).tolist()
        train_out = train_epoch(epoch, shard(order, dist), g) or {}
        val_out = validate(epoch) if validate is not None else {}
        times.append(time.time() - t0)
        if replan is not None:
            now = time.time()
            whole = [b - a for a, b in zip(starts, starts[1:])] + [now - starts[-1]]
            planned = replan(epoch, planned, whole)
        improved = False
        if metric:
            value = _value(val_out.get(metric))
            loss = _lower(val_out.get(tie_break)) if tie_break else math.inf
            gain = value > best + TIE
            if gain or (tie_break is not None and abs(value - best) <= TIE and loss < best_loss):
                improved = True
                best, best_loss, best_epoch, best_metrics = value, loss, epoch, dict(val_out)
                best_state = {k: v.detach().clone().cpu() for k, v in model.state_dict().items()}
            bad = 0 if gain else bad + 1
            stopped = bool(patience) and bad >= patience
        record = EpochRecord(epoch, planned, train_out, val_out, times[-1], improved, _finite_or_none(best),
                             best_epoch, best_metrics, times)
        if main:
            log.append({"epoch": epoch, **train_out, **val_out, "seconds": times[-1]})
            if improved:
                write(run_dir / best_name, "best", record)
            write(run_dir / LAST_NAME, "last", record)
            save_optimizer(optimizer, run_dir / OPTIM_NAME)
            write_json(run_dir / STATE_NAME, {
                # written last, with the digests of what it belongs to: a run killed between these writes
                # is caught on resume instead of repeating an epoch from weights already trained on it
                "files_sha256": {n: _sha256(run_dir / n) for n in (LAST_NAME, OPTIM_NAME)},
                "epoch": epoch, "epochs_planned": planned, "epochs_requested": epochs, "seed": seed,
                "metric": metric, "best": _finite_or_none(best), "best_epoch": best_epoch,
                "best_tie_break": _finite_or_none(best_loss), "best_metrics": best_metrics, "bad_epochs": bad,
                "epoch_times": times, **(state_extra() if state_extra else {})})
            if curves is not None and curves_each_epoch:
                plot_curves(run_dir / log_name, run_dir / "curves.png", curves[0], curves[1])
        if dist.is_main and describe is not None:
            print(describe(record), flush=True)
        epoch += 1
    if main and curves is not None:
        plot_curves(run_dir / log_name, run_dir / "curves.png", curves[0], curves[1])
    if restore_best and best_state is not None:
        model.load_state_dict(best_state)
    return LoopResult(_finite_or_none(best), best_epoch, best_metrics, epoch - 1,
                      planned, stopped, times)
