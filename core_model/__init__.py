"""NaFV-Net model core: CEM study model, loaders, models, training and analysis.

Pure numpy/torch; never imports Qt or the viewer.
"""

__version__ = "0.1.0"
