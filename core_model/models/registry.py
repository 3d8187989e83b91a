"""Name -> constructor registry for every model variant, tiny test variants included.

Model modules register themselves with ``@register_model``; :func:`create_model`
imports the known model modules on first use so a checkpoint's card can name
any of them.
"""

from __future__ import annotations

import importlib
import pkgutil
from typing import Callable

import torch

_REGISTRY: dict[str, Callable[..., torch.nn.Module]] = {}
_loaded = False


def register_model(fn: Callable[..., torch.nn.Module]) -> Callable[..., torch.nn.Module]:
    name = fn.__name__
    if name in _REGISTRY and _REGISTRY[name] is not fn:
        raise ValueError(f"model {name!r} registered twice")
    _REGISTRY[name] = fn
    return fn


def _import_model_modules() -> None:
    global _loaded
    if _loaded:
        return
    import core_model.models as pkg

    for info in pkgutil.iter_modules(pkg.__path__):
        if info.name != "registry":
            importlib.import_module(f"core_model.models.{info.name}")
    _loaded = True


def list_models() -> list[str]:
    _import_model_modules()
    return sorted(_REGISTRY)


def create_model(name: str, **config) -> torch.nn.Module:
    _import_model_modules()
    if name not in _REGISTRY:
        raise KeyError(f"unknown model {name!r}; known: {', '.join(sorted(_REGISTRY))}")
    return _REGISTRY[name](**config)
