"""Training and evaluation driven by ``nafv-train``."""
