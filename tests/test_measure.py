"""Particle table: analytic shapes, the plain-Python perimeter reference, brute-force Feret
oracles, the convex image, degenerate and bad inputs."""

from __future__ import annotations

import math

import antema_fast
import numpy as np
import pandas as pd
import pytest
from antema_fast import _core
from antema_fast.measure import (
    COLUMNS,
    Particle,
    measure_particles,
    particles_from_mask,
    regionprops_table,
)
from antema_fast.measure import regionprops_table as measure  # every component as it is
from measure_reference import (
    circularity_reference,
    convex_image_bruteforce,
    feret_bruteforce,
    perimeter_reference,
)
from scipy import ndimage


def disc(radius: float, pad: int = 3) -> np.ndarray:
    """Pixels whose centre lies within ``radius`` of the centre of the image."""
    n = int(math.ceil(radius)) * 2 + 1 + 2 * pad
    c = (n - 1) / 2
    rr, cc = np.mgrid[:n, :n]
    return (rr - c) ** 2 + (cc - c) ** 2 <= radius**2


def ellipse(a: float, b: float, theta_deg: float, pad: int = 3) -> np.ndarray:
    n = int(math.ceil(max(a, b))) * 2 + 1 + 2 * pad
    c = (n - 1) / 2
    rr, cc = np.mgrid[:n, :n].astype(float)
    t = math.radians(theta_deg)
    x, y = cc - c, -(rr - c)  # y up
    u = x * math.cos(t) + y * math.sin(t)
    v = -x * math.sin(t) + y * math.cos(t)
    return (u / a) ** 2 + (v / b) ** 2 <= 1.0


def rotated_rect(length: float, width: float, theta_deg: float) -> np.ndarray:
    n = int(math.ceil(math.hypot(length, width))) + 8
    c = (n - 1) / 2
    rr, cc = np.mgrid[:n, :n].astype(float)
    t = math.radians(theta_deg)
    x, y = cc - c, -(rr - c)
    u = x * math.cos(t) + y * math.sin(t)
    v = -x * math.sin(t) + y * math.cos(t)
    return (np.abs(u) <= length / 2) & (np.abs(v) <= width / 2)


def random_blobs(rng: np.random.Generator, shape: tuple[int, int], sigma: float, q: float):
    noise = ndimage.gaussian_filter(rng.standard_normal(shape), sigma)
    return noise > np.quantile(noise, q)


def angle_close(a: float, angles: set[float], tol: float = 1e-9) -> bool:
    return any(min(abs(a - b), 180 - abs(a - b)) <= tol for b in angles)


# ------------------------------------------------------------------------------------------
# analytic shapes
# ------------------------------------------------------------------------------------------


def test_single_pixel() -> None:
    m = np.zeros((5, 5), bool)
    m[2, 2] = True
    t = measure(m, 0.5)
    row = t.iloc[0]
    assert list(t.columns) == list(COLUMNS)
    assert row.area_px == 1 and row.area_nm2 == 0.25
    assert row.feret_max_px == pytest.approx(math.sqrt(2), abs=1e-12)
    assert row.feret_max_nm == pytest.approx(math.sqrt(2) * 0.5, abs=1e-12)
    assert row.feret_min_px == 1.0 and row.feret_min_nm == 0.5
    assert row.feret_max_angle_deg == 45.0 and row.feret_min_angle_deg == 0.0
    assert row.perimeter_px == 0.0 and math.isnan(row.circularity)
    assert row.convexity == 1.0 and row.solidity == 1.0 and row.convex_area_px == 1
    assert row.centroid_x_nm == 1.0 and row.centroid_y_nm == 1.0
    assert (row.bbox_row_min, row.bbox_col_min, row.bbox_row_max, row.bbox_col_max) == (2, 2, 2, 2)
    assert not row.separated and not row.non_convex and row.holes == 0
    assert row.touches_border is False or row.touches_border == False  # noqa: E712


@pytest.mark.parametrize(("n", "m"), [(1, 2), (1, 7), (3, 1), (2, 2), (3, 10), (17, 5)])
def test_rectangles(n: int, m: int) -> None:
    img = np.zeros((n + 4, m + 4), bool)
    img[2 : 2 + n, 2 : 2 + m] = True
    row = measure(img, 1.0).iloc[0]
    assert row.area_px == n * m
    assert row.feret_max_px == pytest.approx(math.hypot(n, m), abs=1e-12)
    assert row.feret_min_px == pytest.approx(min(n, m), abs=1e-12)
    # min caliper is along the short side: rows (90 deg) when n < m, columns (0 deg) otherwise
    assert row.feret_min_angle_deg == (90.0 if n < m else 0.0)
    assert row.feret_max_angle_deg == pytest.approx(math.degrees(math.atan2(n, m)), abs=1e-9)
    # the contour: (m-1) + (n-1) axis steps twice, 4 corners (2 for a line, 0 for one pixel)
    if n == 1 or m == 1:
        expected = 2 * (max(n, m) - 1) * 0.980
    else:
        expected = 2 * ((n - 1) + (m - 1)) * 0.980 - 4 * 0.091
    assert row.perimeter_px == pytest.approx(expected, abs=1e-12)
    assert row.convexity == pytest.approx(1.0) and row.solidity == 1.0
    assert row.convex_area_px == n * m


@pytest.mark.parametrize("theta", [0, 10, 22.5, 30, 45, 60, 75, 90])
def test_rotated_rectangles(theta: float) -> None:
    length, width = 40.0, 12.0
    img = rotated_rect(length, width, theta)
    row = measure(img, 1.0).iloc[0]
    assert row.area_px == pytest.approx(length * width, rel=0.06)
    assert math.hypot(length, width) - 1.5 <= row.feret_max_px <= math.hypot(length, width) + 1.5
    assert width - 1.0 <= row.feret_min_px <= width + 1.5
    # the caliper of the minimum is perpendicular to the long side
    expect = (theta + 90) % 180
    diff = abs(row.feret_min_angle_deg - expect)
    assert min(diff, 180 - diff) < 4.0
    assert row.solidity > 0.9


@pytest.mark.parametrize("radius", [3, 5, 8, 10, 15, 20, 30, 50])
def test_digitised_discs(radius: int) -> None:
    row = measure(disc(radius), 1.0).iloc[0]
    if radius >= 10:
        assert row.equivalent_diameter_px == pytest.approx(2 * radius, rel=0.02)
        assert row.circularity >= 0.9
    assert 2 * radius <= row.feret_min_px <= row.feret_max_px <= 2 * radius + 1.5
    assert row.holes == 0 and row.solidity <= 1.0


def test_disc_circularity_approaches_one() -> None:
    radii = [10, 20, 35, 50]
    circ = [measure(disc(r), 1.0).circularity.iloc[0] for r in radii]
    assert all(abs(1 - c) < 0.1 for c in circ)
    assert abs(1 - circ[-1]) < abs(1 - circ[0])
    legacy = measure(disc(20), 1.0, circularity="legacy").circularity.iloc[0]
    corrected = measure(disc(20), 1.0).circularity.iloc[0]
    assert legacy != corrected


@pytest.mark.parametrize(
    ("a", "b", "theta"), [(20, 10, 0), (25, 8, 30), (15, 14, 70), (30, 6, 135)]
)
def test_ellipses(a: float, b: float, theta: float) -> None:
    row = measure(ellipse(a, b, theta), 1.0).iloc[0]
    assert row.area_px == pytest.approx(math.pi * a * b, rel=0.05)
    assert 2 * a - 1.0 <= row.feret_max_px <= 2 * a + 1.5
    assert 2 * b - 1.0 <= row.feret_min_px <= 2 * b + 1.5
    if a / b > 1.5:
        diff = abs(row.feret_max_angle_deg - theta % 180)
        assert min(diff, 180 - diff) < 6.0
    assert row.aspect_ratio == pytest.approx(row.feret_max_px / row.feret_min_px)


def test_l_shape() -> None:
    img = np.zeros((14, 14), bool)
    img[2:12, 2:6] = True
    img[8:12, 2:12] = True
    row = measure(img, 1.0).iloc[0]
    assert row.area_px == 40 + 24
    assert row.convexity < 1.0 and row.solidity < 0.85
    assert row.perimeter_px == pytest.approx(perimeter_reference(img), abs=1e-9)
    fb = feret_bruteforce(img)
    assert row.feret_max_px == pytest.approx(fb["max"], abs=1e-9)
    assert row.feret_min_px == pytest.approx(fb["min"], abs=1e-9)
    ci = convex_image_bruteforce(img)
    assert row.convex_area_px == ci.sum()


def test_ring_has_a_hole_and_outer_perimeter_only() -> None:
    outer = disc(12)
    ring = outer & ~disc(6, pad=9)
    t = measure(ring, 1.0).iloc[0]
    f = measure(outer, 1.0).iloc[0]
    assert t.holes == 1 and f.holes == 0
    assert t.perimeter_px == pytest.approx(f.perimeter_px, abs=1e-12)
    assert t.convex_area_px == f.convex_area_px
    assert t.solidity < 0.8 and t.convexity < 1.0
    assert t.feret_max_px == f.feret_max_px and t.feret_min_px == f.feret_min_px


@pytest.mark.parametrize(
    "pixels",
    [
        [(0, 0), (1, 1)],
        [(0, 1), (1, 0)],
        [(i, i) for i in range(7)],
        [(i, 6 - i) for i in range(7)],
        [(3, c) for c in range(9)],
        [(r, 4) for r in range(9)],
    ],
)
def test_lines_and_diagonals(pixels: list[tuple[int, int]]) -> None:
    img = np.zeros((11, 11), bool)
    for r, c in pixels:
        img[r + 1, c + 1] = True
    row = measure(img, 1.0).iloc[0]
    fb = feret_bruteforce(img)
    assert row.feret_max_px == pytest.approx(fb["max"], abs=1e-9)
    assert row.feret_min_px == pytest.approx(fb["min"], abs=1e-9)
    assert angle_close(row.feret_max_angle_deg, fb["max_angles"])
    assert angle_close(row.feret_min_angle_deg, fb["min_angles"])
    assert row.perimeter_px == pytest.approx(perimeter_reference(img), abs=1e-9)
    # the convex image of a straight one-pixel line is the line itself
    assert row.convex_area_px == len(pixels)
    assert row.convexity == pytest.approx(1.0) and row.solidity == 1.0


def test_two_pixel_diagonal_values() -> None:
    img = np.zeros((4, 4), bool)
    img[1, 1] = img[2, 2] = True
    row = measure(img, 1.0).iloc[0]
    assert row.feret_max_px == pytest.approx(2 * math.sqrt(2))
    assert row.feret_max_angle_deg == pytest.approx(135.0)
    assert row.feret_min_px == pytest.approx(math.sqrt(2))  # width across the diagonal
    assert row.perimeter_px == pytest.approx(2 * 1.406)


# ------------------------------------------------------------------------------------------
# plain-Python reference and brute-force oracles on random shapes
# ------------------------------------------------------------------------------------------


@pytest.mark.parametrize("seed", range(4))
def test_perimeter_and_circularity_match_reference(seed: int) -> None:
    rng = np.random.default_rng(seed)
    img = random_blobs(rng, (70, 90), sigma=[1.2, 2.0, 3.0, 1.0][seed], q=0.6)
    t = measure(img, 0.7)
    legacy = measure(img, 0.7, circularity="legacy")
    lab, n = ndimage.label(img, structure=np.ones((3, 3)))
    assert n == len(t) > 5
    for i in range(n):
        obj = lab == i + 1
        p = perimeter_reference(obj)
        assert t.perimeter_px.iloc[i] == pytest.approx(p, abs=1e-9)
        area = int(obj.sum())
        for table, corrected in ((t, True), (legacy, False)):
            ref = circularity_reference(area, p, corrected)
            got = table.circularity.iloc[i]
            assert (math.isnan(ref) and math.isnan(got)) or got == pytest.approx(ref, abs=1e-9)


@pytest.mark.parametrize("seed", range(3))
def test_feret_and_convex_image_match_bruteforce(seed: int) -> None:
    rng = np.random.default_rng(100 + seed)
    img = random_blobs(rng, (60, 60), sigma=[1.5, 2.5, 1.0][seed], q=0.55)
    t = measure(img, 1.0)
    lab, n = ndimage.label(img, structure=np.ones((3, 3)))
    for i in range(n):
        obj = lab == i + 1
        r0, c0, r1, c1 = (
            t[k].iloc[i] for k in ("bbox_row_min", "bbox_col_min", "bbox_row_max", "bbox_col_max")
        )
        crop = obj[r0 : r1 + 1, c0 : c1 + 1]
        fb = feret_bruteforce(crop)
        assert t.feret_max_px.iloc[i] == pytest.approx(fb["max"], abs=1e-9)
        assert t.feret_min_px.iloc[i] == pytest.approx(fb["min"], abs=1e-9)
        assert angle_close(t.feret_max_angle_deg.iloc[i], fb["max_angles"])
        assert angle_close(t.feret_min_angle_deg.iloc[i], fb["min_angles"])
        ci = convex_image_bruteforce(crop)
        assert np.array_equal(_core.convex_image(crop.astype(np.uint8)).astype(bool), ci)
        assert t.convex_area_px.iloc[i] == ci.sum()
        assert t.convex_perimeter_px.iloc[i] == pytest.approx(perimeter_reference(ci), abs=1e-9)
        assert t.convexity.iloc[i] == pytest.approx(
            perimeter_reference(ci) / perimeter_reference(crop)
            if perimeter_reference(crop)
            else 1.0
        )


def test_particles_path_equals_mask_path() -> None:
    rng = np.random.default_rng(7)
    img = random_blobs(rng, (120, 100), sigma=2.0, q=0.6)
    ps = particles_from_mask(img)
    a = measure(img, 0.3)
    b = measure_particles(ps, 0.3, image_shape=img.shape)
    pd.testing.assert_frame_equal(a, b)
    # each particle pastes back to its own component
    lab, _ = ndimage.label(img, structure=np.ones((3, 3)))
    for i, p in enumerate(ps):
        assert np.array_equal(p.to_mask(img.shape), lab == i + 1)
    assert np.array_equal(np.logical_or.reduce([p.to_mask(img.shape) for p in ps]), img)


def test_overlapping_particles_are_measured_each_on_its_own() -> None:
    a = disc(8)
    p1 = Particle(0, 0, a)
    p2 = Particle(0, 6, a, separated=True)  # overlaps p1
    t = measure_particles([p1, p2], 1.0)
    assert list(t.particle_id) == [1, 2]
    assert t.area_px.tolist() == [a.sum(), a.sum()]
    assert t.separated.tolist() == [False, True]
    assert t.centroid_x_px.iloc[1] - t.centroid_x_px.iloc[0] == pytest.approx(6.0)
    assert t.touches_border.isna().all()  # image size unknown


def test_particle_with_two_pieces_sums_outer_perimeters() -> None:
    bm = np.zeros((5, 9), bool)
    bm[1:4, 1:4] = True
    bm[1:4, 6:8] = True
    t = measure_particles([Particle(10, 20, bm)], 1.0, image_shape=(100, 100))
    assert t.perimeter_px.iloc[0] == pytest.approx(perimeter_reference(bm), abs=1e-12)
    assert t.area_px.iloc[0] == 15
    assert t.bbox_col_min.iloc[0] == 21 and t.bbox_col_max.iloc[0] == 27
    assert not t.touches_border.iloc[0]


def test_regionprops_table_connectivity() -> None:
    img = np.zeros((6, 6), bool)
    img[1, 1] = img[2, 2] = img[3, 3] = True
    assert len(regionprops_table(img, 1.0)) == 1
    t4 = regionprops_table(img, 1.0, connectivity=1)
    assert len(t4) == 3 and t4.area_px.tolist() == [1, 1, 1]


def test_convex_stats_binding() -> None:
    img = np.zeros((14, 14), np.uint8)
    img[2:12, 2:6] = 1
    img[8:12, 2:12] = 1
    s = _core.convex_stats(img)
    row = measure(img, 1.0).iloc[0]
    assert s["area"] == row.area_px and s["convex_area"] == row.convex_area_px
    assert s["perimeter"] == row.perimeter_px and s["convexity"] == row.convexity
    empty = _core.convex_stats(np.zeros((3, 3), np.uint8))
    assert empty["area"] == 0 and math.isnan(empty["convexity"])


# ------------------------------------------------------------------------------------------
# degenerate and bad inputs
# ------------------------------------------------------------------------------------------


def test_empty_and_full_masks() -> None:
    t = measure(np.zeros((8, 9), bool), 1.0)
    assert len(t) == 0 and list(t.columns) == list(COLUMNS)
    full = measure(np.ones((8, 9), bool), 1.0).iloc[0]
    assert full.area_px == 72 and bool(full.touches_border)
    one = measure(np.ones((1, 1), bool), 2.0).iloc[0]
    assert one.feret_max_nm == pytest.approx(2 * math.sqrt(2))
    assert len(measure_particles([], 1.0)) == 0


def test_non_contiguous_views_and_dtypes() -> None:
    rng = np.random.default_rng(3)
    img = random_blobs(rng, (80, 90), sigma=1.5, q=0.6)
    base = measure(img, 1.0)
    pd.testing.assert_frame_equal(measure(np.asfortranarray(img), 1.0), base)
    pd.testing.assert_frame_equal(measure(img.astype(np.int64) * 3, 1.0), base)
    big = np.zeros((160, 270), bool)
    big[::2, ::3] = img
    view = big[::2, ::3]
    assert not view.flags.c_contiguous
    pd.testing.assert_frame_equal(measure(view, 1.0), base)


@pytest.mark.parametrize(
    ("mask", "err", "match"),
    [
        (np.zeros((3, 3, 3), bool), ValueError, "2-D"),
        (np.zeros((0, 4), bool), ValueError, "non-empty"),
        (np.zeros(5, bool), ValueError, "2-D"),
        (np.zeros((4, 4), np.float32), TypeError, "threshold"),
        (np.zeros((4, 4), np.float64), TypeError, "dtype float64"),
    ],
)
def test_bad_masks(mask: np.ndarray, err: type[Exception], match: str) -> None:
    with pytest.raises(err, match=match):
        measure(mask, 1.0)
    with pytest.raises(err, match=match):
        antema_fast.label(mask)


@pytest.mark.parametrize("s", [0, -1.0, math.nan, math.inf])
def test_bad_pixel_sizes(s: float) -> None:
    with pytest.raises(ValueError, match="pixel_size_nm"):
        measure(np.ones((2, 2), bool), s)


def test_bad_arguments() -> None:
    m = np.ones((2, 2), bool)
    with pytest.raises(TypeError, match="pixel_size_nm"):
        measure(m, "1.0")  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="pixel_size_nm"):
        measure(m, True)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="circularity"):
        measure(m, 1.0, circularity="imagej")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="connectivity"):
        regionprops_table(m, 1.0, connectivity=3)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="empty bitmap"):
        Particle(0, 0, np.zeros((2, 2), bool))
    with pytest.raises(TypeError, match="Particle"):
        measure_particles([np.ones((2, 2), bool)], 1.0)  # type: ignore[list-item]
    # the bindings refuse to convert silently
    with pytest.raises(TypeError):
        _core.measure_mask(np.ones((2, 2), np.int64))
    with pytest.raises(TypeError):
        _core.label(np.ones((4, 4), np.uint8)[:, ::2], 8)
    with pytest.raises(ValueError, match="empty bitmap"):
        _core.measure_crops(
            np.zeros(4, np.uint8),
            np.array([0, 4], np.int64),
            np.array([[2, 2]], np.int32),
            np.array([[0, 0]], np.int32),
            -1,
            -1,
        )
    with pytest.raises(ValueError, match="inside the buffer"):
        _core.measure_crops(
            np.ones(3, np.uint8),
            np.array([0, 4], np.int64),
            np.array([[2, 2]], np.int32),
            np.array([[0, 0]], np.int32),
            -1,
            -1,
        )


def test_particle_is_read_only_and_does_not_freeze_caller_array() -> None:
    bm = np.ones((2, 3), bool)
    p = Particle(1, 1, bm)
    assert bm.flags.writeable
    with pytest.raises(ValueError):
        p.bitmap[0, 0] = False
    with pytest.raises(AttributeError):
        p.row0 = 5  # type: ignore[misc]
    out = np.zeros((3, 3), np.uint8)
    p.paste(out, 7)  # clipped to the array
    assert out.tolist() == [[0, 0, 0], [0, 7, 7], [0, 7, 7]]


@pytest.mark.parametrize("seed", range(3))
def test_crop_level_functions_used_by_separation(seed: int) -> None:
    """antema::perimeter / convex_image / convex_stats (shape.hpp) on multi-piece crops."""
    rng = np.random.default_rng(200 + seed)
    crop = random_blobs(rng, (40, 50), sigma=1.5, q=0.7)
    c8 = crop.astype(np.uint8)
    assert _core.perimeter(c8) == pytest.approx(perimeter_reference(crop), abs=1e-9)
    ci = convex_image_bruteforce(crop)
    assert np.array_equal(_core.convex_image(c8).astype(bool), ci)
    s = _core.convex_stats(c8)
    assert s["area"] == crop.sum() and s["convex_area"] == ci.sum()
    assert s["convex_perimeter"] == pytest.approx(perimeter_reference(ci), abs=1e-9)
    assert s["solidity"] == pytest.approx(crop.sum() / ci.sum())
    assert _core.perimeter(np.zeros((3, 3), np.uint8)) == 0.0
    assert not _core.convex_image(np.zeros((3, 3), np.uint8)).any()


def test_non_convex_flag_follows_the_threshold() -> None:
    img = np.zeros((14, 14), bool)
    img[2:12, 2:6] = True
    img[8:12, 2:12] = True
    img[1:4, 10:13] = True  # a convex square apart
    t = measure(img, 1.0)
    assert t.convexity.iloc[0] == pytest.approx(1.0) and t.convexity.iloc[1] < 0.95
    assert t.non_convex.tolist() == [False, True]
    low = regionprops_table(img, 1.0, convexity_threshold=0.0)
    assert not low.non_convex.any()
    with pytest.raises(ValueError, match="convexity_threshold"):
        regionprops_table(img, 1.0, convexity_threshold=1.5)
