import numpy as np
import pytest
from antema_fast._preprocess import Preprocessing


def test_minmax_quantised_range():
    rng = np.random.default_rng(0)
    img = rng.normal(100, 10, (64, 80)).astype(np.float32)
    x = Preprocessing().apply(img)
    assert x.shape == img.shape and x.dtype == np.float32
    assert x.min() == 0.0 and x.max() == 1.0
    assert np.allclose(x * 255, np.rint(x * 255), atol=1e-4)


def test_constant_image_is_zero_and_json_roundtrip():
    p = Preprocessing(gaussian_sigma_px=1.0, low_percentile=1, high_percentile=99)
    assert Preprocessing.from_json(p.to_json()) == p
    assert not Preprocessing().apply(np.full((8, 8), 7, np.uint8)).any()
    with pytest.raises(ValueError):
        Preprocessing().apply(np.zeros((2, 2, 2)))
    with pytest.raises(ValueError):
        Preprocessing(low_percentile=50, high_percentile=10)
