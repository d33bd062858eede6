"""Invariants (hypothesis), agreement with scikit-image, and thread safety of the core."""

from __future__ import annotations

import math
import threading

import numpy as np
import pandas as pd
import pytest
from antema_fast import _core
from antema_fast.measure import Particle, measure_particles
from antema_fast.measure import regionprops_table as measure  # every component as it is
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays
from measure_reference import convex_image_bruteforce, corner_points, perimeter_reference
from scipy import ndimage
from skimage.measure import label as sk_label
from skimage.measure import regionprops

small_masks = arrays(np.bool_, st.tuples(st.integers(1, 14), st.integers(1, 14)))


def _inside_or_on(hull: np.ndarray, p: tuple[int, int]) -> bool:
    """Counter-clockwise (row, col) hull contains p (boundary included), integer arithmetic."""
    n = len(hull)
    for i in range(n):
        ay, ax = (int(v) for v in hull[i])
        by, bx = (int(v) for v in hull[(i + 1) % n])
        if (by - ay) * (p[1] - ax) - (bx - ax) * (p[0] - ay) < 0:
            return False
    return True


@settings(max_examples=80, deadline=None)
@given(small_masks)
def test_hull_contains_every_pixel_corner(mask: np.ndarray) -> None:
    if not mask.any():
        return
    corners, _ = _core.hulls(np.ascontiguousarray(mask, dtype=np.uint8))
    assert len(corners) >= 4
    pts = corner_points(mask)
    pset = set(pts)
    assert all(_inside_or_on(corners, p) for p in pts)
    assert all((int(y), int(x)) in pset for y, x in corners)  # vertices are pixel corners


@settings(max_examples=80, deadline=None)
@given(small_masks)
def test_feret_order_and_symmetries(mask: np.ndarray) -> None:
    if not mask.any():
        return
    p = [Particle(0, 0, mask)]
    base = measure_particles(p, 1.0).iloc[0]
    assert 0 < base.feret_min_px <= base.feret_max_px + 1e-12
    assert base.feret_min_px >= 1.0 - 1e-12 and base.feret_max_px >= math.sqrt(2) - 1e-12
    for img in (np.rot90(mask), mask.T, np.rot90(mask, 2), mask[::-1]):
        other = measure_particles([Particle(0, 0, img)], 1.0).iloc[0]
        assert other.feret_max_px == pytest.approx(base.feret_max_px, abs=1e-9)
        assert other.feret_min_px == pytest.approx(base.feret_min_px, abs=1e-9)
        assert other.convex_area_px == base.convex_area_px
    # the angle of a 90-degree rotation turns by 90 degrees (for a unique diameter direction)
    assert 0.0 <= base.feret_max_angle_deg < 180.0 and 0.0 <= base.feret_min_angle_deg < 180.0


@settings(max_examples=60, deadline=None)
@given(small_masks)
def test_perimeter_convex_image_and_area_invariants(mask: np.ndarray) -> None:
    if not mask.any():
        return
    row = measure_particles([Particle(0, 0, mask)], 1.0).iloc[0]
    assert row.perimeter_px == pytest.approx(perimeter_reference(mask), abs=1e-9)
    ci = convex_image_bruteforce(mask)
    assert row.convex_area_px == ci.sum() >= row.area_px == mask.sum()
    assert (ci | mask).sum() == ci.sum()  # the convex image contains the particle
    assert 0 < row.solidity <= 1.0


@pytest.mark.parametrize("seed", range(2))
def test_agrees_with_skimage_regionprops(seed: int) -> None:
    rng = np.random.default_rng(seed)
    g = ndimage.gaussian_filter(rng.standard_normal((300, 320)), 3.0)
    mask = g > np.quantile(g, 0.75)
    t = measure(mask, 1.0)
    props = regionprops(sk_label(mask, connectivity=2))
    assert len(props) == len(t)
    # exact: area, bbox, centroid
    assert t.area_px.tolist() == [p.area for p in props]
    bb = np.array([p.bbox for p in props]) - np.array([0, 0, 1, 1])
    assert np.array_equal(
        t[["bbox_row_min", "bbox_col_min", "bbox_row_max", "bbox_col_max"]].values, bb
    )
    cen = np.array([p.centroid for p in props])
    np.testing.assert_allclose(t.centroid_y_px, cen[:, 0], rtol=0, atol=1e-9)
    np.testing.assert_allclose(t.centroid_x_px, cen[:, 1], rtol=0, atol=1e-9)
    np.testing.assert_allclose(
        t.equivalent_diameter_px, [p.equivalent_diameter_area for p in props]
    )
    # convex image conventions differ (scikit-image counts centres on or near the hull of the
    # pixels' corner points; we count centres strictly inside the hull of the edge midpoints):
    # stated tolerance for areas of >= 50 px: convex area within 10 %, solidity within 0.1,
    # and median differences below 3 %. Feret max within 1 px (scikit-image measures the hull
    # of its convex image's contour).
    big = t.area_px.to_numpy() >= 50
    ca = np.array([p.area_convex for p in props], float)
    rel = (t.convex_area_px.to_numpy() - ca) / ca
    dsol = t.solidity.to_numpy() - np.array([p.solidity for p in props])
    assert big.sum() > 20
    assert np.abs(rel[big]).max() < 0.10 and np.median(np.abs(rel[big])) < 0.03
    assert np.abs(dsol[big]).max() < 0.10 and np.median(np.abs(dsol[big])) < 0.03
    fmax = np.array([p.feret_diameter_max for p in props])
    assert np.abs(t.feret_max_px.to_numpy()[big] - fmax[big]).max() < 1.0


def test_eight_threads_give_the_sequential_result() -> None:
    rng = np.random.default_rng(42)
    masks = [ndimage.gaussian_filter(rng.standard_normal((260, 260)), 2.0) > 0.05 for _ in range(8)]
    expected = [measure(m, 0.4) for m in masks]
    results: list[pd.DataFrame | None] = [None] * 8
    errors: list[BaseException] = []
    barrier = threading.Barrier(8)

    def work(i: int) -> None:
        try:
            barrier.wait()
            for _ in range(3):
                results[i] = measure(masks[i], 0.4)
        except BaseException as exc:  # pragma: no cover - reported below
            errors.append(exc)

    threads = [threading.Thread(target=work, args=(i,)) for i in range(8)]
    for th in threads:
        th.start()
    for th in threads:
        th.join()
    assert not errors
    for got, exp in zip(results, expected, strict=True):
        pd.testing.assert_frame_equal(got, exp)
