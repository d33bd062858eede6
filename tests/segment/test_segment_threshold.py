"""The classical threshold baseline: Otsu, adaptive, and polarity detection (BF vs HAADF)."""

from __future__ import annotations

import pickle

import numpy as np
import pytest
from antema_fast.segment import Segmenter, segment
from antema_fast.segment._threshold import otsu_threshold, threshold_segment
from segment_helpers import discs, iou


def test_otsu_matches_scikit_image() -> None:
    filters = pytest.importorskip("skimage.filters")
    rng = np.random.default_rng(0)
    x = np.r_[rng.normal(0.2, 0.05, 5000), rng.normal(0.7, 0.1, 2000)]
    ours, ref = otsu_threshold(x), float(filters.threshold_otsu(x, nbins=256))
    assert abs(ours - ref) <= (x.max() - x.min()) / 256 * 1.01


def test_otsu_constant_and_empty() -> None:
    assert otsu_threshold(np.full(10, 3.0)) == 3.0
    with pytest.raises(ValueError, match="expected finite values"):
        otsu_threshold(np.array([np.nan]))


@pytest.mark.parametrize(
    ("background", "particle", "expected"), [(200.0, 60.0, "dark"), (30.0, 180.0, "bright")]
)
@pytest.mark.parametrize("method", ["otsu", "adaptive"])
def test_polarity_on_discs(background: float, particle: float, expected: str, method: str) -> None:
    img, truth = discs((512, 512), 5, background=background, particle=particle, noise=15.0)
    mask, score, pol = threshold_segment(img, method=method)
    assert pol == expected
    assert iou(mask, truth) > (0.85 if method == "otsu" else 0.6)
    assert score.dtype == np.float32 and 0.0 <= score.min() and score.max() <= 1.0
    assert score[truth].mean() > score[~truth].mean()  # particles bright in the score


def test_polarity_dense_particles_uses_border() -> None:
    # particles cover more than half of the image, but the border is background
    img, truth = discs(
        (400, 400), 7, n=60, radius=(22.0, 28.0), background=220.0, particle=40.0, noise=5.0
    )
    img[:, :] = np.where(truth, 40.0, 220.0)
    img[60:340, 60:340] = 40.0  # one big dark block: most pixels are particle
    truth = img < 100
    assert truth.mean() > 0.45
    mask, _, pol = threshold_segment(img)
    assert pol == "dark"
    assert iou(mask, truth) > 0.95


@pytest.mark.parametrize(("regime", "expected"), [("tem", "dark"), ("haadf", "bright")])
def test_polarity_on_synthetic_micrographs(regime: str, expected: str) -> None:
    synth = pytest.importorskip("antema_fast.synth")
    hits = 0
    for seed in range(4):
        s = synth.generate(seed=seed, shape=(384, 384), regime=regime, film_hole=False)
        if s.semantic.mean() < 0.02:
            continue
        _, _, pol = threshold_segment(s.image)
        hits += pol == expected
    assert hits >= 3


def test_forced_polarity_and_flat_image() -> None:
    img, truth = discs((256, 256), 1)
    m_dark, _, _ = threshold_segment(img, polarity="dark")
    m_bright, _, pol = threshold_segment(img, polarity="bright")
    assert pol == "bright"
    assert iou(m_dark, truth) > 0.8 and iou(m_bright, ~truth) > 0.8
    mask, score, _ = threshold_segment(np.full((16, 16), 7, np.uint16))
    assert not mask.any() and not score.any()
    with pytest.raises(ValueError, match="method"):
        threshold_segment(img, method="bogus")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="2-D"):
        threshold_segment(np.zeros((2, 2, 2)))


def test_adaptive_copes_with_uneven_illumination() -> None:
    img, truth = discs((512, 512), 9, background=200.0, particle=140.0, noise=6.0, gradient=150.0)
    otsu, _, _ = threshold_segment(img, method="otsu", polarity="dark")
    adaptive, _, _ = threshold_segment(img, method="adaptive", polarity="dark")
    assert iou(adaptive, truth) > iou(otsu, truth) + 0.1


def test_threshold_backend_through_segmenter() -> None:
    img, truth = discs((300, 301), 2, background=40.0, particle=200.0)
    seg = Segmenter(backend="threshold")
    out = seg.segment(img)
    assert out.backend == "threshold" and out.model_name is None and out.model_sha256 is None
    assert out.mask.shape == img.shape and out.probability.shape == img.shape
    assert out.extra["polarity"] == "bright" and out.seconds > 0
    assert iou(out.mask, truth) > 0.85
    assert seg.info()["model"] is None
    again = segment(img, backend="threshold")
    np.testing.assert_array_equal(again.mask, out.mask)
    adaptive = Segmenter(backend="threshold", threshold_method="adaptive")
    res = pickle.loads(pickle.dumps(adaptive)).segment(img)
    assert res.extra["method"] == "adaptive" and iou(res.mask, truth) > 0.6
    with pytest.raises(ValueError, match="threshold_method"):
        Segmenter(backend="threshold", threshold_method="mean")  # type: ignore[arg-type]
