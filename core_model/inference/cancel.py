"""Stopping a model mid-pass: the cancel token is checked before every submodule runs."""

from __future__ import annotations

from contextlib import contextmanager
from typing import Iterator

import torch

from core_model.domain.jobs import CancelToken


@contextmanager
def cancellable(model: torch.nn.Module, cancel: CancelToken | None) -> Iterator[None]:
    """Check ``cancel`` before every submodule of ``model`` runs, so a long forward pass stops in well
    under a second (a backward pass runs to its end)."""
    if cancel is None:
        yield
        return

    def hook(module, args):
        cancel.check()

    handles = [m.register_forward_pre_hook(hook) for m in model.modules()]
    try:
        yield
    finally:
        for h in handles:
            h.remove()
