"""The not-for-clinical-use notice every output of unvalidated weights carries (no torch import).

Kept apart from :mod:`core_model.checkpoint` (which re-exports it) so that
the viewer can show it before any model, and torch, is loaded.
"""

import re

NOT_FOR_CLINICAL_USE = "Research software: not for clinical use. Outputs are not validated for diagnosis."

# What synthetic (phantom) studies say about themselves, in every file they are written to.
SYNTHETIC_NOTICE = "SYNTHETIC phantom study - not a patient, not for clinical use"
# How loaders recognise it: "SYNTHETIC" with "phantom" after it, so a real image type such as a
# "SYNTHETIC 2D" view reconstructed from tomosynthesis is never taken for a phantom.
SYNTHETIC_MARK_RE = re.compile(r"\bSYNTHETIC\b.*\b[Pp]hantom\b", re.DOTALL)
