"""Detector outliers (hot and dead pixels, cosmic-ray hits) are repaired before segmentation
(``antema_fast.pipeline.repair_outliers``, through ``segmentation_input``)."""

from __future__ import annotations

import numpy as np
import pytest
from antema_fast import Settings, analyze
from antema_fast.pipeline import repair_outliers, segmentation_input
from antema_fast.synth import Population, generate


def _noise(shape: tuple[int, int] = (128, 128), seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).poisson(400.0, shape).astype(np.float32)


@pytest.mark.parametrize("dtype", [np.float32, np.float64, np.uint16, np.int32])
def test_hot_dead_and_streak_pixels_are_replaced_by_their_neighbourhood(dtype) -> None:  # type: ignore[no-untyped-def]
    img = _noise()
    img[10, 20] = 60000.0  # hot
    img[50, 60] = 0.0  # dead
    img[90, 30:32] = 30000.0  # a two-pixel cosmic-ray streak
    img = img.astype(dtype)
    fixed, n = repair_outliers(img)
    assert n == 4 and fixed.dtype == img.dtype and fixed.shape == img.shape
    for r, c in ((10, 20), (50, 60), (90, 30), (90, 31)):
        assert 300 < float(fixed[r, c]) < 500
    changed = fixed != img
    assert np.count_nonzero(changed) == 4  # nothing else is touched
    assert repair_outliers(fixed)[1] == 0


def test_an_image_without_outliers_is_returned_as_it_is() -> None:
    img = _noise()
    out, n = repair_outliers(img)
    assert n == 0 and out is img
    flat = np.full((32, 32), 7, np.uint8)
    assert repair_outliers(flat)[0] is flat
    tiny = np.zeros((2, 5))
    assert repair_outliers(tiny)[0] is tiny
    with_nan = _noise()
    with_nan[3, 3] = np.nan  # non-finite pixels are the reader's business
    assert repair_outliers(with_nan)[1] == 0


def test_small_bright_particles_are_not_outliers() -> None:
    """Particles of 3-5 pixels as bright as a hot pixel (a plus, an L, a 2 × 2 block) are three
    or more such pixels together: kept; a single pixel of the same brightness is repaired."""
    img = _noise((256, 256), 1)
    yy, xx = np.mgrid[:256, :256]
    img[(yy - 40) ** 2 + (xx - 40) ** 2 <= 1] = 20000.0  # a plus, 3 px across (5 pixels)
    img[100, 100:102] = 20000.0  # an L of 3 pixels
    img[101, 100] = 20000.0
    img[150:152, 150:152] = 20000.0  # a 2 x 2 block
    img[70, 70] = 20000.0
    fixed, n = repair_outliers(img)
    assert n == 1 and fixed[70, 70] < 1000
    for sl in (np.s_[37:44, 37:44], np.s_[97:105, 97:105], np.s_[147:155, 147:155]):
        assert np.array_equal(fixed[sl], img[sl])


def test_segmentation_input_repairs_outliers_and_reports_how_many() -> None:
    img = _noise()
    img[5, 5] = 65000.0
    report: dict = {}
    out = segmentation_input(img, Settings(), "x", report)
    assert report == {"outliers_repaired": 1} and out[5, 5] < 1000
    # with an ignored region too: filled, then repaired
    report = {}
    out = segmentation_input(img, Settings(ignore_regions=((0, -10, 0, 0),)), "x", report)
    assert report["outliers_repaired"] == 1 and np.all(out[-10:] == out[-10, 0])


def test_hot_pixels_do_not_become_particles_in_a_haadf_analysis() -> None:
    """HAADF field: 1 in 5000 pixels hot (20× the brightest signal). Before the repair each one,
    blurred by the preprocessing, came back as a small bright particle."""
    pytest.importorskip("onnxruntime")
    import warnings

    pop = Population(median_diameter_nm=4.0, coverage=0.2, overlap_fraction=0.1)
    s = generate(
        np.random.default_rng([17, 1]),
        (512, 512),
        "haadf",
        pixel_size_nm=0.25,
        population=pop,
        film_hole=False,
    )
    hot = s.image.copy()
    rng = np.random.default_rng(3)
    idx = rng.choice(hot.size, hot.size // 5000, replace=False)
    hot.flat[idx] = float(s.image.max()) * 20.0
    settings = Settings(threads=2)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)
        clean = analyze(s.image, pixel_size_nm=0.25, settings=settings)
        dirty = analyze(hot, pixel_size_nm=0.25, settings=settings)
    assert dirty.provenance["outliers_repaired"] == idx.size
    assert clean.provenance["outliers_repaired"] == 0
    assert dirty.n_particles == clean.n_particles
    assert np.sum(dirty.mask & clean.mask) / np.sum(dirty.mask | clean.mask) > 0.99
    # the same hot pixels, segmented as they are, are taken for particles
    import cv2
    from antema_fast.segment import Segmenter

    seg = Segmenter(settings, backend="onnxruntime")
    n_raw = cv2.connectedComponents(seg.segment(hot).mask.astype(np.uint8), connectivity=8)[0]
    n_clean = cv2.connectedComponents(seg.segment(s.image).mask.astype(np.uint8), connectivity=8)[0]
    assert n_raw >= n_clean + idx.size // 4


@pytest.mark.parametrize("dtype", [np.float32, np.uint16])
def test_dead_and_hot_lines_are_replaced_by_the_lines_beside_them(dtype) -> None:  # type: ignore[no-untyped-def]
    img = _noise((256, 200), 4)
    img[:, 50] = 0.0  # a dead column
    img[120, :] = 30000.0  # a hot row
    img = img.astype(dtype)
    fixed, n = repair_outliers(img)
    assert n == 256 + 200 - 1 and fixed.dtype == img.dtype  # the crossing counted once
    assert 350 < float(np.median(fixed[:, 50])) < 450 and 350 < float(np.median(fixed[120])) < 450
    rest = np.ones(img.shape, bool)
    rest[:, 50] = False
    rest[120, :] = False
    assert np.array_equal(fixed[rest], img[rest])  # nothing else is touched
    assert repair_outliers(fixed)[1] == 0


def test_straight_edges_of_the_specimen_are_not_lines_to_repair() -> None:
    """A film edge along a column, a dark band three columns wide and a line at the image's
    edge change the line medians, but none is a one-line defect between two agreeing lines."""
    img = _noise((256, 256), 5)
    img[:, 128:] *= 0.2  # a step: the edge of a hole, or of a thick region
    img[:, 40:43] = 5.0  # a band wider than one line
    img[:, 0] = 0.0  # the image's first column: left as it is
    fixed, n = repair_outliers(img)
    assert n == 0 and fixed is img
