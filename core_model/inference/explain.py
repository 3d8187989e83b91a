"""Grad-CAM heatmaps for the four-view classifier (pytorch-grad-cam; the default method without it).

Three things make the library work on this model:

* **Multi-view wrapper** (:class:`MultiViewCamModel`): the classifier takes
  ``cls(affected, contralateral)`` with ``[B, 2, C, H, W]`` each, the CAM
  wants a one-input model. The wrapper takes the views as a batch
  ``[V, C, H, W]`` (affected CC, affected MLO, then contralateral CC, MLO when
  present), calls the classifier once on the study and repeats the study's
  logits per view, so every "batch item" of the CAM is one view of the same
  prediction.
* **All calls collected** (:class:`_AllCallsActivations`): the backbone may
  run once per side or once on every view; activations (and gradients) from
  every call of the target layer are concatenated in call order. For backbone
  layers the order is matched at run time to the views through the backbone's
  inputs (:class:`_InputRecorder`); the classifier head (``head.*`` targets)
  runs its per-view stages on one batch ordered (side, view), which is the
  order above.
* **ViT tokens -> feature map** (:func:`vit_reshape_transform`): drops *all*
  prefix tokens (class token and DINOv2 register tokens,
  ``backbone.num_prefix_tokens``), then folds the patch tokens back onto the
  patch grid.

The input is made to require gradients inside the wrapper, so maps exist even
when the backbone is frozen (``requires_grad=False`` parameters).

Method and layer were chosen by measurement (``benchmarks/cam_choice.py``;
figures in the module constants' comments below).
"""

from __future__ import annotations

import functools
import math
import time
from dataclasses import dataclass
from typing import Callable, Sequence

import numpy as np
import torch


class _LazyCam:
    """A pytorch-grad-cam method, imported when first used: the package pulls in scikit-learn,
    matplotlib and OpenCV, a second of start-up that the default method does not need."""

    def __init__(self, name: str):
        self.name = name

    def __call__(self, **kwargs):
        import pytorch_grad_cam

        return getattr(pytorch_grad_cam, self.name)(**kwargs)


class GradCAM:
    """Grad-CAM (Selvaraju et al., ICCV 2017) computed exactly as pytorch-grad-cam's ``GradCAM``
    (channel weights = mean gradient, ReLU, per-map min-max scaling, bilinear resize to the
    input), without importing that package. ``tests/core_model/test_explain.py`` compares the two.
    """

    def __init__(self, model: torch.nn.Module, target_layers: Sequence[torch.nn.Module],
                 reshape_transform: Callable | None = None):
        self.model = model.eval()
        self.target_layers = list(target_layers)
        self.activations_and_grads = _AllCallsActivations(self.model, self.target_layers, reshape_transform)
        self.outputs = None

    @staticmethod
    def _scale(cams: np.ndarray, size: tuple[int, int] | None) -> np.ndarray:
        cams = cams - cams.min(axis=(1, 2), keepdims=True)
        cams = cams / (1e-7 + cams.max(axis=(1, 2), keepdims=True))
        if size is not None and tuple(cams.shape[1:]) != tuple(size):
            t = torch.from_numpy(np.ascontiguousarray(cams, dtype=np.float32))[:, None]
            cams = torch.nn.functional.interpolate(t, size=tuple(size), mode="bilinear", align_corners=False)[:, 0].numpy()
        return cams.astype(np.float32)

    def __call__(self, input_tensor: torch.Tensor, targets: Sequence[Callable]) -> np.ndarray:
        self.outputs = outputs = self.activations_and_grads(input_tensor)
        self.model.zero_grad()
        loss = sum(target(output) for target, output in zip(targets, outputs))
        loss.backward(retain_graph=True)
        size = tuple(input_tensor.shape[-2:])
        maps = []
        for acts, grads in zip(self.activations_and_grads.activations, self.activations_and_grads.gradients):
            a, g = acts.numpy(), grads.numpy()
            cam = (g.mean(axis=(2, 3))[:, :, None, None] * a).sum(axis=1)
            maps.append(self._scale(np.maximum(cam, 0), size))
        return self._scale(np.maximum(np.mean(np.stack(maps, axis=1), axis=1), 0), None)

    def __enter__(self) -> "GradCAM":
        return self

    def __exit__(self, *exc) -> None:
        self.activations_and_grads.release()


CAM_METHODS = {
    "gradcam": GradCAM,
    "gradcam++": _LazyCam("GradCAMPlusPlus"),
    "xgradcam": _LazyCam("XGradCAM"),
    "layercam": _LazyCam("LayerCAM"),
    "hirescam": _LazyCam("HiResCAM"),
    "eigencam": _LazyCam("EigenCAM"),
}
# Defaults picked by measurement (benchmarks/cam_choice.py): 6 methods x 4
# layers on 15 studies with ground-truth lesions (7 real CDD-CESM incl. the
# demo, 8 phantoms), maps of the predicted class scored on the affected views,
# for the ViT classifier shipped at the time (benchmarks/results/cam_choice.json)
# and another head on the same backbone (cam_choice_other_classifier.json); not
# re-measured with the EfficientNet classifier. GradCAM on the classifier head's
# first stage (``head.stage1``: each view's feature map, before the views are
# mixed) was the class-discriminative choice that held for both: on the 14 real
# views never empty / empty once, maximum on the lesion in 79 % / 79 %, 38 % /
# 27 % of the map's mass on lesions covering a median 6 % of the image; 0.1 s
# per study. GradCAM on backbone layers was often empty (backbone.norm: 50 % of
# real views for the first head; blocks[-1].norm1, the usual "before the last
# attention block": 14-29 %); EigenCAM put 50 % of the mass on the lesion but is
# class-agnostic (it cannot show what drove *this* score) and took 0.5-2.5 s
# per study.
DEFAULT_METHOD = "gradcam"
DEFAULT_TARGET = "head.stage1"


def vit_reshape_transform(num_prefix_tokens: int, grid: tuple[int, int] | None = None) -> Callable[[torch.Tensor], torch.Tensor]:
    """[N, P + h*w, D] tokens -> [N, D, h, w]; spatial (4-D) tensors pass through unchanged."""

    def transform(t: torch.Tensor) -> torch.Tensor:
        if t.ndim == 4:
            return t
        tokens = t[:, num_prefix_tokens:, :]
        n = tokens.shape[1]
        if grid is not None and grid[0] * grid[1] == n:
            h, w = grid
        else:
            h = w = int(round(math.sqrt(n)))
            if h * w != n:
                raise ValueError(f"cannot fold {n} patch tokens onto a grid (prefix tokens: {num_prefix_tokens})")
        return tokens.reshape(t.shape[0], h, w, t.shape[2]).permute(0, 3, 1, 2)

    return transform


def resolve_layer(model: torch.nn.Module, path: str) -> torch.nn.Module:
    """``"backbone.blocks[-1].norm1"`` -> the module."""
    obj = model
    for part in path.replace("]", "").split("."):
        name, *idx = part.split("[")
        if name:
            obj = getattr(obj, name)
        for i in idx:
            obj = obj[int(i)]
    return obj


def reshape_for(cls: torch.nn.Module, target: str) -> Callable | None:
    """The reshape transform a target layer of ``cls`` needs (None for conv feature maps)."""
    if not target.startswith("backbone"):
        return None
    backbone = cls.backbone
    prefix = int(getattr(backbone, "num_prefix_tokens", 1))
    grid = getattr(getattr(backbone, "patch_embed", None), "grid_size", None)
    return vit_reshape_transform(prefix, tuple(grid) if grid is not None else None)


class MultiViewCamModel(torch.nn.Module):
    """Input [V, C, H, W] (V = 2: affected CC, MLO; V = 4: + contralateral CC, MLO) -> [V, 2] logits."""

    def __init__(self, cls: torch.nn.Module):
        super().__init__()
        self.cls = cls

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not x.requires_grad:  # frozen backbones still need a graph for the gradients
            x = x.detach().requires_grad_(True)
        v = x.shape[0]
        if v not in (2, 4):
            raise ValueError(f"expected 2 or 4 views, got {v}")
        affected = x[:2].unsqueeze(0)
        contra = x[2:4].unsqueeze(0) if v == 4 else None
        logits = self.cls(affected, contra)  # [1, 2]
        return logits.expand(v, -1)


class MarginTarget:
    """Logit margin of ``category`` over the other class: what the softmax probability depends on."""

    def __init__(self, category: int):
        self.category = category

    def __call__(self, output: torch.Tensor) -> torch.Tensor:
        if output.ndim == 1:
            return output[self.category] - output[1 - self.category]
        return output[:, self.category] - output[:, 1 - self.category]


class _AllCallsActivations:
    """Drop-in for pytorch-grad-cam's ActivationsAndGradients that keeps every call of each target layer.

    The library keeps one activation per hook call and uses only the first,
    which loses views when the backbone runs more than once per forward pass.
    """

    def __init__(self, model: torch.nn.Module, target_layers: Sequence[torch.nn.Module], reshape_transform: Callable | None):
        self.model = model
        self.reshape_transform = reshape_transform
        self.detach = True
        self.handles = []
        self._acts: list[list[torch.Tensor]] = [[] for _ in target_layers]
        self._grads: list[dict[int, torch.Tensor]] = [{} for _ in target_layers]
        for i, layer in enumerate(target_layers):
            self.handles.append(layer.register_forward_hook(functools.partial(self._hook, i)))

    def _reshape(self, t: torch.Tensor) -> torch.Tensor:
        return self.reshape_transform(t) if self.reshape_transform is not None else t

    def _hook(self, i: int, module, inputs, output) -> None:
        if isinstance(output, (tuple, list)):
            output = output[0]
        call = len(self._acts[i])
        self._acts[i].append(self._reshape(output).detach().cpu())
        if output.requires_grad:

            def store(grad: torch.Tensor, i: int = i, call: int = call) -> None:
                self._grads[i][call] = self._reshape(grad).detach().cpu()

            output.register_hook(store)

    @property
    def activations(self) -> list[torch.Tensor]:
        return [torch.cat(a) for a in self._acts if a]

    @property
    def gradients(self) -> list[torch.Tensor]:
        # a call whose output did not reach the score gets no gradient: zeros
        return [torch.cat([g.get(k, torch.zeros_like(a)) for k, a in enumerate(acts)])
                for acts, g in zip(self._acts, self._grads) if acts]

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        self.clear()
        return self.model(x)

    def clear(self) -> None:
        for a in self._acts:
            a.clear()
        for g in self._grads:
            g.clear()

    def release(self) -> None:
        self.clear()
        for h in self.handles:
            h.remove()
        self.handles.clear()


class _InputRecorder:
    """Records the images the backbone sees (its patch embedding's input), to learn the call order."""

    def __init__(self, cls: torch.nn.Module):
        backbone = getattr(cls, "backbone", None)
        # patch_embed sees the images whether the classifier calls the ViT's
        # forward or forward_features
        self.entry = getattr(backbone, "patch_embed", backbone) if backbone is not None else None
        self.seen: list[torch.Tensor] = []
        self.handle = None

    def __enter__(self) -> "_InputRecorder":
        if self.entry is not None:
            self.handle = self.entry.register_forward_pre_hook(lambda m, args: self.seen.append(args[0].detach()))
        return self

    def __exit__(self, *exc) -> None:
        if self.handle is not None:
            self.handle.remove()

    def order(self, views: torch.Tensor) -> list[int] | None:
        """Which input view each backbone batch row came from, in call order (None without a backbone).

        Matched by correlation of 8 x 8 thumbnails, so resizing, normalisation
        or channel mixing inside the classifier does not matter.
        """
        seen = [s for s in self.seen if s.ndim == 4]
        if not seen:
            return None

        def thumbs(t: torch.Tensor) -> torch.Tensor:
            z = torch.nn.functional.adaptive_avg_pool2d(t.float().mean(1, keepdim=True), 8).flatten(1)
            z = z - z.mean(1, keepdim=True)
            return z / (z.norm(dim=1, keepdim=True) + 1e-8)

        rows = torch.cat([thumbs(s) for s in seen])
        return (rows @ thumbs(views.to(rows.device)).T).argmax(1).tolist()


@dataclass
class CamResult:
    maps: np.ndarray  # [V, H, W] in [0, 1] at the classifier input size
    logits: torch.Tensor  # [2] the study's logits from the same forward pass
    category: int  # the class explained (1 = malignant)
    forward_s: float  # seconds of the forward pass (the rest is the backward and the maps)


class _LazyMargin(MarginTarget):
    """Margin target whose class is the predicted one, decided on the forward pass's output;
    checks ``cancel`` between the forward and the backward pass."""

    def __init__(self, category: int | None, cancel=None, t0: float = 0.0):
        super().__init__(-1 if category is None else category)
        self.fixed = category is not None
        self.cancel = cancel
        self.t0 = t0
        self.forward_s = 0.0

    def __call__(self, output: torch.Tensor) -> torch.Tensor:
        if not self.forward_s:
            self.forward_s = time.perf_counter() - self.t0
        if self.cancel is not None:
            self.cancel.check()
        if not self.fixed and self.category < 0:
            self.category = int(output.detach().reshape(-1, output.shape[-1])[0].argmax())
        return super().__call__(output)


@torch.inference_mode(False)
def explain_views(
    cls: torch.nn.Module,
    views: torch.Tensor,
    category: int | None = None,
    method: str = DEFAULT_METHOD,
    target: str = DEFAULT_TARGET,
    cancel=None,
) -> CamResult:
    """One forward + backward pass: the study's logits and a heatmap per view of ``views`` [V, C, H, W].

    ``category`` None explains the predicted class; 1 the malignant margin, 0
    the benign one. A map is all zeros when the layer shows no positive
    evidence for that view. ``cancel`` (a CancelToken) is checked between the
    passes.
    """
    if method not in CAM_METHODS:
        raise ValueError(f"unknown CAM method {method!r}; known: {', '.join(CAM_METHODS)}")
    views = views.detach().clone()
    wrapper = MultiViewCamModel(cls).eval()
    layer = resolve_layer(cls, target)
    reshape = reshape_for(cls, target)
    cam = CAM_METHODS[method](model=wrapper, target_layers=[layer], reshape_transform=reshape)
    cam.activations_and_grads.release()
    cam.activations_and_grads = _AllCallsActivations(wrapper, [layer], reshape)
    t0 = time.perf_counter()
    tgt = _LazyMargin(category, cancel, t0)
    with cam, torch.enable_grad(), _InputRecorder(cls) as rec:
        maps = cam(input_tensor=views, targets=[tgt] * views.shape[0])
        logits = cam.outputs[0].detach().float().cpu()
    maps = np.nan_to_num(np.asarray(maps, dtype=np.float32))
    order = rec.order(views)
    if order is not None and target.startswith("backbone") and len(order) == maps.shape[0]:
        out = np.zeros((views.shape[0], *maps.shape[1:]), np.float32)
        for row, view in enumerate(order):
            out[view] = np.maximum(out[view], maps[row])
        maps = out
    return CamResult(maps=maps[: views.shape[0]], logits=logits, category=tgt.category, forward_s=tgt.forward_s)


def gradcam_views(
    cls: torch.nn.Module,
    views: torch.Tensor,
    category: int | None = 1,
    method: str = DEFAULT_METHOD,
    target: str = DEFAULT_TARGET,
) -> np.ndarray:
    """Heatmaps [V, H, W] in [0, 1] at the classifier input size (see :func:`explain_views`)."""
    return explain_views(cls, views, category, method, target).maps
