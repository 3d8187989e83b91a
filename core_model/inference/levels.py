"""The analysis reads the resolution level its models need and reports in full-size pixels.

The models read 256 px inputs (the classifier 224); resampling a 3328 x 4096
mammogram down to that from full resolution costs seconds (decode, then
normalisation percentiles over 13.6 M pixels) and shows the models nothing a
level of twice their input does not. So the analysis runs on the smallest
pyramid level (:mod:`core_model.io.pyramid`) whose long side is at least
:data:`LEVEL_FACTOR` times the largest model input, and its maps are brought
back to the full image afterwards: probability and heatmaps resampled
bilinearly, the contours drawn again on the full-size probability with the
same rule and limits a full-size analysis uses. Images no larger than that
level (the demo's 512 px JPEGs) are analysed as they are.
"""

from __future__ import annotations


from core_model.domain.analysis import ViewResult
from core_model.domain.study import Study, StudyImage
from core_model.imaging.contours import THRESHOLD, lesions_from_probability, min_area_for_scale
from core_model.imaging.preprocess import Letterbox, resize_map, resize_nearest
from core_model.io.pyramid import pixels_for

# Long side of the level read, in multiples of the largest model input.
LEVEL_FACTOR = 2


def study_at_level(study: Study, long_side: int) -> tuple[Study, dict[str, tuple[int, int]]]:
    """``study`` with each image replaced by its smallest level of long side >= ``long_side``,
    and the full shape of every view whose images were reduced (view key -> (rows, cols))."""
    reduced: dict[str, tuple[int, int]] = {}
    images: dict[tuple[str, str], StudyImage] = {}
    for slot, im in study.images.items():
        full = tuple(im.shape)
        if max(full) < 2 * long_side:  # not even one halving keeps the long side: read as is
            images[slot] = im
            continue
        px, _ = pixels_for(im, long_side)
        sy, sx = full[0] / px.shape[0], full[1] / px.shape[1]
        spacing = None if im.pixel_spacing_mm is None else (im.pixel_spacing_mm[0] * sy, im.pixel_spacing_mm[1] * sx)
        images[slot] = StudyImage(side=im.side, view=im.view, energy=im.energy, pixels=px, source=im.source,
                                  pixel_spacing_mm=spacing, bits_stored=im.bits_stored, window=im.window,
                                  orientation=im.orientation)
        reduced[im.key] = full
    if not reduced:
        return study, {}
    out = Study(patient_id=study.patient_id, study_id=study.study_id, images=images, source=study.source,
                warnings=study.warnings, synthetic=study.synthetic, description=study.description)
    return out, reduced


def views_to_full_size(views: dict[str, ViewResult], full_shapes: dict[str, tuple[int, int]],
                       seg_input: tuple[int, int], min_score: float = 0.0, threshold: float = THRESHOLD) -> None:
    """Bring the results of reduced views to their full-size images (in place).

    The contours are drawn again from the full-size probability, with the
    minimum area a full-size analysis would use (the same model pixels), so a
    contour is what the same probability map gives at full resolution.
    """
    for key, vr in views.items():
        full = full_shapes.get(key)
        if full is None or vr.mask.shape == full:
            continue
        if vr.probability is not None:
            prob = resize_map(vr.probability, full)
            box = Letterbox.fit(full, seg_input)
            vr.mask, vr.lesions = lesions_from_probability(
                prob, threshold, min_area_px=min_area_for_scale(float(box.scale_xy.mean())), min_score=min_score)
            vr.probability = prob
        else:
            vr.mask = resize_nearest(vr.mask, full)
        if vr.heatmap is not None:
            vr.heatmap = resize_map(vr.heatmap, full)
