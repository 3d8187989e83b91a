"""Command-line entry points: nafv-analyze, nafv-train (and its phantom task), the demo report."""
