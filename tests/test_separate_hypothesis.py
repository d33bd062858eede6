"""Robustness: random masks of every kind through every separation mode, invariants intact."""

from __future__ import annotations

import antema_fast as af
import numpy as np
import pytest
import scipy.ndimage as ndi
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

KINDS = ("noise", "lines", "checkerboard", "blobs", "huge_blob", "specks", "ones", "zeros", "mix")
EIGHT = np.ones((3, 3), bool)


def make_mask(kind: str, rows: int, cols: int, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[:rows, :cols]
    if kind == "noise":
        return rng.random((rows, cols)) < rng.uniform(0.05, 0.95)
    if kind == "lines":
        m = np.zeros((rows, cols), bool)
        for _ in range(int(rng.integers(1, 8))):
            a, b = rng.uniform(-1, 1, 2)
            c = rng.uniform(-rows, rows)
            m |= np.abs(a * yy + b * xx + c) <= rng.uniform(0.3, 3.0)
        return m
    if kind == "checkerboard":
        p = int(rng.integers(1, 9))
        return ((yy // p) + (xx // p)) % 2 == 0
    if kind in ("blobs", "huge_blob", "mix"):
        m = np.zeros((rows, cols), bool)
        n = 1 if kind == "huge_blob" else int(rng.integers(1, 12))
        for _ in range(n):
            r = (
                rng.uniform(0.3, 1.5) * max(rows, cols)
                if kind == "huge_blob"
                else rng.uniform(1, 20)
            )
            m |= (yy - rng.uniform(0, rows)) ** 2 + (xx - rng.uniform(0, cols)) ** 2 <= r * r
        if kind == "mix":
            m ^= rng.random((rows, cols)) < 0.05
        return m
    if kind == "specks":
        return rng.random((rows, cols)) < 0.02
    if kind == "ones":
        return np.ones((rows, cols), bool)
    return np.zeros((rows, cols), bool)


def check_invariants(mask: np.ndarray, s: float, separation: str) -> None:
    r = af.postprocess(mask, s, separation=separation)
    rows, cols = mask.shape
    amin = af.Settings().min_area_px(s)
    filled = ndi.binary_fill_holes(mask)
    t = r.table
    assert len(t) == len(r.particles) == len(r.area_id)
    assert sum(r.counts.values()) == len(r.excluded)
    assert t.area_px.tolist() == [p.area for p in r.particles]
    assert t.separated.tolist() == [p.separated for p in r.particles]
    for p in r.particles:
        b = p.bitmap
        r0, c0, r1, c1 = p.bbox
        assert b.any(axis=1)[[0, -1]].all() and b.any(axis=0)[[0, -1]].all()  # tight box
        assert r0 > 0 and c0 > 0 and r1 < rows - 1 and c1 < cols - 1  # border dropped
        assert p.area >= amin
        assert np.array_equal(ndi.binary_fill_holes(b), b)  # holes filled
        assert not (b & ~filled[r0 : r1 + 1, c0 : c1 + 1]).any()  # inside the mask's areas
    ex = r.excluded
    if len(ex):
        assert (ex.area_px >= 1).all()
        assert (ex.bbox_row_min >= 0).all() and (ex.bbox_row_max < rows).all()
        assert (ex.bbox_col_min >= 0).all() and (ex.bbox_col_max < cols).all()
        assert (ex.bbox_row_min <= ex.bbox_row_max).all()
        despeckled = ex[ex.stage == "despeckle"]
        assert (despeckled.area_px < amin).all() and (despeckled.area_id == -1).all()
    if separation == "none":
        assert not t.separated.any()
        assert set(ex.reason.astype(str)) <= {"speck", "border"}
        kept = len(ex[ex.area_id >= 0])
        assert len(t) + kept == r.n_areas
        assert (t.non_convex == (t.convexity <= 0.95)).all()
    else:
        assert (t.convexity[~t.separated] > 0.95).all()
    if separation == "watershed":
        # watershed lines removed: no two particles of one area touch
        for aid in np.unique(r.area_id):
            idx = np.nonzero(r.area_id == aid)[0]
            if len(idx) < 2:
                continue
            lab = np.zeros(mask.shape, np.int32)
            for k in idx:
                r.particles[k].paste(lab, k + 1)
            for k in idx:
                grown = ndi.binary_dilation(lab == k + 1, EIGHT)
                assert set(np.unique(lab[grown])) <= {0, k + 1}


masks = st.tuples(
    st.sampled_from(KINDS),
    st.integers(1, 70),
    st.integers(1, 70),
    st.integers(0, 2**32 - 1),
    st.sampled_from([0.02, 0.05, 0.1, 0.3, 1.0]),
)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(masks)
def test_random_masks_every_mode(case: tuple[str, int, int, int, float]) -> None:
    kind, rows, cols, seed, s = case
    mask = make_mask(kind, rows, cols, seed)
    for separation in ("uecs", "watershed", "none"):
        check_invariants(mask, s, separation)


big_masks = st.tuples(
    st.sampled_from(KINDS),
    st.integers(1, 220),
    st.integers(1, 220),
    st.integers(0, 2**32 - 1),
    st.sampled_from([0.02, 0.05, 0.1, 0.2, 0.5, 1.0]),
)


@pytest.mark.slow
@settings(max_examples=3000, deadline=None, suppress_health_check=list(HealthCheck))
@given(big_masks)
def test_random_masks_every_mode_thousands(case: tuple[str, int, int, int, float]) -> None:
    kind, rows, cols, seed, s = case
    mask = make_mask(kind, rows, cols, seed)
    for separation in ("uecs", "watershed", "none"):
        check_invariants(mask, s, separation)


@pytest.mark.parametrize("kind", KINDS)
def test_each_kind_once_at_full_size(kind: str) -> None:
    mask = make_mask(kind, 256, 256, 12345)
    for separation in ("uecs", "watershed", "none"):
        check_invariants(mask, 0.1, separation)
