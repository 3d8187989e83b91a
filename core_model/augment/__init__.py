"""Lesion-enriched position masks and contralateral adversarial samples (Algorithm 1)."""
