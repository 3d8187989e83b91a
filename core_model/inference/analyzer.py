"""The analysis engine: one call from a CEM study to contours, affected side, malignancy score and Grad-CAM.

``Analyzer`` loads the segmentation and classifier weights once (safetensors +
model card, :mod:`core_model.models.checkpoint`); ``Analyzer.analyze(study)`` returns
an :class:`core_model.domain.analysis.Analysis` in original image pixels. Stages, in
order (each timed, reported to ``progress`` and preceded by a cancel check):

1. ``preprocess``: every view with the images the segmentation needs is
   read at the level its input needs (:mod:`core_model.inference.levels`;
   results come back at full size), normalised (:func:`core_model.imaging.preprocess.normalize_image`) and letterboxed
   into the model input (aspect kept).
2. ``segmentation``: both breasts in one batch (study-level batching), each
   breast's CC+MLO with the other breast as contralateral input.
3. ``contours``: probability maps back to original pixels, thresholded at the
   card's ``inference.threshold`` (0.5 when it has none),
   specks removed (:data:`core_model.imaging.contours.MIN_LESION_AREA_INPUT_PX`) and,
   when the weights' card sets ``inference.min_contour_score``, outlines less
   certain than that; polygons and per-lesion scores.
   Then the affected side: :func:`core_model.inference.affected_side.decide_affected_side`
   picks the breast whose contour is the most certain, or finds no lesion at all
   (a pure step on the contours, no model).
4. ``classification``: only when a lesion was found (or the reader named the
   breast): the affected CC/MLO (and the contralateral pair when the
   classifier is four-view and it exists; else dual-view) times the position
   mask of the lesion (Eq. 8) -> malignancy score.
5. ``explain``: Grad-CAM of the predicted class on the LE images of the
   affected views (:mod:`core_model.inference.explain`). :meth:`Analyzer.analyze`
   shares the classifier's forward pass (one forward + one backward in all;
   ``timings_s`` books the forward under ``classification`` and the backward and
   maps under ``explain``). :meth:`Analyzer.analyze_first` returns the analysis
   without them and a :class:`core_model.inference.heatmaps.PendingHeatmaps`, so
   the viewer shows contours and score first.

Every image is brought to reading orientation before the models see it and
the results are mapped back to the images as stored
(:mod:`core_model.transforms.model_inputs`), so a study whose breasts are stored with
both chest walls on one edge meets the contralateral fusion the right way round.

Cancel is honoured within a second: the token is checked between stages and
views, and inside every forward pass through hooks on the models' modules.
"""

from __future__ import annotations

import json
import os
import threading
import time
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator

import numpy as np
import torch
from scipy import ndimage

from core_model.domain.analysis import Analysis, ViewResult
from core_model.domain.errors import ModelLoadError, NafvError
from core_model.domain.jobs import CancelToken, ProgressCallback, report
from core_model.domain.notice import SYNTHETIC_CLASSIFIER_WARNING, SYNTHETIC_MARK_RE
from core_model.domain.resources import DEFAULT_CLS_WEIGHTS, DEFAULT_SEG_WEIGHTS
from core_model.domain.study import SIDES, Study, contralateral, view_key
from core_model.imaging.contours import THRESHOLD, lesions_from_probability, min_area_for_scale
from core_model.imaging.location import locate_analysis
from core_model.imaging.preprocess import Letterbox, normalize_image
from core_model.inference.affected_side import decide_affected_side
from core_model.inference.cancel import cancellable
from core_model.inference.explain import DEFAULT_METHOD, DEFAULT_TARGET, explain_views
from core_model.inference.heatmaps import PendingHeatmaps
from core_model.inference.inputs_check import AnalysisError, missing_inputs_message  # noqa: F401 - AnalysisError: re-exported
from core_model.inference.levels import LEVEL_FACTOR, study_at_level, views_to_full_size
from core_model.models.checkpoint import LoadedModel, load_checkpoint
from core_model.models.device import pick_device
from core_model.models.segmentation import lesion_probability
from core_model.transforms.model_inputs import (SCORE_SHIFTS, carried_box, crop_boxes, fit_long_side,
                                                in_reading_orientation, map_views_back, source_long_side, study_inputs)
from core_model.transforms.position_mask import DEFAULT_DECAY

# Said whenever four-view classifier weights score a study without the other breast.
DUAL_VIEW_ON_FOUR_VIEW_WARNING = (
    "contralateral CC/MLO missing: dual-view classification on four-view weights; the classifier was not "
    "trained for single-breast studies; treat this score as unreliable"
)

# Share of the progress bar per stage (roughly their share of CPU time).
_STAGES = {"preprocess": 0.05, "segmentation": 0.35, "contours": 0.1, "classification": 0.2, "explain": 0.3}


def default_threads() -> int:
    """CPUs this process may use (respects container/affinity limits), capped at 16."""
    try:
        n = len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        n = os.cpu_count() or 1
    return max(1, min(16, n))


class _Clock:
    def __init__(self, progress: ProgressCallback | None, cancel: CancelToken | None):
        self.progress, self.cancel = progress, cancel
        self.timings: dict[str, float] = {}
        self.done = 0.0
        self.t0 = time.perf_counter()

    @contextmanager
    def stage(self, name: str) -> Iterator[None]:
        if self.cancel is not None:
            self.cancel.check()
        report(self.progress, name, self.done)
        t = time.perf_counter()
        yield
        self.timings[name] = self.timings.get(name, 0.0) + time.perf_counter() - t
        self.done += _STAGES.get(name, 0.0)
        report(self.progress, name, self.done)

    def check(self) -> None:
        if self.cancel is not None:
            self.cancel.check()


def _load(path: Path, kind: str, device: torch.device) -> LoadedModel:
    loaded = load_checkpoint(path, map_location=device)
    m = loaded.model
    is_cls = hasattr(m, "backbone") and hasattr(m, "mode")
    for attr in ("input_size", "channels"):
        if not hasattr(m, attr):
            raise ModelLoadError(f"{kind} weights describe a model without {attr!r}; wrong file?", path)
    if (kind == "classifier") != is_cls:
        other = "classifier" if is_cls else "segmentation"
        raise ModelLoadError(f"these are {other} weights, not {kind} weights", path)
    for p in m.parameters():
        p.requires_grad_(False)  # inference only; Grad-CAM gets its graph from the input
    return loaded


def main_lesion(vr: ViewResult) -> np.ndarray:
    """Mask of the view's main lesion (largest probability mass): the one the classifier is pointed at."""
    labels, n = ndimage.label(vr.mask, structure=np.ones((3, 3), bool))
    if n <= 1:
        return vr.mask
    weight = vr.probability if vr.probability is not None else vr.mask.astype(np.float32)
    mass = ndimage.sum(weight, labels, index=np.arange(1, n + 1))
    return (labels == 1 + int(np.argmax(mass))).astype(np.uint8)


def _size2(size: int | tuple[int, int]) -> tuple[int, int]:
    return (int(size), int(size)) if isinstance(size, int) else (int(size[0]), int(size[1]))


def _prepare(img: np.ndarray, box: Letterbox) -> np.ndarray:
    # Same order as training: normalise on the full-size source, then letterbox.
    return box.apply(normalize_image(img))


class Analyzer:
    """Loads the models once; :meth:`analyze` runs them on a study."""

    def __init__(
        self,
        seg_weights: Path | str | None = None,
        cls_weights: Path | str | None = None,
        device: str | None = None,
        num_threads: int | None = None,
    ):
        self.device = pick_device(device)
        if self.device.type == "cpu":
            self.num_threads = int(num_threads) if num_threads else default_threads()
            torch.set_num_threads(self.num_threads)
        else:
            self.num_threads = torch.get_num_threads()
        self.init_warnings: list[str] = []
        # One analysis at a time on these models: a run dropped by the viewer may still be finishing
        # (its cancel is seen at the next module) when the next one starts, and Grad-CAM's hooks on
        # the classifier must see one study's passes only.
        self.lock = threading.Lock()
        self.cam_method = DEFAULT_METHOD
        self.cam_target = DEFAULT_TARGET
        # A lesion-square classifier reads the one square placed from the outline. ``SCORE_SHIFTS`` (the
        # mean over five squares) steadies the score a little more against an outline a few pixels off,
        # for 0.6 s more per study on 2 CPU cores (benchmarks/results/square_stability.json).
        self.score_shifts: tuple[tuple[float, float], ...] = SCORE_SHIFTS[:1]

        seg_path = Path(seg_weights) if seg_weights is not None else DEFAULT_SEG_WEIGHTS
        if seg_weights is None and not seg_path.is_file():
            raise ModelLoadError("no default weights for the segmentation model; pass the weights file explicitly", seg_path)
        self.seg = _load(seg_path, "segmentation", self.device)

        self.cls: LoadedModel | None = None
        if cls_weights is not None:
            self.cls = _load(Path(cls_weights), "classifier", self.device)
        elif DEFAULT_CLS_WEIGHTS.is_file():
            self.cls = _load(DEFAULT_CLS_WEIGHTS, "classifier", self.device)
        else:
            self.init_warnings.append(
                "no classifier weights: lesions are outlined but no malignancy probability is given"
            )
        # A contour is kept only if its mean probability reaches this (the seg card's "inference", chosen
        # on validation studies): faint outlines of normal tissue are what a reader must not be shown.
        inference = self.seg.card.get("inference") or {}
        self.min_contour_score = float(inference.get("min_contour_score", 0.0))
        # The probability level the contours are drawn at (the card's, chosen on validation studies
        # with the cut above; 0.5 for weights whose card does not say).
        self.threshold = float(inference.get("threshold", THRESHOLD))
        if not 0.0 < self.threshold < 1.0:
            raise ModelLoadError(f"the segmentation card gives a contour threshold of {self.threshold}, not in (0, 1)",
                                 seg_path)
        # Weights that never saw a patient say so beside every score they give a patient.
        self.cls_synthetic_only = self.cls is not None and (
            bool(self.cls.card.get("synthetic_only"))
            or bool(SYNTHETIC_MARK_RE.search(str(self.cls.card.get("trained_on", "")))))
        # Temperature scaling fitted on the validation folds (model card "calibration"); 1 = raw softmax.
        calib = (self.cls.card.get("calibration") or {}) if self.cls is not None else {}
        try:
            self.temperature = float(calib.get("temperature") or 1.0)
        except (TypeError, ValueError):
            self.temperature = float("nan")
        if not self.temperature > 0:
            raise ModelLoadError("the classifier card gives a non-positive calibration temperature", self.cls.weights_path)

    @property
    def identity(self) -> dict[str, dict]:
        """Each model's identity, plus its card's ``status`` (e.g. interim weights) and validation
        ``metrics`` when the card has them, so no output looks better established than it is."""
        ids = {}
        for kind, loaded in (("segmentation", self.seg), ("classifier", self.cls)):
            if loaded is None:
                continue
            ident = dict(loaded.identity)
            for extra in ("status", "metrics", "calibration"):
                value = loaded.card.get(extra)
                if value is not None and len(json.dumps(value, default=str)) < 4000:  # summaries, not logs
                    ident[extra] = value
            ids[kind] = ident
        return ids

    @property
    def level_long_side(self) -> int:
        """The long side of the image level the analysis reads (:mod:`core_model.inference.levels`)."""
        sizes = [max(_size2(self.seg.model.input_size))]
        if self.cls is not None:
            sizes.append(int(self.cls.model.input_size))
        level = LEVEL_FACTOR * max(sizes)
        if self.cls is not None and self._crop > 0:
            # lesion squares are cut from a level as fine as the classifier's training images (no finer:
            # views are shrunk to that anyway), so a square is shrunk into the input, not enlarged
            trained = int(getattr(self.cls.model, "source_side", 0))
            crop_source = source_long_side(int(self.cls.model.input_size), self._crop)
            level = max(level, min(crop_source, trained) if trained else crop_source)
        return level

    @property
    def device_label(self) -> str:
        if self.device.type == "cuda":
            return f"cuda ({torch.cuda.get_device_name(self.device)})"
        return f"cpu ({self.num_threads} threads)"

    # ------------------------------------------------------------------ stages

    def _seg_inputs(self, study: Study, warnings: list[str]) -> dict[str, tuple[np.ndarray, Letterbox]]:
        """view key -> (model input [C, H, W], letterbox of the view's reference image)."""
        seg = self.seg.model
        out = {}
        for side in SIDES:
            for view in ("CC", "MLO"):
                key = view_key(side, view)
                imgs = [study.get(key, e) for e in seg.channels]
                if all(i is None for i in imgs):
                    continue
                if any(i is None for i in imgs):
                    missing = [e.upper() for e, i in zip(seg.channels, imgs) if i is None]
                    warnings.append(f"{key}: not segmented, the {'/'.join(missing)} image is missing")
                    continue
                ref = imgs[-1]  # rc when present: the image the contours are drawn on
                for i in imgs:
                    if i.shape != ref.shape:
                        warnings.append(f"{key}: LE and RC differ in size ({i.shape} vs {ref.shape}); each is resized to the model input")
                boxes = [Letterbox.fit(i.shape, _size2(seg.input_size)) for i in imgs]
                x = np.stack([_prepare(i.pixels, b) for i, b in zip(imgs, boxes)])
                out[key] = (x, boxes[-1])
        return out

    def _segment(self, inputs: dict[str, tuple[np.ndarray, Letterbox]], clock: _Clock) -> dict[str, np.ndarray]:
        """view key -> probability map at the model input size."""
        seg = self.seg.model
        C = len(seg.channels)
        H, W = _size2(seg.input_size)
        sides = [s for s in SIDES if any(k.startswith(s + "_") for k in inputs)]
        views = np.zeros((len(sides), 2, C, H, W), np.float32)
        contra = np.zeros_like(views)
        present = np.zeros((len(sides), 2), bool)
        contra_present = np.zeros((len(sides), 2), bool)
        for b, side in enumerate(sides):
            for v, view in enumerate(("CC", "MLO")):
                own, other = view_key(side, view), view_key(contralateral(side), view)
                if own in inputs:
                    views[b, v], present[b, v] = inputs[own][0], True
                if other in inputs:
                    contra[b, v], contra_present[b, v] = inputs[other][0], True
        clock.check()
        t = lambda a: torch.from_numpy(a).to(self.device)  # noqa: E731
        flip_tta = bool((self.seg.card.get("inference") or {}).get("flip_tta", False))
        with torch.inference_mode(), cancellable(seg, clock.cancel):
            prob = lesion_probability(
                seg,
                t(views),
                t(contra) if contra_present.any() else None,
                present=t(present),
                contra_present=t(contra_present) if contra_present.any() else None,
                flip_tta=flip_tta,  # as the weights were evaluated (their card says)
            ).cpu().numpy()
        out = {}
        for b, side in enumerate(sides):
            for v, view in enumerate(("CC", "MLO")):
                if present[b, v]:
                    out[view_key(side, view)] = prob[b, v]
        return out

    @property
    def _crop(self) -> float:
        return float(getattr(self.cls.model, "crop", 0.0))

    @staticmethod
    def _main_lesions(views: dict[str, ViewResult], side: str) -> dict[str, np.ndarray]:
        return {key: main_lesion(vr) for key, vr in views.items() if key.startswith(side + "_")}

    def _cls_inputs(self, study: Study, views: dict[str, ViewResult], side: str, warnings: list[str]):
        """(affected [1, 2, 3, S, S], contralateral or None) exactly as the classifier was trained on
        (:func:`core_model.transforms.model_inputs.study_inputs`: square resize, energies per ``cls.channels``,
        Eq. 8 position mask; the contralateral views get the affected lesion's mask mirrored onto
        them). The mask fed in is each view's *main* lesion (largest probability mass), so a stray
        false-positive speck does not stretch the lesion box. None when the affected breast lacks
        a CC or MLO low-energy image.
        """
        cls = self.cls.model
        masks = self._main_lesions(views, side)
        try:
            aff, con = study_inputs(study, masks, side, int(cls.input_size), cls.channels,
                                    float(getattr(cls, "position_decay", DEFAULT_DECAY)), self._crop,
                                    int(getattr(cls, "source_side", 0)), self.score_shifts)
        except NafvError as exc:
            warnings.append(f"no malignancy probability: {exc.reason}")
            return None
        for view in ("CC", "MLO"):
            key = view_key(side, view)
            if key not in views:
                warnings.append(f"{key}: not segmented, so the classifier sees it without a lesion position")
        if getattr(cls, "mode", "four-view") == "dual-view":
            con = None
        elif con is None:
            # Four-view weights never saw a study without the other breast: say so plainly.
            warnings.append(DUAL_VIEW_ON_FOUR_VIEW_WARNING)
        return aff, con

    # -------------------------------------------------------------- the call

    def analyze(
        self,
        study: Study,
        progress: ProgressCallback | None = None,
        cancel: CancelToken | None = None,
        affected_side: str | None = None,
        explain: bool = True,
    ) -> Analysis:
        """Everything at once: contours, affected side, score and (with ``explain``) the heatmaps."""
        result, pending = self.analyze_first(study, progress, cancel, affected_side, explain=explain, share_forward=True)
        if pending is not None:
            report(progress, "explain", 1.0 - _STAGES["explain"])
            pending.compute(cancel).apply(result)
        report(progress, "done", 1.0)
        return result

    def analyze_first(
        self,
        study: Study,
        progress: ProgressCallback | None = None,
        cancel: CancelToken | None = None,
        affected_side: str | None = None,
        explain: bool = True,
        share_forward: bool = False,
    ) -> tuple[Analysis, PendingHeatmaps | None]:
        """The analysis without its heatmaps, and what computes them (None when there are none to
        make: ``explain`` off, or no score). The viewer shows the first while the second runs.
        ``share_forward`` computes Grad-CAM's forward pass with the score's, so the heatmaps then
        cost only the mapping (fastest in all; slower to the score)."""
        with self.lock:
            return self._analyze_first(study, progress, cancel, affected_side, explain, share_forward)

    def _analyze_first(self, study: Study, progress: ProgressCallback | None, cancel: CancelToken | None,
                       affected_side: str | None, explain: bool, share_forward: bool
                       ) -> tuple[Analysis, PendingHeatmaps | None]:
        if affected_side is not None:
            affected_side = affected_side.upper()
            if affected_side not in SIDES:
                raise NafvError(f"affected side must be L or R, not {affected_side!r}")
        if self.device.type == "cpu" and torch.get_num_threads() != self.num_threads:
            # someone else in the process changed it (and with some OpenMP
            # builds the count is per calling thread, e.g. a GUI worker)
            torch.set_num_threads(self.num_threads)
        clock = _Clock(progress, cancel)
        warnings = list(self.init_warnings) + list(study.warnings)
        if getattr(study, "unassigned", None):
            warnings.append(f"{len(study.unassigned)} image(s) without a view in their files were not analysed; "
                            "place them in the viewer to include them")
        result = Analysis(
            models=self.identity,
            device=self.device_label,
            affected_side=None,
            affected_side_source="caller" if affected_side else "segmentation",
            malignancy_probability=None,
            classifier_mode=None,
            warnings=warnings,
        )

        with clock.stage("preprocess"):
            # The models read the level their input needs (results come back at full size at the end)
            # and reading orientation (results are mapped back to the images as stored).
            stored = study
            study, full_shapes = study_at_level(study, self.level_long_side)
            study, flips = in_reading_orientation(study)
            inputs = self._seg_inputs(study, warnings)
            if not inputs:
                raise AnalysisError(missing_inputs_message(study, self.seg.model.channels))

        with clock.stage("segmentation"):
            probs = self._segment(inputs, clock)

        with clock.stage("contours"):
            for key, p in probs.items():
                clock.check()
                box = inputs[key][1]
                full = np.clip(box.invert_map(p), 0.0, 1.0)
                min_area = min_area_for_scale(float(box.scale_xy.mean()))
                mask, lesions = lesions_from_probability(full, self.threshold, min_area_px=min_area,
                                                         min_score=self.min_contour_score)
                result.views[key] = ViewResult(key=key, mask=mask, probability=full, lesions=lesions)

        # The affected breast: a pure decision from the contours (core_model.inference.affected_side).
        if affected_side is not None and not any(k.startswith(affected_side + "_") for k in result.views):
            raise AnalysisError(f"the {affected_side} breast was given as affected but this study has no analysable {affected_side} view")
        decision = decide_affected_side(result.views, affected_side)
        result.affected_side = decision.side
        result.lesion_found = decision.lesion_found
        result.side_evidence = decision.confidence
        warnings.extend(decision.notes)

        pending = None
        if self.cls is not None and decision.side is not None:
            pending = self._classify(study, result, decision.side, explain, share_forward, clock, warnings)
            if result.malignancy_probability is not None and not study.synthetic and self.cls_synthetic_only:
                warnings.append(SYNTHETIC_CLASSIFIER_WARNING)
            if pending is not None:
                pending.flips, pending.full_shapes = flips, full_shapes
        map_views_back(result.views, flips)
        views_to_full_size(result.views, full_shapes, _size2(self.seg.model.input_size), self.min_contour_score,
                           self.threshold)
        with clock.stage("location"):
            try:
                locate_analysis(stored, result, flips)
            except (ValueError, IndexError) as exc:  # a location is an aid: its failure must not cost the contours
                warnings.append(f"the findings could not be located (nipple, clock face): {exc}")
        result.timings_s = dict(clock.timings, total=time.perf_counter() - clock.t0)
        return result, pending

    def _classify(self, study: Study, result: Analysis, side: str, explain: bool, share_forward: bool, clock: _Clock,
                  warnings: list[str]) -> PendingHeatmaps | None:
        """Stage 4: the malignancy score of ``side`` (reading orientation), and what its Grad-CAM
        heatmaps need (stage 5), with Grad-CAM's forward and backward already run when ``share_forward``."""
        cls = self.cls.model
        with clock.stage("classification"):
            prepared = self._cls_inputs(study, result.views, side, warnings)
            if prepared is None:
                return None
            a, c = (t.to(self.device) if t is not None else None for t in prepared)
            result.classifier_mode = "four-view" if c is not None else "dual-view"
            # row 0: the square placed from the outline (or the whole views), what Grad-CAM explains
            views_in = torch.cat([a[0]] + ([c[0]] if c is not None else []))
            cam = None
            if explain and share_forward:
                # One forward pass serves the score and Grad-CAM (which needs gradients, so no
                # inference_mode here); the backward pass is booked under "explain" below.
                t_cam = time.perf_counter()
                with cancellable(cls, clock.cancel):
                    cam = explain_views(cls, views_in, None, self.cam_method, self.cam_target, cancel=clock.cancel)
                backward_s = time.perf_counter() - t_cam - cam.forward_s
                logits = cam.logits[None].to(self.device)
                if len(a) > 1:  # the moved squares (SCORE_SHIFTS) need no gradients
                    with torch.inference_mode(), cancellable(cls, clock.cancel):
                        logits = torch.cat([logits, cls(a[1:], c[1:] if c is not None else None)])
            else:
                with torch.inference_mode(), cancellable(cls, clock.cancel):
                    logits = cls(a, c)
            probs = torch.softmax(logits.float() / self.temperature, -1)[:, 1]
            result.malignancy_probability = float(probs.mean())
        if cam is not None:
            clock.timings["classification"] -= backward_s
            clock.timings["explain"] = clock.timings.get("explain", 0.0) + backward_s
        if not explain:
            return None
        keys, shapes = [], {}
        for view in ("CC", "MLO"):
            key = view_key(side, view)
            le = study.get(key, "le")
            # A view that was not segmented gets no heatmap at all: an empty mask there would read as "no lesion".
            if le is not None and key in result.views and result.views[key].mask.shape == le.shape:
                keys.append(key)
                shapes[key] = le.shape
            else:
                keys.append(None)
        return PendingHeatmaps(cls, views_in.detach(), tuple(keys), shapes, {}, {}, self.cam_method, self.cam_target, cam,
                               self.lock, self._heatmap_boxes(result.views, side) if self._crop > 0 else {})

    def _heatmap_boxes(self, views: dict[str, ViewResult], side: str) -> dict[str, tuple[int, int, int]]:
        """Where each lesion-square input lies in its view (level, reading orientation), so its map goes back there."""
        masks = self._main_lesions(views, side)
        trained = int(getattr(self.cls.model, "source_side", 0))
        seen = {v: fit_long_side(masks[view_key(side, v)] > 0, trained)  # the masks as study_inputs saw them
                for v in ("CC", "MLO") if view_key(side, v) in masks}
        return {view_key(side, v): carried_box(b, seen[v].shape, masks[view_key(side, v)].shape)
                for v, b in crop_boxes(seen, self._crop).items()}
