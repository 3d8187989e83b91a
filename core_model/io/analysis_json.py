"""Analysis <-> files: ``analysis.json`` plus per-view PNGs, and reading them back.

Layout of an output folder::

    analysis.json
    L_CC_mask.png         lesion mask, 8-bit, 255 = lesion, 0 = background
    L_CC_probability.png  segmentation probability x 255 (<= 1024 px on the long side)
    L_CC_heatmap.png      Grad-CAM on the LE image x 255 (affected side only; <= 1024 px)
    L_CC_overlay.png      for a quick look: LE image, heatmap, red lesion outline
                          (subsampled to <= 1024 px on the long side)

The mask PNG has the size of the study image it belongs to. The probability
and heatmap come from a model that sees 256 px: for an image larger than 1024 px
they are stored subsampled by a whole step (the sample nearest each block's
centre) and :func:`read_analysis` resizes them back to the image's size. Paths in the JSON are relative to the JSON's folder. Polygons
are ``[[x, y], ...]`` in original pixels (x = column, y = row, pixel centres
at integers). The JSON always carries the models' identity and the
not-for-clinical-use notice.
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image
from scipy import ndimage

from core_model.domain.analysis import Analysis, Lesion, ViewResult
from core_model.domain.errors import NafvError
from core_model.domain.notice import NOT_FOR_CLINICAL_USE
from core_model.domain.study import VIEW_KEYS, Study
from core_model.imaging.colormap import jet
from core_model.imaging.preprocess import normalize_image, resize_nearest
from core_model.io.atomic import atomic_path, write_text
from core_model.io.jsonsafe import dumps
from core_model.io.masks import read_grey, read_mask_png

FORMAT = "nafv-analysis"
VERSION = 1


def _r(v: float | None, nd: int = 4) -> float | None:
    if v is None or not math.isfinite(v):
        return None
    return round(float(v), nd)


def _png(arr: np.ndarray, path: Path) -> None:
    # fast zlib level, no fsync: these are working files (the folder is swapped in whole, see
    # core_model.io.result_dir), and full-size mammograms are ~13 MP each
    with atomic_path(path, durable=False) as tmp:
        Image.fromarray(arr).save(tmp, format="PNG", compress_level=1)


def _to_u8(a: np.ndarray) -> np.ndarray:
    return np.round(np.clip(a, 0.0, 1.0) * 255.0).astype(np.uint8)


# The probability and heatmap come from a model that sees 256 px: a PNG of at most this many pixels on
# the long side keeps all they hold, and spares writing (and reading back) 13 MP maps per full-size view.
MAP_MAX_SIDE = 1024


def _map_step(shape: tuple[int, int]) -> int:
    return max(1, -(-max(shape) // MAP_MAX_SIDE))


def _map_png(a: np.ndarray, path: Path) -> None:
    step = _map_step(a.shape)
    o = (step - 1) // 2  # the sample nearest each block's centre, where a resize back expects it
    _png(_to_u8(a[o::step, o::step]), path)


def _read_map(path: Path, shape: tuple[int, int]) -> np.ndarray:
    """A probability or heatmap PNG as float [0, 1] at the image's ``shape`` (stored smaller for a large image)."""
    step = _map_step(shape)
    o = (step - 1) // 2
    small = (-(-(shape[0] - o) // step), -(-(shape[1] - o) // step))
    a = read_grey(path)
    if a.shape == tuple(shape):
        return a.astype(np.float32) / 255.0
    if a.shape != small:
        raise NafvError(f"image is {a.shape[1]}x{a.shape[0]}, the analysis says {shape[1]}x{shape[0]}", path)
    grown = Image.fromarray(a.astype(np.float32) / 255.0, mode="F").resize((shape[1], shape[0]), Image.BILINEAR)
    return np.asarray(grown, dtype=np.float32)


OVERLAY_MAX_SIDE = 1024
OVERLAY_MIN_SIDE = 512


def overlay_image(base: np.ndarray, mask: np.ndarray | None, heatmap: np.ndarray | None) -> np.ndarray:
    """RGB uint8 quick look: grey image, heatmap in 'jet' where it is above 0.2, lesion outline in red.

    Subsampled by an integer step to at most OVERLAY_MAX_SIDE pixels on the long
    side (full-size mammograms would take seconds per view for a picture).
    """
    step = max(1, -(-max(base.shape) // OVERLAY_MAX_SIDE))
    base = base[::step, ::step]
    mask = mask[::step, ::step] if mask is not None else None
    heatmap = heatmap[::step, ::step] if heatmap is not None else None
    g = normalize_image(base)
    rgb = np.repeat(g[..., None], 3, axis=2)
    if heatmap is not None and heatmap.shape == g.shape:
        col = jet(heatmap)
        alpha = (0.45 * np.clip((heatmap - 0.2) / 0.8, 0, 1))[..., None]
        rgb = rgb * (1 - alpha) + col * alpha
    rgb = _to_u8(rgb)
    if mask is not None and mask.shape == g.shape and mask.any():
        width = max(1, round(max(g.shape) / 400))
        inner = ndimage.binary_erosion(mask > 0, iterations=width)
        edge = (mask > 0) & ~inner
        rgb[edge] = (255, 0, 0)
    return rgb


def _overlay_inputs(base, vr: ViewResult):
    """(pixels, mask, heatmap) for the quick look: an image kept as levels gives the level already
    decoded nearest OVERLAY_MAX_SIDE pixels if one has OVERLAY_MIN_SIDE or more (the analysis's own:
    a picture is not worth another decode), else its level of about OVERLAY_MAX_SIDE; the maps are
    sampled to match."""
    from core_model.io.pyramid import LevelledStudyImage

    if not isinstance(base, LevelledStudyImage):
        return base.pixels, vr.mask, vr.heatmap
    p = base.pyramid
    ready = [k for k in p.decoded_levels() if max(p.shape(k)) >= OVERLAY_MIN_SIDE]
    k = min(ready, key=lambda k: abs(max(p.shape(k)) - OVERLAY_MAX_SIDE)) if ready else p.level_for(OVERLAY_MAX_SIDE)
    px = p.level(k)
    return (px, resize_nearest(vr.mask, px.shape),
            None if vr.heatmap is None else resize_nearest(vr.heatmap, px.shape))


def model_summary(models: dict[str, dict]) -> dict[str, Any]:
    """The top-level ``model`` object: what produced the result, with the notice."""
    names = [m.get("name", "?") for m in models.values()]
    return {
        "name": "NaFV-Net (" + " + ".join(f"{k}: {n}" for k, n in zip(models, names)) + ")",
        "weights_sha256": {k: m.get("weights_sha256") for k, m in models.items()},
        "trained_on": {k: m.get("trained_on", "unknown") for k, m in models.items()},
        "not_for_clinical_use": any(m.get("not_for_clinical_use", True) for m in models.values()) or not models,
        "notice": NOT_FOR_CLINICAL_USE,
    }


def _lost_results(analysis: Analysis) -> list[str]:
    """Warnings for results that came out as NaN/inf: written as null, and a reader must know why they are empty."""
    out = []
    p = analysis.malignancy_probability
    if p is not None and not math.isfinite(p):
        out.append("the classifier score could not be computed (not a finite number) and is left empty")
    bad = sorted(k for k, v in analysis.side_evidence.items() if v is not None and not math.isfinite(v))
    if bad:
        out.append(f"the affected-side evidence of {', '.join(bad)} is not a finite number and is left empty")
    n = sum(1 for vr in analysis.views.values() for les in vr.lesions if not math.isfinite(les.score))
    if n:
        out.append(f"{n} lesion score(s) are not a finite number and are left empty")
    return out


def analysis_to_dict(analysis: Analysis, files: dict[str, dict[str, str | None]] | None = None,
                     study: Study | None = None) -> dict[str, Any]:
    files = files or {}
    views: dict[str, Any] = {}
    for key in VIEW_KEYS:
        vr = analysis.views.get(key)
        if vr is None:
            views[key] = {"analysed": False, "lesions": [], "mask_png": None, "probability_png": None,
                          "heatmap_png": None, "overlay_png": None}
            continue
        h, w = vr.mask.shape
        entry: dict[str, Any] = {
            "analysed": True,
            "image_size": [w, h],
            "landmarks": vr.landmarks,
            "lesions": [
                {
                    "polygon": [[_r(x, 2), _r(y, 2)] for x, y in np.asarray(les.polygon, dtype=float)],
                    "score": _r(les.score),
                    "area_px": _r(les.area_px, 1),
                    "bbox": [_r(v, 1) for v in les.bbox],
                    # size in mm from the view's pixel spacing (else in pixels, said so) and where the
                    # lesion lies: {clock, quadrant, depth, nipple_distance_mm} (core_model.imaging.location)
                    "size": les.size,
                    "location": les.location,
                    "pair": les.pair,
                }
                for les in vr.lesions
            ],
        }
        for kind in ("mask", "probability", "heatmap", "overlay"):
            entry[f"{kind}_png"] = files.get(key, {}).get(kind)
        if study is not None:
            srcs = {e: study.get(key, e) for e in ("le", "rc")}
            entry["images"] = {e: (str(i.source) if i is not None else None) for e, i in srcs.items()}
        views[key] = entry
    out: dict[str, Any] = {
        "format": FORMAT,
        "version": VERSION,
        "notice": NOT_FOR_CLINICAL_USE if analysis.not_for_clinical_use else None,
        "model": model_summary(analysis.models),
        "models": analysis.models,
        "device": analysis.device,
        "affected_side": analysis.affected_side,
        "affected_side_source": analysis.affected_side_source,
        "side_evidence": {k: _r(v, 6) for k, v in analysis.side_evidence.items()},
        "lesion_found": analysis.lesion_found,
        "malignancy_probability": _r(analysis.malignancy_probability),
        "classifier_mode": analysis.classifier_mode,
        "heatmap_method": analysis.heatmap_method,
        "heatmap_target": analysis.heatmap_target,
        "views": views,
        "timings_s": {k: _r(v, 4) for k, v in analysis.timings_s.items()},
        "warnings": list(analysis.warnings) + _lost_results(analysis),
    }
    if study is not None:
        out["study"] = {"patient_id": study.patient_id, "study_id": study.study_id,
                        "source": str(study.source) if study.source else None, "synthetic": study.synthetic}
    return out


def write_analysis(analysis: Analysis, out_dir: str | Path, study: Study | None = None, overlays: bool = True) -> Path:
    """Write ``analysis.json`` and the PNGs into ``out_dir``; return the JSON path.

    ``study`` (optional) adds patient identity, source files and the overlay PNGs.
    """
    out_dir = Path(out_dir)
    try:
        out_dir.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise NafvError(f"cannot create the output folder ({exc.strerror})", out_dir) from None
    files: dict[str, dict[str, str | None]] = {}
    try:
        for key, vr in analysis.views.items():
            f: dict[str, str | None] = {"mask": None, "probability": None, "heatmap": None, "overlay": None}
            f["mask"] = f"{key}_mask.png"
            _png((vr.mask > 0).astype(np.uint8) * 255, out_dir / f["mask"])
            if vr.probability is not None:
                f["probability"] = f"{key}_probability.png"
                _map_png(vr.probability, out_dir / f["probability"])
            if vr.heatmap is not None:
                f["heatmap"] = f"{key}_heatmap.png"
                _map_png(vr.heatmap, out_dir / f["heatmap"])
            if overlays and study is not None:
                base = study.get(key, "le") or study.get(key, "rc")
                if base is not None and base.shape == vr.mask.shape:
                    f["overlay"] = f"{key}_overlay.png"
                    _png(overlay_image(*_overlay_inputs(base, vr)), out_dir / f["overlay"])
            files[key] = f
        doc = analysis_to_dict(analysis, files, study)
        path = out_dir / "analysis.json"
        write_text(path, dumps(doc, indent=1) + "\n")  # model cards may carry NaN metrics
    except OSError as exc:
        raise NafvError(f"cannot write the results ({exc.strerror})", out_dir) from None
    return path


def read_analysis(path: str | Path) -> Analysis:
    """Read ``analysis.json`` (or its folder) and the PNGs it names back into an :class:`Analysis`."""
    path = Path(path)
    if path.is_dir():
        path = path / "analysis.json"
    try:
        doc = json.loads(path.read_text())
    except FileNotFoundError:
        raise NafvError("no analysis.json here", path) from None
    except (OSError, json.JSONDecodeError) as exc:
        raise NafvError(f"not a readable analysis file ({exc})", path) from None
    if doc.get("format") != FORMAT:
        raise NafvError("not an analysis file of this program", path)
    base = path.parent
    views: dict[str, ViewResult] = {}
    for key, v in doc.get("views", {}).items():
        if not v.get("analysed"):
            continue
        w, h = v["image_size"]
        shape = (int(h), int(w))
        mask = read_mask_png(base / v["mask_png"], shape).astype(np.uint8)
        prob = _read_map(base / v["probability_png"], shape) if v.get("probability_png") else None
        heat = _read_map(base / v["heatmap_png"], shape) if v.get("heatmap_png") else None
        lesions = [
            Lesion(polygon=np.asarray(les["polygon"], dtype=np.float32).reshape(-1, 2), score=float(les["score"]),
                   area_px=float(les.get("area_px", 0.0)), bbox=tuple(float(x) for x in les.get("bbox", (0, 0, 0, 0))),
                   location=les.get("location"), size=les.get("size"), pair=les.get("pair"))
            for les in v.get("lesions", [])
        ]
        views[key] = ViewResult(key=key, mask=mask, probability=prob, heatmap=heat, lesions=lesions,
                                landmarks=v.get("landmarks"))
    return Analysis(
        models=doc.get("models", {}),
        device=doc.get("device", ""),
        affected_side=doc.get("affected_side"),
        affected_side_source=doc.get("affected_side_source", "segmentation"),
        malignancy_probability=doc.get("malignancy_probability"),
        classifier_mode=doc.get("classifier_mode"),
        views=views,
        timings_s=dict(doc.get("timings_s", {})),
        warnings=list(doc.get("warnings", [])),
        heatmap_method=doc.get("heatmap_method"),
        heatmap_target=doc.get("heatmap_target"),
        side_evidence=dict(doc.get("side_evidence", {})),
        lesion_found=doc.get("lesion_found"),
    )
