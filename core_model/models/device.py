"""Which torch device a model runs on: the one choice shared by the analyzer and the trainers.

``None`` means the GPU when one is there, else the CPU; a device the user names
is checked here so a missing GPU is a message, not a traceback deep in torch.
"""

from __future__ import annotations

import torch

from core_model.domain.errors import NafvError


def pick_device(device: str | None = None) -> torch.device:
    if not device:
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if device.startswith("cuda") and not torch.cuda.is_available():
        raise NafvError("CUDA was requested but no CUDA GPU is available; use --device cpu")
    try:
        return torch.device(device)
    except RuntimeError:
        raise NafvError(f"unknown device {device!r}; use cpu or cuda") from None
