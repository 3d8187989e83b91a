"""Which breast is the affected one: a pure decision from the contours, stated with its reasons.

The classifier scores one breast (its CC and MLO, with the other breast as
contralateral input), so an analysis must say which. The decision reads only
the segmentation's contours (their certainty, not their area) and, when the
reader named a breast, keeps it and says when the contours disagree.
:meth:`core_model.inference.analyzer.Analyzer.analyze` calls
:func:`decide_affected_side` as its own step between the contours and the
classification; nothing here runs a model.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from core_model.domain.analysis import ViewResult
from core_model.domain.study import SIDE_NAMES, SIDES, contralateral

# Contour certainties (mean probability inside the contour) closer than this are a close call
# between the breasts: the choice is then reported, not silently made.
CLOSE_CALL_MARGIN = 0.1
# The other breast's most certain contour must beat the reader's chosen one by this much to be said
# to be surer: contour scores that differ in the second decimal are a tie, not a finding.
_SURER_MARGIN = 0.02
NO_LESION_FOUND = ("no lesion found: no contour in this study reached the segmentation threshold; "
                   "no malignancy score or heatmap was computed")


@dataclass
class SideDecision:
    """Which breast the classifier and heatmaps are for, and why."""

    side: str | None  # None: no lesion found and no breast given
    source: str  # "segmentation" or "caller"
    lesion_found: bool
    confidence: dict[str, float]  # per side, the certainty of its most certain contour (0: none)
    notes: list[str] = field(default_factory=list)


def side_confidence(views: dict[str, ViewResult]) -> dict[str, float]:
    """Per side: the certainty (mean segmentation probability inside the contour) of its most certain contour."""
    return {side: max((les.score for key, vr in views.items() if key.startswith(side + "_") for les in vr.lesions),
                      default=0.0) for side in SIDES}


def decide_affected_side(views: dict[str, ViewResult], given: str | None = None) -> SideDecision:
    """The affected breast from lesion confidence, not outlined area.

    A normal breast's dense tissue can be outlined over a larger area than a small cancer; what
    tells a lesion apart is how certain the model is of it. So the breast whose most certain
    contour is the most certain is taken; with no contour anywhere, no lesion was found (and the
    classifier, which scores a lesion, has nothing to score). A breast ``given`` by the reader is
    kept, and the reader is told when the other breast holds the clearly more certain contour.
    """
    conf = side_confidence(views)
    found = any(v > 0 for v in conf.values())
    if given is not None:
        d = SideDecision(given, "caller", found, conf)
        other = contralateral(given)
        if conf[other] > 0 and conf[other] >= conf[given] + _SURER_MARGIN:
            d.notes.append(f"the {SIDE_NAMES[other]} breast holds a more certain contour (contour AI score "
                           f"{conf[other]:.2f} vs {conf[given]:.2f}) than the {SIDE_NAMES[given]} breast chosen "
                           "by the reader")
        if not any(vr.lesions for k, vr in views.items() if k.startswith(given + "_")):
            d.notes.append(f"no lesion was outlined on the {SIDE_NAMES[given]} breast chosen by the reader; "
                           "the score is for the breast without a lesion position")
        return d
    if not found:
        return SideDecision(None, "segmentation", False, conf, [NO_LESION_FOUND])
    side = max(SIDES, key=lambda s: (conf[s], s == "R"))  # equal certainty: the right breast, stated below
    other = contralateral(side)
    d = SideDecision(side, "segmentation", True, conf)
    if conf[other] > 0 and conf[side] - conf[other] < CLOSE_CALL_MARGIN:
        d.notes.append(f"lesions were outlined in both breasts; the {SIDE_NAMES[side]} breast was taken as the "
                       f"affected one because its contour is the more certain (contour AI score {conf[side]:.2f} "
                       f"vs {conf[other]:.2f}), a close call — check, or choose the affected breast explicitly")
    return d
