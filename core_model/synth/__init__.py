"""Synthetic four-view CEM studies with ground truth (phantoms) for tests, training and benchmarks."""
