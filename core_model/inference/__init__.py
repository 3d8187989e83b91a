"""The analysis of a study with trained weights: analyzer, affected-side decision, resolution levels, Grad-CAM, warm-up."""
