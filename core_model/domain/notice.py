"""The not-for-clinical-use notice every output of unvalidated weights carries (no torch import).

Kept apart from :mod:`core_model.models.checkpoint` (which re-exports it) so that
the viewer can show it before any model, and torch, is loaded.
"""

import re

NOT_FOR_CLINICAL_USE = "Research software: not for clinical use. Outputs are not validated for diagnosis."

# What synthetic (phantom) studies say about themselves, in every file they are written to.
SYNTHETIC_NOTICE = "SYNTHETIC phantom study - not a patient, not for clinical use"
# How loaders recognise it: "SYNTHETIC" with "phantom" after it, so a real image type such as a
# "SYNTHETIC 2D" view reconstructed from tomosynthesis is never taken for a phantom.
SYNTHETIC_MARK_RE = re.compile(r"\bSYNTHETIC\b.*\b[Pp]hantom\b", re.DOTALL)


# What the malignancy score is, in words, by whether its weights carry a calibration.
UNCALIBRATED_SCORE = "uncalibrated model score, not a probability of cancer"
CALIBRATED_SCORE = ("model score temperature-scaled on its training data's validation studies only, "
                    "not a probability of cancer")
NO_LESION_FOUND_SHORT = "no lesion found"
# Said beside every score that weights trained only on synthetic studies give a patient's images.
SYNTHETIC_CLASSIFIER_WARNING = (
    "the classifier was trained on synthetic phantom studies only: its score on a patient's images is untested "
    "and says nothing about this lesion"
)


def score_words(models: dict | None) -> str:
    """How to name the classifier's number, from the models' identities (``Analysis.models`` or a
    review's ``ai["models"]``): a calibration only describes the data it was fitted on."""
    cls = (models or {}).get("classifier") or {}
    return CALIBRATED_SCORE if (cls.get("calibration") or {}).get("temperature") else UNCALIBRATED_SCORE
