"""The quick-look colour map equals matplotlib's 'jet' (which the analysis no longer imports)."""

import numpy as np

from core_model.imaging.colormap import jet


def test_jet_equals_matplotlib():
    from matplotlib import colormaps

    v = np.concatenate([np.linspace(0, 1, 5001), [0.0, 1.0, 0.5, 1 / 256, 255 / 256]])
    np.testing.assert_allclose(jet(v), colormaps["jet"](v)[..., :3], atol=1e-6)
    img = np.random.default_rng(0).random((7, 9))
    assert jet(img).shape == (7, 9, 3)
