"""Connected-component labelling: scipy agreement, raster order, per-label statistics."""

from __future__ import annotations

import antema_fast
import numpy as np
import pytest
from antema_fast import _core
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays
from scipy import ndimage
from skimage.measure import regionprops

STRUCT = {1: ndimage.generate_binary_structure(2, 1), 2: np.ones((3, 3), bool)}


def same_up_to_permutation(a: np.ndarray, b: np.ndarray) -> bool:
    """True when two label images define the same partition of the foreground."""
    if not np.array_equal(a > 0, b > 0):
        return False
    fg = a > 0
    pairs = np.unique(np.stack([a[fg], b[fg]]), axis=1)
    return len(np.unique(pairs[0])) == pairs.shape[1] == len(np.unique(pairs[1]))


def raster_first_pixel_order(labels: np.ndarray) -> bool:
    flat = labels.ravel()
    seen = flat[flat > 0]
    _, first = np.unique(seen, return_index=True)
    order = seen[np.sort(first)]
    return np.array_equal(order, np.arange(1, len(order) + 1))


@pytest.mark.parametrize("connectivity", [1, 2])
@pytest.mark.parametrize("density", [0.3, 0.5, 0.7])
def test_matches_scipy_on_random_masks(connectivity: int, density: float) -> None:
    rng = np.random.default_rng(int(density * 10) + connectivity)
    mask = rng.random((97, 131)) < density
    labels, n = antema_fast.label(mask, connectivity=connectivity)
    ref, nref = ndimage.label(mask, structure=STRUCT[connectivity])
    assert labels.dtype == np.int32 and labels.shape == mask.shape
    assert n == nref
    assert same_up_to_permutation(labels, ref)
    assert raster_first_pixel_order(labels)
    # scipy also numbers in raster order of the first pixel
    assert np.array_equal(labels, ref)


@settings(max_examples=60, deadline=None)
@given(arrays(np.bool_, st.tuples(st.integers(1, 24), st.integers(1, 24))), st.sampled_from([1, 2]))
def test_labels_match_scipy_up_to_permutation(mask: np.ndarray, connectivity: int) -> None:
    labels, n = antema_fast.label(mask, connectivity=connectivity)
    ref, nref = ndimage.label(mask, structure=STRUCT[connectivity])
    assert n == nref
    assert same_up_to_permutation(labels, ref)
    assert raster_first_pixel_order(labels)


@pytest.mark.parametrize("connectivity", [1, 2])
def test_statistics_match_skimage(connectivity: int) -> None:
    rng = np.random.default_rng(11)
    mask = ndimage.gaussian_filter(rng.standard_normal((120, 110)), 2.0) > 0.1
    mask[0, :] |= rng.random(110) < 0.3  # some components touching the border
    labels, n, stats = _core.label(
        np.ascontiguousarray(mask, dtype=np.uint8), 8 if connectivity == 2 else 4
    )
    props = regionprops(labels)
    assert len(props) == n
    for i, p in enumerate(props):
        assert p.label == i + 1
        assert stats["area"][i] == p.area
        r0, c0, r1, c1 = p.bbox
        assert (
            stats["row_min"][i],
            stats["col_min"][i],
            stats["row_max"][i],
            stats["col_max"][i],
        ) == (
            r0,
            c0,
            r1 - 1,
            c1 - 1,
        )
        assert stats["sum_row"][i] / p.area == pytest.approx(p.centroid[0], abs=1e-12)
        assert stats["sum_col"][i] / p.area == pytest.approx(p.centroid[1], abs=1e-12)
        obj = labels == p.label
        touches = obj[0].any() or obj[-1].any() or obj[:, 0].any() or obj[:, -1].any()
        assert bool(stats["touches_border"][i]) == touches
        rr, cc = np.argwhere(obj)[0]
        assert (stats["first_row"][i], stats["first_col"][i]) == (rr, cc)
        # holes: background components (complementary connectivity) enclosed by the object
        bg_struct = STRUCT[1] if connectivity == 2 else STRUCT[2]
        padded = np.pad(~obj, 1, constant_values=True)
        _, nbg = ndimage.label(padded, structure=bg_struct)
        assert stats["euler"][i] == 1 - (nbg - 1)


def test_euler_matches_skimage_8_connected() -> None:
    rng = np.random.default_rng(5)
    mask = ndimage.gaussian_filter(rng.standard_normal((150, 150)), 1.5) > 0.0
    labels, n, stats = _core.label(np.ascontiguousarray(mask, dtype=np.uint8), 8)
    for i, p in enumerate(regionprops(labels)):
        assert stats["euler"][i] == p.euler_number


def test_known_holes() -> None:
    m = np.zeros((9, 9), bool)
    m[1:8, 1:8] = True
    m[2, 2] = m[2, 5] = m[5, 3] = False  # three separate holes
    m[4, 6] = m[5, 6] = False  # a fourth of two pixels
    _, n, stats = _core.label(m.view(np.uint8), 8)
    assert n == 1 and stats["euler"][0] == 1 - 4
    # diagonal background pixels are separate holes for 8-connected particles
    d = np.ones((4, 4), bool)
    d[1, 1] = d[2, 2] = False
    assert _core.label(d.view(np.uint8), 8)[2]["euler"][0] == -1
    assert _core.label(d.view(np.uint8), 4)[2]["euler"][0] == 0  # 4-conn: one 8-connected hole


def test_degenerate_inputs() -> None:
    labels, n = antema_fast.label(np.zeros((3, 4), bool))
    assert n == 0 and not labels.any()
    labels, n = antema_fast.label(np.ones((1, 1), np.uint8))
    assert n == 1 and labels.tolist() == [[1]]
    labels, n = antema_fast.label(np.array([[1, 0, 1, 0, 1]]))
    assert n == 3 and labels.tolist() == [[1, 0, 2, 0, 3]]
    checker = (np.add.outer(np.arange(6), np.arange(6)) % 2).astype(bool)
    assert antema_fast.label(checker)[1] == 1
    assert antema_fast.label(checker, connectivity=1)[1] == 18


def test_bad_inputs() -> None:
    with pytest.raises(ValueError, match="connectivity"):
        antema_fast.label(np.ones((2, 2), bool), connectivity=0)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="connectivity 4 or 8"):
        _core.label(np.ones((2, 2), np.uint8), 6)
    with pytest.raises(TypeError, match="float"):
        antema_fast.label(np.ones((2, 2)))


def test_core_stubs_list_every_compiled_function() -> None:
    """_core.pyi must not drift from the compiled module."""
    import ast
    from pathlib import Path

    stub = Path(antema_fast.__file__).with_name("_core.pyi")
    tree = ast.parse(stub.read_text(encoding="utf-8"))
    stubbed = {n.name for n in tree.body if isinstance(n, ast.FunctionDef)}
    compiled = {n for n in dir(_core) if not n.startswith("_") and callable(getattr(_core, n))}
    assert compiled == stubbed
