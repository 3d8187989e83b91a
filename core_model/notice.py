"""The not-for-clinical-use notice every output of unvalidated weights carries (no torch import).

Kept apart from :mod:`core_model.checkpoint` (which re-exports it) so that
the viewer can show it before any model, and torch, is loaded.
"""

NOT_FOR_CLINICAL_USE = "Research software: not for clinical use. Outputs are not validated for diagnosis."
