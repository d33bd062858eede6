"""Mask utilities: small-object removal, hole filling, border clearing (vs scipy/skimage)."""

from __future__ import annotations

import numpy as np
import pytest
from antema_fast.measure import clear_border, fill_holes, remove_small_objects
from scipy import ndimage

EIGHT = np.ones((3, 3), bool)
FOUR = ndimage.generate_binary_structure(2, 1)


def blobs(seed: int, shape: tuple[int, int] = (90, 110)) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return ndimage.gaussian_filter(rng.standard_normal(shape), 1.3) > 0.15


@pytest.mark.parametrize("seed", range(3))
@pytest.mark.parametrize("min_px", [0, 1, 5, 30])
def test_remove_small_objects(seed: int, min_px: int) -> None:
    m = blobs(seed)
    lab, n = ndimage.label(m, structure=EIGHT)
    sizes = ndimage.sum_labels(m, lab, index=np.arange(1, n + 1))
    expected = np.isin(lab, np.flatnonzero(sizes >= min_px) + 1)
    out = remove_small_objects(m, min_px)
    assert out.dtype == np.bool_ and np.array_equal(out, expected)


def test_remove_small_objects_connectivity() -> None:
    m = np.zeros((5, 5), bool)
    m[1, 1] = m[2, 2] = True
    assert remove_small_objects(m, 2).sum() == 2
    assert remove_small_objects(m, 2, connectivity=1).sum() == 0


@pytest.mark.parametrize("seed", range(3))
def test_fill_all_holes_matches_scipy(seed: int) -> None:
    m = ~blobs(seed)  # many holes
    # 8-connected particles -> 4-connected holes; scipy's structure is the holes' connectivity
    assert np.array_equal(fill_holes(m), ndimage.binary_fill_holes(m, structure=FOUR))
    assert np.array_equal(
        fill_holes(m, connectivity=1), ndimage.binary_fill_holes(m, structure=EIGHT)
    )


@pytest.mark.parametrize("limit", [1, 3, 10, 50])
def test_fill_small_holes(limit: int) -> None:
    m = ~blobs(7)
    holes = ndimage.binary_fill_holes(m, structure=FOUR) & ~m
    lab, n = ndimage.label(holes, structure=FOUR)
    sizes = ndimage.sum_labels(holes, lab, index=np.arange(1, n + 1))
    expected = m | np.isin(lab, np.flatnonzero(sizes < limit) + 1)
    assert np.array_equal(fill_holes(m, limit), expected)
    assert np.array_equal(fill_holes(m, 0), m)


def test_clear_border() -> None:
    from skimage.segmentation import clear_border as sk_clear

    for seed in range(3):
        m = blobs(seed)
        assert np.array_equal(clear_border(m), sk_clear(m))
    m = np.zeros((4, 4), bool)
    m[0, 0] = m[1, 1] = True  # diagonal neighbours: one 8-component touching the border
    assert not clear_border(m).any()
    assert clear_border(m, connectivity=1).sum() == 1


def test_inputs_are_not_modified_and_bad_arguments() -> None:
    m = blobs(1)
    copy = m.copy()
    remove_small_objects(m, 10)
    fill_holes(m)
    clear_border(m)
    assert np.array_equal(m, copy)
    with pytest.raises(ValueError, match="min_px"):
        remove_small_objects(m, -1)
    with pytest.raises(ValueError, match="smaller_than_px"):
        fill_holes(m, 2.5)  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="float"):
        clear_border(m.astype(float))
